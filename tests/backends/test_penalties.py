"""OpenAI's presence/frequency penalties: a hand-computed greedy reference on a tiny Llama, both decoders
(transformers' ``generate`` and the white-box loop), and the official ``openai`` client against a real
``reasonkit serve`` on loopback (local model, a remote one passed through, a backend that cannot)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter

import openai
import pytest
import torch

from reasonkit.backends.hf import HFBackend
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.backends.server import start_server
from reasonkit.models.sampling import OpenAIPenalties
from reasonkit.types import Completion, SamplingParams

PROMPT = "The quick brown"
STEPS = 12
PENALTIES = dict(presence_penalty=0.7, frequency_penalty=1.3)


@pytest.fixture(scope="module")
def local(llama, tokenizer) -> HFBackend:
    return HFBackend(llama, tokenizer, name="tiny")


def reference(
    model, tokenizer, prompt: str, steps: int, presence_penalty: float, frequency_penalty: float
) -> list[int]:
    """Greedy decoding by hand: full forwards, logit[j] -= frequency * count_j + presence * (count_j > 0)."""
    ids = tokenizer(prompt).input_ids
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids + out])).logits[0, -1].double().tolist()
            counts = Counter(out)
            scored = [
                v - frequency_penalty * counts[j] - presence_penalty * (counts[j] > 0)
                for j, v in enumerate(logits)
            ]
            token = max(range(len(scored)), key=scored.__getitem__)
            out.append(token)
            if token == tokenizer.eos_token_id:
                break
    return out


def text_of(tokenizer, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def test_the_processor_subtracts_counts_of_generated_tokens_only():
    scores = torch.zeros(2, 6)
    ids = torch.tensor([[4, 4, 3, 3, 5], [0, 4, 1, 1, 1]])  # prompt: first 2 columns
    got = OpenAIPenalties(presence=0.5, frequency=0.25, prompt_length=2)(ids, scores)
    want = torch.zeros(2, 6)
    want[0, 3] = -(0.25 * 2 + 0.5)
    want[0, 5] = -(0.25 + 0.5)
    want[1, 1] = -(0.25 * 3 + 0.5)
    assert torch.equal(got, want)  # token 4 sits only in the prompt of row 0: no penalty


def test_greedy_with_penalties_equals_the_hand_reference(local, llama, tokenizer):
    params = SamplingParams(max_new_tokens=STEPS, **PENALTIES)
    want = reference(llama, tokenizer, PROMPT, STEPS, **PENALTIES)
    plain = reference(llama, tokenizer, PROMPT, STEPS, 0.0, 0.0)
    assert want != plain, "the penalties must change the argmax for this test to mean anything"
    assert len(set(plain)) < len(plain)  # the unpenalised model repeats itself
    got = local.generate([PROMPT, "hello"], params)[0][0]  # batched with another prompt (left padding)
    assert got.text == text_of(tokenizer, want) and got.tokens_out == len(want)
    assert local.generate([PROMPT], SamplingParams(max_new_tokens=STEPS))[0][0].text == text_of(
        tokenizer, plain
    )


def test_the_white_box_decode_loop_applies_the_same_penalties(llama, tokenizer):
    pathed = HFBackend(llama, tokenizer, name="tiny-path", path=[0, 1])  # the model's own layers, decode loop
    assert pathed.uses_whitebox_decode
    want = reference(llama, tokenizer, PROMPT, STEPS, **PENALTIES)
    got = pathed.generate([PROMPT, "hello"], SamplingParams(max_new_tokens=STEPS, **PENALTIES))[0][0]
    assert got.text == text_of(tokenizer, want) and got.tokens_out == len(want)


def test_penalties_are_validated_and_keep_old_cache_keys():
    with pytest.raises(ValueError, match="presence_penalty"):
        SamplingParams(presence_penalty=2.5)
    assert "presence_penalty" not in SamplingParams().to_dict()
    assert SamplingParams(frequency_penalty=-1.0).to_dict()["frequency_penalty"] == -1.0


@pytest.fixture(scope="module")
def server(local):
    with start_server(local, served_model_name="tiny") as srv:
        yield srv


def test_the_openai_client_gets_penalised_greedy_text(server, local, llama, tokenizer):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
    reply = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=STEPS, temperature=0, **PENALTIES
    )
    want = reference(llama, tokenizer, PROMPT, STEPS, **PENALTIES)
    assert reply.choices[0].text == text_of(tokenizer, want)
    plain = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=STEPS, temperature=0)
    assert plain.choices[0].text != reply.choices[0].text
    # sampled too: the seeded sample under penalties is the backend's own
    seeded = SamplingParams(max_new_tokens=STEPS, temperature=1.0, seed=3, n=2, **PENALTIES)
    sampled = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=STEPS, temperature=1.0, seed=3, n=2, **PENALTIES
    )
    assert [c.text for c in sampled.choices] == [c.text for c in local.generate([PROMPT], seeded)[0]]
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt=PROMPT, max_tokens=2, frequency_penalty=2.5)
    assert info.value.body["param"] == "frequency_penalty" and "-2..2" in info.value.body["message"]


def test_a_remote_backend_passes_penalties_through(server, llama, tokenizer):
    upstream = OpenAIBackend(server.url, "tiny", max_retries=0)
    with start_server(upstream, served_model_name="relay") as relay:
        client = openai.OpenAI(base_url=relay.url, api_key="unused", max_retries=0, timeout=60)
        reply = client.completions.create(
            model="relay", prompt=PROMPT, max_tokens=STEPS, temperature=0, **PENALTIES
        )
    want = reference(llama, tokenizer, PROMPT, STEPS, **PENALTIES)
    assert reply.choices[0].text == text_of(tokenizer, want)


class _NoPenalties:
    """A backend that samples without penalties (it does not declare ``supports_penalties``)."""

    name = "plain"
    capabilities: frozenset[str] = frozenset()

    def generate(self, prompts, params):
        return [[Completion("x", 1, 1)] * params.n for _ in prompts]


def test_a_backend_that_cannot_apply_them_refuses_clearly():
    with start_server(_NoPenalties()) as srv:  # type: ignore[arg-type]
        body = {"prompt": "hi", "max_tokens": 2, "presence_penalty": 0.5}
        request = urllib.request.Request(
            f"{srv.url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        error = json.loads(info.value.read())["error"]
        assert info.value.code == 400 and error["param"] == "presence_penalty"
        assert "cannot apply" in error["message"]
        body["presence_penalty"] = 0  # zero is always fine
        request = urllib.request.Request(
            f"{srv.url}/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["choices"][0]["text"] == "x"
