"""Streaming while generating: ``reasonkit serve`` writes each choice's text as the model produces it
(the official ``openai`` client on loopback, a tiny real Llama), and the pieces still concatenate to
the non-streamed reply — sampled, greedy with n > 1, stop strings, chat, and the white-box decode loop."""

from __future__ import annotations

import time

import openai
import pytest

from reasonkit.backends.hf import HFBackend
from reasonkit.backends.server import start_server


@pytest.fixture(scope="module", params=["generate", "decode-loop"])
def client(request, chat_llama, chat_tokenizer):
    path = [0, 1] if request.param == "decode-loop" else None  # the model's own layers, white-box loop
    backend = HFBackend(chat_llama, chat_tokenizer, name="tiny", path=path)
    with start_server(backend, served_model_name="tiny") as srv:
        assert srv.scheduler.streams
        yield openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)


def streamed_texts(stream, n: int) -> tuple[list[str], list, list]:
    texts, finishes, chunks = [""] * n, [], []
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return texts, finishes, chunks


@pytest.mark.parametrize(
    "kw",
    [
        dict(temperature=1.0, seed=5, n=3, max_tokens=40),
        dict(temperature=0, n=2, max_tokens=40),
        dict(temperature=1.0, seed=9, n=2, max_tokens=40, stop=["e", " t"]),
        dict(temperature=0.8, seed=1, n=1, max_tokens=40, presence_penalty=1.0),
    ],
)
def test_stream_pieces_concatenate_to_the_plain_reply(client, kw):
    plain = client.completions.create(model="tiny", prompt="The quick brown", **kw)
    stream = client.completions.create(
        model="tiny", prompt="The quick brown", stream=True, stream_options={"include_usage": True}, **kw
    )
    texts, finishes, chunks = streamed_texts(stream, kw["n"])
    assert texts == [c.text for c in plain.choices]
    assert finishes == [c.finish_reason for c in plain.choices]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_a_stream_of_several_prompts_keeps_each_choice_apart(client):
    kw = dict(model="tiny", prompt=["hello", "The quick brown", "what is"], n=2, temperature=1.0, seed=4)
    plain = client.completions.create(max_tokens=30, **kw)
    texts, finishes, _ = streamed_texts(client.completions.create(max_tokens=30, stream=True, **kw), 6)
    assert finishes == [c.finish_reason for c in plain.choices]
    assert texts == [c.text for c in plain.choices] and len(set(texts)) > 1


def test_chat_stream_equals_the_chat_reply(client):
    kw = dict(model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=30, seed=3)
    plain = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == plain.choices[0].message.content
    )


def test_the_first_text_arrives_long_before_generation_ends(client):
    start = time.monotonic()
    stream = client.completions.create(
        model="tiny",
        prompt="The quick brown",
        max_tokens=400,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    first = None
    pieces = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            pieces += 1
            if first is None:
                first = time.monotonic() - start
        usage = chunk.usage
    total = time.monotonic() - start
    assert usage is not None and usage.completion_tokens >= 300  # a long generation, not an early EOS
    assert first is not None and first < total / 4, (first, total)
    assert pieces > 20  # written as it went, not in one piece at the end


def test_a_failure_after_the_headers_reaches_the_client_as_an_error_event(chat_llama, chat_tokenizer):
    backend = HFBackend(chat_llama, chat_tokenizer, name="tiny")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    backend._generate_rows = boom  # type: ignore[method-assign]
    with start_server(backend, served_model_name="tiny") as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)
        with pytest.raises(openai.APIError, match="boom"):
            list(client.completions.create(model="tiny", prompt="hello", max_tokens=5, stream=True))
        assert srv.scheduler.streams  # and the server keeps serving
        backend._generate_rows = HFBackend._generate_rows.__get__(backend)  # type: ignore[method-assign]
        assert client.completions.create(model="tiny", prompt="hello", max_tokens=3).choices[0].text
