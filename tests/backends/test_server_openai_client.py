"""The official ``openai`` client against a real ``reasonkit serve`` on loopback (the built-in model):
streaming, log-probs, echo, chat log-probs, token-id prompts — each checked against the backend itself."""

from __future__ import annotations

import openai
import pytest

from reasonkit.backends.loading import load_backend
from reasonkit.backends.server import start_server

PROMPT = "<q>12+3*4"
pytestmark = pytest.mark.filterwarnings("ignore:.*never seen chat messages:UserWarning")


@pytest.fixture(scope="module")
def builtin():
    return load_backend("builtin", threads=1)


@pytest.fixture(scope="module")
def server(builtin):
    with start_server(builtin, served_model_name="builtin") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)


def test_streamed_chunks_concatenate_to_the_plain_reply(client):
    kw = dict(model="builtin", prompt=PROMPT, max_tokens=24, temperature=1.0, seed=7, n=2)
    plain = client.completions.create(**kw)
    chunks = list(client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    texts = ["", ""]
    for chunk in chunks[:-1]:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == [c.text for c in plain.choices] and all(texts)
    assert len(chunks) > 4  # really cut into pieces
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage  # usage in the final chunk
    finish = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert finish == [c.finish_reason for c in plain.choices]


def test_chat_stream_equals_chat_reply(client):
    kw = dict(model="builtin", messages=[{"role": "user", "content": "12+3"}], max_tokens=12, seed=3)
    plain = client.chat.completions.create(**kw)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**kw, stream=True)
        if c.choices
    )
    assert streamed == plain.choices[0].message.content


def test_completion_logprobs_equal_the_backend_loglikelihood(client, builtin):
    reply = client.completions.create(
        model="builtin", prompt=PROMPT, max_tokens=16, temperature=0, logprobs=3
    )
    choice = reply.choices[0]
    lp = choice.logprobs
    assert "".join(lp.tokens) == choice.text and len(lp.token_logprobs) == len(lp.tokens)
    expected = builtin.loglikelihood(PROMPT, [choice.text])[0]
    total = sum(lp.token_logprobs)
    if choice.finish_reason == "stop" and len(lp.tokens[-1]) == 0:  # the EOS token, scored too
        total -= lp.token_logprobs[-1]
    assert total == pytest.approx(expected, abs=1e-4)
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 3 and max(top.values()) >= value - 1e-6
        if token:  # greedy decoding: the chosen token is the most likely one
            assert top[token] == pytest.approx(max(top.values()))


def test_echo_returns_the_prompt_s_own_logprobs(client, builtin):
    context, continuation = "<q>7*8", "=56"
    reply = client.completions.create(
        model="builtin", prompt=context + continuation, max_tokens=0, echo=True, logprobs=1, temperature=0
    )
    lp = reply.choices[0].logprobs
    ids = builtin.encode(context + continuation)
    assert reply.choices[0].text == context + continuation and len(lp.token_logprobs) == len(ids)
    assert lp.token_logprobs[0] is None  # the first token has no context
    n_cont = len(builtin.tokenizer(continuation, add_special_tokens=False)["input_ids"])
    assert sum(lp.token_logprobs[-n_cont:]) == pytest.approx(
        builtin.loglikelihood(context, [continuation])[0], abs=1e-4
    )
    reference = builtin.token_logprobs(ids, start=1)
    assert lp.token_logprobs[1:] == pytest.approx([s.logprob for s in reference], abs=1e-5)


def test_token_id_prompts_equal_text_prompts(client, builtin):
    ids = builtin.encode(PROMPT)
    by_text = client.completions.create(model="builtin", prompt=PROMPT, max_tokens=12, temperature=0)
    by_ids = client.completions.create(model="builtin", prompt=[ids, ids], max_tokens=12, temperature=0)
    assert [c.text for c in by_ids.choices] == [by_text.choices[0].text] * 2
    assert by_ids.usage.prompt_tokens == 2 * len(ids)


def test_chat_logprobs_and_top_logprobs(client, builtin):
    messages = [{"role": "user", "content": "2+2"}]
    reply = client.chat.completions.create(
        model="builtin", messages=messages, max_tokens=8, temperature=0, logprobs=True, top_logprobs=2
    )
    content = reply.choices[0].logprobs.content
    assert "".join(t.token for t in content).startswith(reply.choices[0].message.content)
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


def test_what_cannot_apply_is_refused_in_openai_s_error_shape(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="builtin", prompt=PROMPT, max_tokens=4, logit_bias={"5": 10})
    assert info.value.body["param"] == "logit_bias" and "not supported" in info.value.body["message"]
    with pytest.raises(openai.BadRequestError, match=r"beyond the model.s context of 512 tokens"):
        client.completions.create(model="builtin", prompt="<q>" + "1+" * 400 + "1", max_tokens=200)


def test_logprobs_on_a_layer_path_equal_its_own_loglikelihood():
    """The white-box path (a layer path generates through the decode loop) scores on the same path."""
    lm = load_backend("layers:0-7,7@builtin", threads=1)
    with start_server(lm, served_model_name="pathed") as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0)
        reply = client.completions.create(
            model="pathed", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=1
        )
    choice = reply.choices[0]
    scores = [v for t, v in zip(choice.logprobs.tokens, choice.logprobs.token_logprobs) if t]
    assert sum(scores) == pytest.approx(lm.loglikelihood(PROMPT, [choice.text])[0], abs=1e-4)
    assert lm.loglikelihood(PROMPT, [choice.text]) != load_backend("builtin").loglikelihood(
        PROMPT, [choice.text]
    )
