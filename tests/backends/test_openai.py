"""OpenAIBackend against a fault-injecting HTTP server on loopback: retries, timeouts, clear errors."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest
from fault_server import Action, FaultServer, completion_reply, free_port

from reasonkit.backends.base import BackendError
from reasonkit.backends.openai import OpenAIBackend, _retry_after, normalize_base_url, split_count
from reasonkit.types import SamplingParams

FAST = dict(backoff=0.01, max_backoff=0.05, timeout=5.0)
GREEDY = SamplingParams(max_new_tokens=4)


def test_retries_5xx_then_succeeds():
    with FaultServer([Action(500, b'{"error": {"message": "boom"}}'), Action(503, b"busy"), Action()]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=3, **FAST)
        out = lm.generate(["hi"], GREEDY)
    assert [c.text for c in out[0]] == ["ok0"]
    assert len(srv.requests) == 3
    assert srv.requests[-1]["path"] == "/v1/completions"
    assert srv.requests[-1]["prompt"] == "hi" and srv.requests[-1]["max_tokens"] == 4


def test_gives_up_after_max_retries_with_last_error():
    with FaultServer([Action(502, b'{"error": {"message": "upstream down"}}')]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=2, **FAST)
        with pytest.raises(BackendError, match=r"after 3 attempts.*HTTP 502: upstream down"):
            lm.generate(["hi"], GREEDY)
    assert len(srv.requests) == 3


def test_hang_past_timeout_is_retried_then_fails_fast():
    with FaultServer([Action(hang=30.0)]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=1, backoff=0.01, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"no reply within 0.3 s") as err:
            lm.generate(["hi"], GREEDY)
        elapsed = time.monotonic() - start
    assert len(srv.requests) == 2
    assert elapsed < 5.0  # two 0.3 s timeouts, never the server's 30 s
    # a Python caller is told the keyword arguments (the CLI's flags: tests/test_cli.py)
    assert "timeout=SECONDS / max_retries=N" in str(err.value) and "--request-timeout" not in str(err.value)


def test_hang_once_then_answer():
    with FaultServer([Action(hang=30.0), Action()]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=2, backoff=0.01, timeout=0.3)
        assert lm.generate(["hi"], GREEDY)[0][0].text == "ok0"


def test_malformed_json_is_a_clear_error_without_retry():
    with FaultServer([Action(200, b"<html>not json</html>")]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=3, **FAST)
        with pytest.raises(BackendError, match=r"not JSON.*<html>not json"):
            lm.generate(["hi"], GREEDY)
    assert len(srv.requests) == 1


@pytest.mark.parametrize(
    "body",
    [b'{"choices": []}', b'{"choices": [{"index": 0}]}', b'{"result": "x"}', b"[1, 2]"],
)
def test_wrong_shape_is_a_clear_error(body):
    with FaultServer([Action(200, body)]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=3, **FAST)
        with pytest.raises(BackendError, match=r"choice"):
            lm.generate(["hi"], GREEDY)
    assert len(srv.requests) == 1


def test_400_is_not_retried_and_carries_the_server_message():
    body = json.dumps(
        {"error": {"message": "max_tokens is too large: 99999", "type": "invalid_request_error"}}
    )
    with FaultServer([Action(400, body.encode())]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=5, **FAST)
        with pytest.raises(BackendError, match=r"HTTP 400\): max_tokens is too large: 99999"):
            lm.generate(["hi"], GREEDY)
    assert len(srv.requests) == 1


def test_401_names_the_api_key_variables(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("REASONKIT_API_KEY", "sk-test")
    with FaultServer([Action(401, b'{"error": {"message": "bad key"}}')]) as srv:
        lm = OpenAIBackend(srv.url, "m", **FAST)
        with pytest.raises(BackendError, match=r"REASONKIT_API_KEY or OPENAI_API_KEY"):
            lm.generate(["hi"], GREEDY)
    assert srv.requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in repr(lm)


def test_429_honours_retry_after():
    with FaultServer([Action(429, b"slow down", {"Retry-After": "1"}), Action()]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_retries=2, **FAST)
        start = time.monotonic()
        assert lm.generate(["hi"], GREEDY)[0][0].text == "ok0"
        elapsed = time.monotonic() - start
    assert len(srv.requests) == 2
    assert elapsed >= 0.95  # the 0.01 s backoff alone would be far shorter


def test_retry_after_forms():
    assert _retry_after("2") == 2.0
    assert _retry_after("0.5") == 0.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    in_three = _retry_after(formatdate(time.time() + 3, usegmt=True))
    assert in_three is not None and 1.0 < in_three <= 3.0


def test_unreachable_port_is_a_clear_error():
    port = free_port()
    lm = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, **FAST)
    start = time.monotonic()
    with pytest.raises(
        BackendError, match=rf"127.0.0.1:{port}.*after 3 attempts.*connection failed.*reasonkit serve"
    ):
        lm.generate(["hi"], GREEDY)
    assert time.monotonic() - start < 5.0


def test_concurrency_is_bounded():
    with FaultServer([Action(hang=0.2)]) as srv:
        lm = OpenAIBackend(srv.url, "m", max_concurrency=3, **FAST)
        out = lm.generate([f"p{i}" for i in range(10)], GREEDY)
        lm.close()
    assert len(out) == 10 and len(srv.requests) == 10
    assert 2 <= srv.max_in_flight <= 3


def test_results_keep_prompt_order_under_concurrency():
    def echo(request):
        body = {
            "choices": [{"index": 0, "text": request["prompt"].upper()}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
        return Action(body=json.dumps(body).encode(), hang=0.05 if request["prompt"].endswith("0") else 0.0)

    with FaultServer(echo) as srv:
        lm = OpenAIBackend(srv.url, "m", max_concurrency=4, **FAST)
        prompts = [f"p{i}" for i in range(12)]
        assert [o[0].text for o in lm.generate(prompts, GREEDY)] == [p.upper() for p in prompts]


def test_request_fields_chat_seed_stop_and_top_k():
    with FaultServer([Action()]) as srv:
        lm = OpenAIBackend(srv.url, "served", **FAST)
        params = SamplingParams(max_new_tokens=7, temperature=0.7, top_p=0.9, top_k=5, stop=("\n",), seed=11)
        out = lm.generate([[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]], params)
    sent = srv.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["top_p"]) == ("served", 7, 0.7, 0.9)
    assert (sent["top_k"], sent["stop"], sent["seed"], sent["n"]) == (5, ["\n"], 11, 1)
    assert out[0][0].text == "ok0" and out[0][0].tokens_in == 3 and out[0][0].tokens_out == 2


def test_force_chat_and_no_top_k_for_openai_proper():
    with FaultServer([Action()]) as srv:
        OpenAIBackend(srv.url, "m", force_chat=True, **FAST).generate(["hello"], GREEDY)
    sent = srv.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["messages"] == [
        {"role": "user", "content": "hello"}
    ]
    assert "top_k" not in sent and "seed" not in sent and "stop" not in sent


def test_n_is_sent_once_and_split_into_completions():
    with FaultServer([Action()]) as srv:
        out = OpenAIBackend(srv.url, "m", **FAST).generate(["a", "b"], SamplingParams(n=3, temperature=1.0))
    assert len(srv.requests) == 2 and all(r["n"] == 3 for r in srv.requests)
    assert [c.text for c in out[0]] == ["ok0", "ok1", "ok2"]
    assert sum(c.tokens_out for c in out[0]) == 6  # usage.completion_tokens, split across the choices


def test_server_refusing_n_gets_single_requests_with_shifted_seeds():
    def refuse_n(request):
        if request.get("n", 1) > 1:
            return Action(400, b'{"error": {"message": "n > 1 is not supported"}}')
        return Action()

    with FaultServer(refuse_n) as srv:
        lm = OpenAIBackend(srv.url, "m", **FAST)
        params = SamplingParams(n=3, temperature=1.0, seed=5)
        with pytest.warns(RuntimeWarning, match="refused n=3"):
            out = lm.generate(["a"], params)
        assert len(out[0]) == 3
        assert [r.get("seed") for r in srv.requests] == [5, 5, 6, 7]  # the probe, then one per sample
        srv.requests.clear()
        lm.generate(["b"], params)  # learnt: no more n > 1 attempts
        assert [r["n"] for r in srv.requests] == [1, 1, 1]


def test_server_ignoring_n_is_topped_up():
    with FaultServer(
        lambda request: Action(body=json.dumps(completion_reply({"prompt": "x"})).encode())
    ) as srv:
        lm = OpenAIBackend(srv.url, "m", **FAST)
        with pytest.warns(RuntimeWarning, match="returned 1 of n=3"):
            out = lm.generate(["a"], SamplingParams(n=3, temperature=1.0, seed=0))
    assert len(out[0]) == 3
    assert [r["n"] for r in srv.requests] == [3, 1, 1]
    assert [r["seed"] for r in srv.requests] == [0, 1, 2]


def test_client_error_on_n_request_is_raised_when_singles_fail_too():
    refusing = FaultServer([Action(400, b'{"error": {"message": "prompt too long"}}')])
    with refusing as srv, pytest.raises(BackendError, match="prompt too long"):
        OpenAIBackend(srv.url, "m", **FAST).generate(["a"], SamplingParams(n=2, temperature=1.0))
    assert len(srv.requests) == 2


def test_missing_usage_estimates_and_warns_once():
    body = json.dumps({"choices": [{"index": 0, "text": "12345678"}]}).encode()
    with FaultServer([Action(body=body)]) as srv:
        lm = OpenAIBackend(srv.url, "m", **FAST)
        with pytest.warns(RuntimeWarning, match="no usage"):
            out = lm.generate(["a"], GREEDY)
        assert (out[0][0].tokens_in, out[0][0].tokens_out) == (0, 2)


def test_stop_string_trimmed_client_side_when_server_returns_it():
    body = json.dumps(
        {
            "choices": [{"index": 0, "text": "x = 4\nQuestion: y"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 5},
        }
    )
    with FaultServer([Action(body=body.encode())]) as srv:
        out = OpenAIBackend(srv.url, "m", **FAST).generate(["a"], SamplingParams(stop=("\nQuestion:",)))
    assert (out[0][0].text, out[0][0].finish_reason) == ("x = 4", "stop")


def test_bad_input():
    with pytest.raises(ValueError, match="http"):
        OpenAIBackend("localhost:8000", "m")
    lm = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(ValueError, match="list of prompts"):
        lm.generate("a bare string", GREEDY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="role"):
        lm.generate([[{"content": "no role"}]], GREEDY)


def test_helpers():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"
    assert split_count(7, [0, 0]) in ([4, 3], [3, 4])
    for total, weights in [(10, [1, 1, 2]), (1, [5, 5, 5]), (100, [3, 0, 7, 1])]:
        counts = split_count(total, weights)
        assert sum(counts) == total and all(c >= 0 for c in counts)
        assert all(abs(c - total * w / sum(weights)) < 1 for c, w in zip(counts, weights))


def test_greedy_n_asks_once_and_copies():
    with FaultServer([Action()]) as srv:
        out = OpenAIBackend(srv.url, "m", **FAST).generate(["a"], SamplingParams(n=4))
    assert [r["n"] for r in srv.requests] == [1]
    assert [c.text for c in out[0]] == ["ok0"] * 4
