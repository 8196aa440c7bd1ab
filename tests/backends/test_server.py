"""`reasonkit serve` on loopback: OpenAIBackend round trips against it, its errors, batching and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fault_server import free_port

from reasonkit.backends.base import BackendError
from reasonkit.backends.hf import HFBackend
from reasonkit.backends.loading import load_backend
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.backends.server import ServeConfig, serve_command, start_server
from reasonkit.config import ConfigError, parse_config
from reasonkit.types import SamplingParams

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "what is 2 + 3?"}]


@pytest.fixture(scope="module")
def local(chat_llama, chat_tokenizer) -> HFBackend:
    return HFBackend(chat_llama, chat_tokenizer, name="tiny-chat")


@pytest.fixture(scope="module")
def server(local):
    with start_server(local, max_batch_wait_ms=50) as srv:
        yield srv


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_completions_round_trip_matches_local(server, local):
    client = OpenAIBackend(server.url, server.model_name, max_retries=0)
    params = SamplingParams(max_new_tokens=10, stop=("\n",))
    prompts = ["Question: what is 2 + 3?", "hello", "The quick brown"]
    assert client.generate(prompts, params) == local.generate(prompts, params)


def test_chat_round_trip_and_force_chat(server, local):
    client = OpenAIBackend(server.url, server.model_name, max_retries=0)
    params = SamplingParams(max_new_tokens=8)
    assert client.generate([CHAT], params) == local.generate([CHAT], params)
    forced = OpenAIBackend(server.url, server.model_name, force_chat=True, max_retries=0)
    assert forced.generate(["hi"], params) == local.generate([[{"role": "user", "content": "hi"}]], params)


def test_n_and_seed_round_trip(server, local):
    client = OpenAIBackend(server.url, server.model_name, max_retries=0)
    params = SamplingParams(max_new_tokens=8, temperature=1.5, n=3, seed=21)
    remote = client.generate(["hello", CHAT], params)
    assert remote == local.generate(["hello", CHAT], params)
    assert all(len(r) == 3 for r in remote)


def test_usage_counts_in_raw_replies(server, local):
    status, body = post(
        f"{server.url}/completions",
        {"prompt": ["hello", "The quick"], "max_tokens": 5, "n": 2, "temperature": 0},
    )
    assert status == 200 and body["object"] == "text_completion" and body["model"] == "tiny-chat"
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    expected_in = len(local.encode("hello")) + len(local.encode("The quick"))
    assert body["usage"]["prompt_tokens"] == expected_in
    assert body["usage"]["completion_tokens"] == sum(c["completion_tokens"] for c in body["choices"])
    assert body["usage"]["total_tokens"] == expected_in + body["usage"]["completion_tokens"]
    status, body = post(
        f"{server.url}/chat/completions", {"model": "tiny-chat", "messages": CHAT, "max_tokens": 4}
    )
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["prompt_tokens"] == len(local.encode(CHAT))


def test_models_route_and_load_backend_from_url(server):
    with urllib.request.urlopen(f"{server.url}/models", timeout=10) as response:
        listing = json.loads(response.read())
    assert [m["id"] for m in listing["data"]] == ["tiny-chat"]
    lm = load_backend(server.url)
    assert isinstance(lm, OpenAIBackend) and lm.model == "tiny-chat" and lm.prompt_pack == "natural"
    assert "kinds" not in listing["data"][0]["reasonkit"] and lm.kinds is None  # a general-purpose model


def test_a_served_builtin_model_tells_clients_its_pack_and_kinds():
    builtin = load_backend("builtin")
    with start_server(builtin) as srv:
        client = load_backend(srv.url)
    assert (client.prompt_pack, client.kinds) == ("compact2", ("arith",))  # v4 speaks compact2


@pytest.mark.parametrize(
    ("route", "body", "status", "needle"),
    [
        ("/completions", {"prompt": "x", "model": "other"}, 404, "does not exist"),
        ("/completions", b"{not json", 400, "not valid JSON"),
        ("/completions", {"prompt": "x", "stream": "yes"}, 400, "'stream' must be true or false"),
        ("/completions", {"prompt": "x", "n": 0}, 400, "n must be >= 1"),
        ("/completions", {"prompt": "x", "temperature": "hot"}, 400, "temperature"),
        ("/completions", {"prompt": [1, -2, 3]}, 400, "token ids"),
        ("/completions", {"prompt": [10**6]}, 400, "outside the vocabulary"),
        ("/completions", {}, 400, "prompt"),
        ("/completions", {"prompt": "x", "max_tokens": 0}, 400, "0 only with echo"),
        ("/completions", {"prompt": "x", "logprobs": 21}, 400, "'logprobs' must be in 0..20"),
        (
            "/completions",
            {"prompt": "x", "presence_penalty": 2.5},
            400,
            "'presence_penalty' must be in -2..2",
        ),
        ("/completions", {"prompt": "x", "frequency_penalty": "high"}, 400, "must be a number"),
        (
            "/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
            400,
            "needs logprobs",
        ),
        ("/chat/completions", {"messages": []}, 400, "messages"),
        ("/chat/completions", {"messages": [{"content": "no role"}]}, 400, "role"),
        ("/embeddings", {"input": "x"}, 404, "no route"),
    ],
)
def test_bad_requests_get_openai_style_errors(server, route, body, status, needle):
    got, reply = post(f"{server.url}{route}", body)
    assert got == status
    assert set(reply["error"]) >= {"message", "type", "param", "code"}
    assert needle in reply["error"]["message"]


def test_client_sees_server_errors_clearly(server):
    client = OpenAIBackend(server.url, "not-served", max_retries=0)
    with pytest.raises(BackendError, match=r"HTTP 404.*not-served.*does not exist"):
        client.generate(["x"], SamplingParams(max_new_tokens=2))


def test_concurrent_requests_are_batched_and_correct(server, local):
    client = OpenAIBackend(server.url, server.model_name, max_concurrency=6, max_retries=0)
    prompts = ["hello", "The quick brown", "7 * 6 = 42", "Answer: B.", "user: hi", "Question:"]
    params = SamplingParams(max_new_tokens=6)
    calls_before = server.batcher.calls
    remote = client.generate(prompts, params)
    assert remote == local.generate(prompts, params)
    assert server.batcher.calls - calls_before < len(prompts)  # several HTTP requests shared a forward


def test_model_failure_is_a_500_and_the_server_keeps_serving(chat_llama, chat_tokenizer):
    broken = HFBackend(chat_llama, chat_tokenizer, name="closed")
    broken.close()  # generate() now raises inside the server's model thread
    with start_server(broken) as srv:
        status, reply = post(f"{srv.url}/completions", {"prompt": "x", "max_tokens": 2})
        assert status == 500 and reply["error"]["type"] == "server_error"
        assert "generation failed: BackendError: this HFBackend was closed" in reply["error"]["message"]
        with urllib.request.urlopen(f"{srv.url}/models", timeout=10) as response:
            assert response.status == 200


def test_api_key_is_required_when_set(local):
    with start_server(local, api_key="secret") as srv:
        status, reply = post(f"{srv.url}/completions", {"prompt": "x", "max_tokens": 2})
        assert status == 401 and "API key" in reply["error"]["message"]
        good = OpenAIBackend(srv.url, srv.model_name, api_key="secret", max_retries=0)
        assert len(good.generate(["hello"], SamplingParams(max_new_tokens=2))[0]) == 1


def test_shutdown_closes_the_port(local):
    srv = start_server(local)
    url = srv.url
    srv.shutdown()
    with pytest.raises(BackendError, match="after 1 attempts"):
        OpenAIBackend(url, "x", max_retries=0, timeout=2).generate(["x"], SamplingParams(max_new_tokens=2))


def test_port_in_use_is_a_clear_error(server, local):
    with pytest.raises(BackendError, match=rf"could not listen on 127.0.0.1:{server.port}.*--port"):
        start_server(local, port=server.port)


def test_serve_config_flags():
    config = parse_config(ServeConfig, ["--model", "some/model", "--port", "0", "--batch-size", "4"])
    assert (config.model, config.port, config.host, config.batch_size) == ("some/model", 0, "127.0.0.1", 4)
    with pytest.raises(ConfigError, match="port"):
        parse_config(ServeConfig, ["--port", "70000"])


def test_serve_command_serves_until_ctrl_c(model_dir: Path, capsys):
    """serve_command in this process: a client thread gets an answer, then Ctrl-C ends it with 0."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    answers: list[object] = []

    def client() -> None:
        # wait until the server is up (loading may take long on a busy machine): a client that gave
        # up first would leave serve_command running and the test hanging
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).close()
                break
            except Exception as exc:  # not up yet (any failure: the loop must not die silently)
                if time.monotonic() > deadline:
                    answers.append(TimeoutError(f"the server did not come up in 180 s ({exc!r})"))
                    break  # interrupt anyway: serve_command must not run on forever
                time.sleep(0.1)
        try:
            if not answers:
                lm = OpenAIBackend(url, "tiny", max_retries=5, backoff=0.05, max_backoff=0.1, timeout=30)
                answers.append(lm.generate([CHAT], SamplingParams(max_new_tokens=3)))
        except BaseException as exc:  # reported by the assertion below
            answers.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; serve_command must catch it

    # A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, and Python then keeps
    # it ignored: Ctrl-C's KeyboardInterrupt must be switched on here or the server never stops.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        assert (
            serve_command(["--model", str(model_dir), "--port", str(port), "--served-model-name", "tiny"])
            == 0
        )
        thread.join(timeout=10)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(answers) == 1 and isinstance(answers[0], list) and len(answers[0][0]) == 1, answers
    assert f"'tiny' at {url}" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_command_end_to_end(model_dir: Path):
    """The real command in a child process: prints its URL, answers, and exits 0 on Ctrl-C."""
    code = "import sys; from reasonkit.backends.server import serve_command; sys.exit(serve_command(sys.argv[1:]))"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--model", str(model_dir), "--port", "0", "--served-model-name", "tiny"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while (
            not any(" at http://" in line for line in lines)
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            time.sleep(0.1)
        banner = next((line for line in lines if " at http://" in line), None)
        assert banner is not None, "".join(lines)
        url = banner.split(" at ")[1].split()[0]
        lm = OpenAIBackend(url, "tiny", max_retries=0, timeout=30)
        assert len(lm.generate([CHAT], SamplingParams(max_new_tokens=3))[0]) == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
