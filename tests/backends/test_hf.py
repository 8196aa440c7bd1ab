"""HFBackend on tiny random Llama / Qwen2 models, checked against manual forwards."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from tiny_models import build_model

from reasonkit.backends.base import BackendError, LanguageModel
from reasonkit.backends.hf import HFBackend
from reasonkit.types import SamplingParams

PROMPTS = [
    "Question: what is 2 + 3?",
    "The quick brown",
    "hello",
    "Answer: B. Therefore the final answer is",
    "7 * 6 = 42",
]


def reference_greedy(model, ids: list[int], max_new: int, eos: int = 2) -> list[int]:
    """Greedy decoding by full forwards without a cache: the definition generate() must match."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            logits = model(torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
            if out[-1] == eos:
                break
    return out


@pytest.fixture(scope="module")
def lm(llama, tokenizer) -> HFBackend:
    return HFBackend(llama, tokenizer, batch_size=3, name="tiny-llama")


def test_protocol_and_capabilities(lm):
    assert isinstance(lm, LanguageModel)
    assert lm.capabilities == {"loglikelihood", "whitebox", "chat"}
    assert lm.whitebox.family == "llama" and lm.whitebox.num_layers == 2
    assert lm.name == "tiny-llama" and lm.prompt_pack == "natural"
    assert lm.model is not None and lm.tokenizer is not None


def test_greedy_matches_manual_forward(lm, llama, tokenizer):
    out = lm.generate(PROMPTS, SamplingParams(max_new_tokens=12))
    for prompt, (completion,) in zip(PROMPTS, out):
        ids = tokenizer(prompt)["input_ids"]
        ref = reference_greedy(llama, ids, 12)
        body = ref[:-1] if ref[-1] == 2 else ref
        assert completion.text == tokenizer.decode(body, skip_special_tokens=True)
        assert (completion.tokens_in, completion.tokens_out) == (len(ids), len(ref))
        assert completion.finish_reason == ("stop" if ref[-1] == 2 else "length")


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_batched_greedy_equals_one_by_one(family, tokenizer):
    lm = HFBackend(build_model(tokenizer, family, seed=3), tokenizer, batch_size=3)
    params = SamplingParams(max_new_tokens=16)
    batched = lm.generate(PROMPTS, params)  # batch_size=3: two left-padded chunks of mixed lengths
    singles = [lm.generate([p], params)[0] for p in PROMPTS]
    assert batched == singles
    assert len({c[0].text for c in batched}) == len(PROMPTS)  # a real comparison, not one repeated string


def test_greedy_n_copies(lm):
    out = lm.generate(["hello"], SamplingParams(max_new_tokens=6, n=3))
    assert len(out[0]) == 3 and len({c.text for c in out[0]}) == 1


def _stop_case(lm, tokenizer):
    """A prompt whose greedy output has a plain-ASCII 3-character substring well inside it."""
    params = SamplingParams(max_new_tokens=24)
    for prompt, (full,) in zip(PROMPTS, lm.generate(PROMPTS, params)):
        text = full.text
        for k in range(4, len(text) - 3):
            stop = text[k : k + 3]
            if stop.isascii() and stop.isprintable() and text.find(stop) == k:
                return prompt, full, stop
    pytest.fail("no usable stop string in the greedy outputs")


def test_stop_string_trims_and_stops_early(lm, tokenizer):
    prompt, full, stop = _stop_case(lm, tokenizer)
    got = lm.generate([prompt], SamplingParams(max_new_tokens=24, stop=(stop,)))[0][0]
    assert got.text == full.text[: full.text.find(stop)]
    assert got.finish_reason == "stop"
    ref = reference_greedy(lm.model, tokenizer(prompt)["input_ids"], 24)
    first = next(
        m for m in range(1, len(ref) + 1) if stop in tokenizer.decode(ref[:m], skip_special_tokens=True)
    )
    assert got.tokens_out == first < 24  # counted up to the token that completed the stop string


def test_stop_strings_are_per_row_and_earliest_wins(lm, tokenizer):
    prompt, full, stop = _stop_case(lm, tokenizer)
    other = next(p for p in PROMPTS if p != prompt)
    params = SamplingParams(max_new_tokens=24, stop=(stop, "\x00never\x00"))
    plain = lm.generate([other], SamplingParams(max_new_tokens=24))[0][0]
    if stop in plain.text:
        pytest.skip("the stop string also occurs in the other prompt's output")
    stopped, unstopped = lm.generate([prompt, other], params)
    assert stopped[0].text == full.text[: full.text.find(stop)]
    assert unstopped[0] == plain  # the other row kept generating to its own end
    later = full.text[full.text.find(stop) + 1 : full.text.find(stop) + 3]
    if later and later not in full.text[: full.text.find(stop)]:
        both = lm.generate([prompt], SamplingParams(max_new_tokens=24, stop=(later, stop)))[0][0]
        assert both.text == full.text[: full.text.find(stop)]


def test_n_samples_are_distinct_and_counted(lm):
    out = lm.generate(["hello", "The quick brown"], SamplingParams(max_new_tokens=8, temperature=2.0, n=4))
    assert [len(o) for o in out] == [4, 4]
    assert all(len({c.text for c in o}) > 1 for o in out)
    assert all(c.tokens_out == 8 or c.finish_reason == "stop" for o in out for c in o)


def test_seeded_sampling_is_reproducible_across_batch_compositions(llama, tokenizer):
    # batch_size 5 with n=3 puts samples of different prompts, at different positions, in one batch
    lm = HFBackend(llama, tokenizer, batch_size=5)
    params = SamplingParams(max_new_tokens=10, temperature=1.5, n=3, seed=1234)
    alone = [HFBackend(llama, tokenizer, batch_size=1).generate([p], params)[0] for p in PROMPTS[:3]]
    together = lm.generate(PROMPTS[:3], params)
    shuffled = lm.generate([PROMPTS[4], PROMPTS[2], PROMPTS[0], PROMPTS[1]], params)
    assert together == alone
    assert [shuffled[2], shuffled[3], shuffled[1]] == alone
    other_seed = lm.generate(PROMPTS[:3], SamplingParams(max_new_tokens=10, temperature=1.5, n=3, seed=99))
    assert other_seed != together


def test_unseeded_sampling_follows_torch_manual_seed(lm):
    params = SamplingParams(max_new_tokens=8, temperature=1.5, n=2)
    torch.manual_seed(5)
    first = lm.generate(PROMPTS[:2], params)
    torch.manual_seed(5)
    assert lm.generate(PROMPTS[:2], params) == first


def test_loglikelihood_equals_manual_forward(lm, llama, tokenizer):
    prefix = "Question: what is 2 + 3?"
    conts = [" The answer is 5.", " 5", "", " step by step. 2 + 3 = 5", "x"]
    got = lm.loglikelihood(prefix, conts)  # batch_size=3: two chunks over one shared prefix cache
    ctx = tokenizer(prefix)["input_ids"]
    for cont, value in zip(conts, got):
        ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
        if not ids:
            assert value == 0.0
            continue
        with torch.no_grad():
            logprobs = torch.log_softmax(llama(torch.tensor([ctx + ids])).logits[0].double(), -1)
        expected = sum(float(logprobs[len(ctx) - 1 + k, t]) for k, t in enumerate(ids))
        assert value == pytest.approx(expected, rel=1e-4, abs=1e-4)
    with torch.no_grad():
        full = lm._score_full(ctx, [tokenizer(c, add_special_tokens=False)["input_ids"] for c in conts if c])
    assert full == pytest.approx([v for c, v in zip(conts, got) if c], rel=1e-4, abs=1e-4)


def test_chat_template_rendering_and_generation(llama, chat_tokenizer):
    lm = HFBackend(llama, chat_tokenizer)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is 2 + 3?"}]
    assert lm.render(messages) == "<|system|>Be brief.</s><|user|>what is 2 + 3?</s><|assistant|>"
    ids = lm.encode(messages)
    assert ids[0] != chat_tokenizer.bos_token_id  # the template brings its own specials; no extra BOS
    (completion,) = lm.generate([messages], SamplingParams(max_new_tokens=8))[0]
    ref = reference_greedy(llama, ids, 8)
    assert completion.tokens_in == len(ids)
    assert completion.text == chat_tokenizer.decode([t for t in ref if t != 2], skip_special_tokens=True)


def test_chat_without_template_falls_back_and_warns_once(llama, tokenizer):
    lm = HFBackend(llama, tokenizer)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.warns(UserWarning, match="no chat template"):
        assert lm.render(messages) == "user: hi\nassistant:"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm.generate([messages], SamplingParams(max_new_tokens=2))


def test_load_from_directory_with_model_card(model_dir, chat_tokenizer, tmp_path):
    lm = HFBackend(str(model_dir))
    assert lm.prompt_pack == "natural" and lm.name == str(model_dir)
    assert lm.model.dtype == torch.float32 and not lm.model.training
    assert type(lm.model).__name__ == "Qwen2ForCausalLM"
    messages = [{"role": "user", "content": "hello"}]
    (completion,) = lm.generate([messages], SamplingParams(max_new_tokens=6))[0]
    rendered = chat_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = chat_tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert lm.encode(messages) == ids
    ref = reference_greedy(lm.model, ids, 6)
    assert completion.text == chat_tokenizer.decode([t for t in ref if t != 2], skip_special_tokens=True)
    card_dir = tmp_path / "with-card"
    shutil.copytree(model_dir, card_dir)
    (card_dir / "reasonkit.json").write_text(json.dumps({"prompt_pack": "compact"}))
    assert HFBackend(str(card_dir)).prompt_pack == "compact"
    (card_dir / "reasonkit.json").write_text("{not json")
    with pytest.raises(BackendError, match=r"reasonkit.json is not valid JSON"):
        HFBackend(str(card_dir))


def test_missing_model_errors_name_the_model_and_the_fix(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(
        BackendError, match=rf"{missing.name}.*no such directory.*existing model directory"
    ) as err:
        HFBackend(str(missing))
    assert "download" not in str(err.value)  # a typo in a path needs no download advice
    with pytest.raises(
        BackendError, match=r"'reasonkit-test/absent-model'.*not in the local HF cache.*downloads are off"
    ):
        HFBackend("reasonkit-test/absent-model", download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match=r"no config.json"):
        HFBackend(str(tmp_path / "empty"))


def test_offline_env_disables_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match=r"downloads are off"):
        HFBackend("reasonkit-test/absent-model")


def test_bad_input_and_training_mode_is_restored(llama, tokenizer):
    lm = HFBackend(llama, tokenizer)
    with pytest.raises(ValueError, match="list of prompts"):
        lm.generate("bare string", SamplingParams())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt 1"):
        lm.generate(["ok", 42], SamplingParams())  # type: ignore[list-item]
    with pytest.raises(ValueError, match="list of continuations"):
        lm.loglikelihood("a", "b")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        HFBackend(llama, tokenizer, batch_size=0)
    llama.train()
    try:
        lm.generate(["hello"], SamplingParams(max_new_tokens=2))
        assert llama.training
    finally:
        llama.eval()
    lm.close()
    with pytest.raises(BackendError, match="closed"):
        lm.generate(["hello"], SamplingParams(max_new_tokens=2))


def test_gated_lm_directory_loads_through_the_auto_classes(tmp_path, chat_tokenizer):
    """reasonkit's own hybrid model: found by path, batched == single, loglikelihood == manual forward."""
    from reasonkit.models import GatedLMConfig, GatedLMForCausalLM

    torch.manual_seed(0)
    config = GatedLMConfig(
        vocab_size=len(chat_tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        layer_types=["gla", "attn", "slstm"],
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.3,
    )
    GatedLMForCausalLM(config).save_pretrained(tmp_path)
    chat_tokenizer.save_pretrained(tmp_path)
    lm = HFBackend(str(tmp_path), batch_size=4)
    assert type(lm.model).__name__ == "GatedLMForCausalLM"
    prompts = ["Question: what is 2 + 3?", "hello", [{"role": "user", "content": "hi"}]]
    for params in (
        SamplingParams(max_new_tokens=8),
        SamplingParams(max_new_tokens=8, temperature=1.0, n=2, seed=3),
    ):
        assert lm.generate(prompts, params) == [lm.generate([p], params)[0] for p in prompts]
    context = lm.encode("The quick")
    got = lm.loglikelihood("The quick", [" brown fox", " dog"])
    for cont, value in zip([" brown fox", " dog"], got):
        ids = chat_tokenizer(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(lm.model(torch.tensor([context + ids])).logits[0].double(), -1)
        assert value == pytest.approx(
            sum(float(logprobs[len(context) - 1 + k, t]) for k, t in enumerate(ids)), abs=1e-4
        )


def test_running_past_the_position_limit_warns_once(llama, tokenizer):
    lm = HFBackend(llama, tokenizer)  # max_position_embeddings=512
    with pytest.warns(
        RuntimeWarning, match=r"max_new_tokens=600 exceeds the model's max_position_embeddings=512"
    ):
        lm._check_context(3, 600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm._check_context(3, 600)  # once per backend
        HFBackend(llama, tokenizer)._check_context(3, 500)


def test_a_small_cpu_model_generates_on_one_thread_and_restores_the_callers_count(llama, tokenizer):
    # torch's default (one thread per core) made the built-in model 10x slower on a busy machine
    seen: list[int] = []
    handle = llama.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        auto = HFBackend(llama, tokenizer)
        assert auto.threads == 1
        auto.generate(["hello"], SamplingParams(max_new_tokens=2))
        assert set(seen) == {1} and torch.get_num_threads() == 3
        seen.clear()
        HFBackend(llama, tokenizer, threads=2).generate(["hello"], SamplingParams(max_new_tokens=2))
        assert set(seen) == {2} and torch.get_num_threads() == 3
        with pytest.raises(ValueError, match="--threads must be >= 1"):
            HFBackend(llama, tokenizer, threads=0)
    finally:
        handle.remove()
        torch.set_num_threads(previous)


def test_a_layer_path_backend_decodes_with_the_whitebox_loop(llama, tokenizer):
    default = HFBackend(llama, tokenizer, name="tiny")
    same = HFBackend(llama, tokenizer, name="tiny", path=(0, 1))  # the default path, through the loop
    assert same.uses_whitebox_decode and same.name == "tiny@layers=0,1" and default.name == "tiny"
    params = SamplingParams(max_new_tokens=10, stop=("\n",))
    assert same.generate(PROMPTS, params) == default.generate(PROMPTS, params)
    sampled = SamplingParams(max_new_tokens=6, temperature=1.0, n=2, seed=4)
    assert same.generate(PROMPTS, sampled) == default.generate(PROMPTS, sampled)  # same per-row draws
    repeated = HFBackend(llama, tokenizer, name="tiny", path=(0, 0, 1))
    assert repeated.generate(PROMPTS, params) != default.generate(PROMPTS, params)
    # scoring runs the path too: against the handle's own forward
    lm = repeated.whitebox
    context, cont = (
        tokenizer("The quick")["input_ids"],
        tokenizer(" brown", add_special_tokens=False)["input_ids"],
    )
    with torch.no_grad():
        logits = lm.logits(lm.forward(lm.embed(torch.tensor([context + cont])), path=(0, 0, 1)).hidden)
    logprobs = torch.log_softmax(logits[0].float(), -1)
    want = sum(float(logprobs[len(context) - 1 + i, t]) for i, t in enumerate(cont))
    assert repeated.loglikelihood("The quick", [" brown"])[0] == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match=r"layer indices in \[0, 2\)"):
        HFBackend(llama, tokenizer, path=(0, 2))


def test_black_box_backends_have_no_whitebox():
    from reasonkit.backends.base import CapabilityError, require_whitebox
    from reasonkit.backends.openai import OpenAIBackend

    server = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(CapabilityError, match=r"CoLa needs the model itself.*runs no local model.*'builtin'"):
        require_whitebox(server, "CoLa")
