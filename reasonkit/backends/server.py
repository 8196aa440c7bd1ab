"""``reasonkit serve``: an OpenAI-compatible HTTP server over any LanguageModel (stdlib only).

    reasonkit serve --model builtin --port 8000          # then: load_backend("http://127.0.0.1:8000/v1")

    >>> with start_server(HFBackend("path/to/model")) as server:      # doctest: +SKIP
    ...     lm = OpenAIBackend(server.url, server.model_name)

Routes: ``GET /v1/models``, ``GET /health``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(request format in :mod:`reasonkit.backends.wire`). Binds 127.0.0.1 unless told otherwise; with
``--api-key`` every request must send ``Authorization: Bearer <key>``.

Concurrency: HTTP requests are handled on threads, but the model is driven by one batching thread.
Requests that arrive while the model is busy (or within ``max_batch_wait_ms`` of an idle model) and
share the same sampling parameters run as one ``generate`` call, so N concurrent clients cost about
one batched forward per step instead of N. Seeded requests give the same samples whatever they are
batched with (HFBackend seeds per row).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reasonkit.backends.base import BackendError, LanguageModel, declared_kinds
from reasonkit.backends.options import BackendOptions
from reasonkit.backends.wire import WireError, models_reply, parse_request, reply
from reasonkit.types import Completion, Prompt, SamplingParams

logger = logging.getLogger("reasonkit.serve")
MAX_BODY_BYTES = 32 * 2**20
_Job = tuple[list[Prompt], SamplingParams, "Future[list[list[Completion]]]"]


@dataclass
class ServeConfig(BackendOptions):
    """Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)."""

    host: str = field(
        default="127.0.0.1",
        metadata={"help": "address to bind; 0.0.0.0 exposes the server to the network (set --api-key then)"},
    )
    port: int = field(default=8000, metadata={"help": "port to listen on (0 picks a free one)"})
    served_model_name: str | None = field(
        default=None,
        metadata={"help": "model id reported by /v1/models and accepted in requests; unset: --model"},
    )
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "if set, requests must send 'Authorization: Bearer <key>' (REASONKIT_SERVE_API_KEY in the "
            "environment does the same and keeps the key out of the process list)"
        },
    )
    device: str | None = field(
        default=None,
        metadata={"help": "device for a local model, e.g. cuda:0 or cpu; unset: all GPUs, else CPU"},
    )
    dtype: str = field(default="auto", metadata={"help": "'auto', 'float32', 'bfloat16' or 'float16'"})
    batch_size: int = field(default=32, metadata={"help": "most sequences per forward pass of a local model"})
    max_batch_wait_ms: float = field(
        default=5.0, metadata={"help": "how long an idle server waits for more requests to batch together"}
    )
    default_max_tokens: int = field(
        default=256, metadata={"help": "max_tokens of chat requests that do not set it (completions: 16)"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.batch_size < 1 or self.default_max_tokens < 1 or self.max_batch_wait_ms < 0:
            raise ValueError("batch_size and default_max_tokens must be >= 1, max_batch_wait_ms >= 0")


class RequestBatcher:
    """One thread that drives the model, merging queued requests with equal SamplingParams into one call."""

    def __init__(self, backend: LanguageModel, max_wait_s: float = 0.005, max_prompts: int = 256):
        self.backend = backend
        self.max_wait_s = max_wait_s
        self.max_prompts = max_prompts
        self.calls = 0  # generate calls made, for tests and monitoring
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="reasonkit-serve-model", daemon=True)
        self._thread.start()

    def submit(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Completion]]:
        future: Future[list[list[Completion]]] = Future()
        self._queue.put((prompts, params, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size, stopping = [first], len(first[0]), False
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_prompts:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                stopping = True
                break
            jobs.append(item)
            size += len(item[0])
        return jobs, stopping

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs, stopping = self._collect(first)
            groups: dict[SamplingParams, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job[1], []).append(job)
            for params, group in groups.items():
                self._run_group(params, group)
        while not self._queue.empty():  # fail what arrived during shutdown instead of leaving it hanging
            leftover = self._queue.get_nowait()
            if leftover is not None:
                leftover[2].set_exception(BackendError("the server is shutting down"))

    def _run_group(self, params: SamplingParams, group: list[_Job]) -> None:
        prompts = [p for job in group for p in job[0]]
        try:
            self.calls += 1
            results = self.backend.generate(prompts, params)
        except Exception as exc:
            for job in group:
                job[2].set_exception(exc)
            return
        start = 0
        for job_prompts, _, future in group:
            future.set_result(results[start : start + len(job_prompts)])
            start += len(job_prompts)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is routine for a server; one line, not a traceback.
        logger.warning("connection from %s failed: %r", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            app = self.server.app
            self._send(200, models_reply(app.model_name, app.prompt_pack, declared_kinds(app.backend)))
        elif self.path.rstrip("/") == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send_error(
                WireError(f"no route GET {self.path}; try GET /v1/models", 404, code="not_found")
            )

    def do_POST(self) -> None:
        route = self.path.rstrip("/")
        if route not in ("/v1/completions", "/v1/chat/completions"):
            self.close_connection = True  # the unread body would corrupt the next request on this connection
            message = f"no route POST {self.path}; use /v1/completions or /v1/chat/completions"
            self._send_error(WireError(message, 404, code="not_found"))
            return
        if not self._authorized():
            return
        try:
            body = self._read_json()
            app = self.server.app
            request = parse_request(
                body, route.endswith("chat/completions"), app.model_name, app.default_max_tokens
            )
        except WireError as exc:
            self._send_error(exc)
            return
        try:
            results = self.server.app.batcher.submit(request.prompts, request.params)
        except Exception as exc:  # the model failed: report it to the client, keep serving
            logger.exception("generation failed")
            self._send_error(
                WireError(f"generation failed: {type(exc).__name__}: {exc}", 500, code="server_error")
            )
            return
        self._send(200, reply(request, results, self.server.app.model_name))

    def _read_json(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise WireError("chunked request bodies are not supported; send Content-Length", 411)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise WireError("a JSON body with a Content-Length header is required", 411) from None
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise WireError(f"request body must be at most {MAX_BODY_BYTES} bytes", 413)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise WireError(f"the request body is not valid JSON: {exc}") from None

    def _authorized(self) -> bool:
        key = self.server.app.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self.close_connection = True
        self._send_error(
            WireError("missing or wrong API key (Authorization: Bearer <key>)", 401, code="invalid_api_key")
        )
        return False

    def _send_error(self, exc: WireError) -> None:
        self._send(exc.status, exc.to_json())

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class OpenAIServer:
    """An OpenAI-compatible server over ``backend``; :meth:`start` runs it on a background thread."""

    def __init__(
        self,
        backend: LanguageModel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        served_model_name: str | None = None,
        api_key: str | None = None,
        max_batch_wait_ms: float = 5.0,
        default_max_tokens: int = 256,
        owns_backend: bool = False,
    ):
        self.backend = backend
        self.model_name = served_model_name or backend.name
        self.prompt_pack = str(getattr(backend, "prompt_pack", "natural"))
        self.api_key = api_key
        self.default_max_tokens = default_max_tokens
        self.owns_backend = owns_backend
        try:
            self.httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:
            raise BackendError(
                f"could not listen on {host}:{port} ({exc.strerror or exc}); choose another --port (0 picks a free one)"
            ) from exc
        self.httpd.app = self
        self.batcher = RequestBatcher(backend, max_wait_s=max_batch_wait_ms / 1000)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients use, ending in /v1."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        # A short poll interval makes shutdown() return promptly (it waits for the next poll).
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="reasonkit-serve-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop accepting requests, finish the model thread, close the socket (and the backend if owned)."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self.batcher.close()
        if self.owns_backend:
            close = getattr(self.backend, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def start_server(
    backend: LanguageModel | str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    served_model_name: str | None = None,
    api_key: str | None = None,
    max_batch_wait_ms: float = 5.0,
    default_max_tokens: int = 256,
    **backend_kwargs: Any,
) -> OpenAIServer:
    """Serve ``backend`` (a LanguageModel, or a spec for :func:`load_backend`) on a background thread.

    ``port=0`` picks a free port; the returned server has ``.url`` and ``.shutdown()`` (or use ``with``).
    A backend loaded here from a spec is closed on shutdown; one passed in is left to the caller.
    """
    owns = isinstance(backend, str)
    if isinstance(backend, str):
        from reasonkit.backends.loading import load_backend

        served_model_name = served_model_name or backend
        backend = load_backend(backend, **backend_kwargs)
    elif backend_kwargs:
        raise TypeError(f"backend options {sorted(backend_kwargs)} only apply when backend is a spec string")
    server = OpenAIServer(
        backend,
        host=host,
        port=port,
        served_model_name=served_model_name,
        api_key=api_key,
        max_batch_wait_ms=max_batch_wait_ms,
        default_max_tokens=default_max_tokens,
        owns_backend=owns,
    )
    return server.start()


def serve_command(argv: Sequence[str]) -> int:
    """``reasonkit serve``: load the model, serve until Ctrl-C, return an exit code."""
    from reasonkit.config import parse_config

    config = parse_config(ServeConfig, argv, prog="reasonkit serve")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api_key = config.api_key or os.environ.get("REASONKIT_SERVE_API_KEY") or None
    if config.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        logger.warning(
            "serving on %s without --api-key: anyone who can reach this port can use the model", config.host
        )
    local: dict[str, Any] = {"device": config.device, "dtype": config.dtype, "batch_size": config.batch_size}
    backend = config.load(config.model, local=local)
    server = OpenAIServer(
        backend,
        host=config.host,
        port=config.port,
        served_model_name=config.served_model_name or config.model,
        api_key=api_key,
        max_batch_wait_ms=config.max_batch_wait_ms,
        default_max_tokens=config.default_max_tokens,
        owns_backend=True,
    )
    print(
        f"reasonkit serve: {server.model_name!r} at {server.url} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
