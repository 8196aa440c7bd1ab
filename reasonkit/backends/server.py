"""``reasonkit serve``: an OpenAI-compatible HTTP server over any LanguageModel (stdlib only).

    reasonkit serve --model builtin --port 8000          # then: load_backend("http://127.0.0.1:8000/v1")

    >>> with start_server(HFBackend("path/to/model")) as server:      # doctest: +SKIP
    ...     lm = OpenAIBackend(server.url, server.model_name)

Routes: ``GET /v1/models``, ``GET /health``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(request format in :mod:`reasonkit.backends.wire`, replies in :mod:`.wire_reply`, token-level
features in :mod:`.serve_tokens`). Binds 127.0.0.1 unless told otherwise; another address needs
``--api-key`` (every request then sends ``Authorization: Bearer <key>``) or ``--insecure-no-api-key``.

Under load and abuse (docs/backends.md, "Limits"): connections are served by a bounded worker pool
(:mod:`.http_pool`); requests are checked against the caps and the model's context before anything
runs; the model thread (:mod:`.scheduler`) serves requests round-robin in small units, batching
those with equal sampling parameters, and drops a request's remaining work when its client
disconnects or its deadline passes. A streamed request on a local model is written while it
generates (the model thread hands it the tokens after every step; ``_Handler._stream_live``).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from reasonkit.backends import serve_tokens
from reasonkit.backends.base import BackendError, LanguageModel, declared_kinds
from reasonkit.backends.http_pool import OneRequestHandler, PooledHTTPServer
from reasonkit.backends.scheduler import Cancelled, Scheduler
from reasonkit.backends.serve_config import ServeConfig, is_loopback
from reasonkit.backends.wire import Limits, WireError, parse_request
from reasonkit.backends.wire_reply import ChunkMaker, models_reply, reply, stream_chunks
from reasonkit.types import Completion

__all__ = ["OpenAIServer", "ServeConfig", "serve_command", "start_server"]
logger = logging.getLogger("reasonkit.serve")
MAX_BODY_BYTES = 8 * 2**20
MAX_PATH_SHOWN = 200


class _Handler(OneRequestHandler):
    app: OpenAIServer

    def do_GET(self) -> None:
        if not self._authorized():
            return
        app = self.server.app  # type: ignore[attr-defined]
        route = self.path.split("?")[0].rstrip("/")
        if route == "/v1/models":
            self._send(200, models_reply(app.model_name, app.prompt_pack, declared_kinds(app.backend)))
        elif route == "/health":
            self._send(200, {"status": "ok", "busy_workers": self.server.busy})
        else:
            self._send_error(
                WireError(f"no route GET {self._shown_path()}; try GET /v1/models", 404, code="not_found")
            )

    def do_POST(self) -> None:
        route = self.path.rstrip("/")
        if route not in ("/v1/completions", "/v1/chat/completions"):
            self.close_connection = True  # the unread body would corrupt the next request on this connection
            message = f"no route POST {self._shown_path()}; use /v1/completions or /v1/chat/completions"
            self._send_error(WireError(message, 404, code="not_found"))
            return
        if not self._authorized():
            return
        app: OpenAIServer = self.server.app  # type: ignore[attr-defined]
        try:
            request = parse_request(
                self._read_json(app.max_body_bytes),
                route.endswith("chat/completions"),
                app.model_name,
                app.limits,
            )
            _check_penalties(app.backend, request)
            encoded = serve_tokens.prompt_ids(app.backend, request)
            if _streams_live(app, request, encoded):
                assert encoded is not None
                self._stream_live(request, encoded)
                return
            results = None
            if request.params is not None:
                ticket = app.scheduler.submit(
                    serve_tokens.generation_prompts(request, encoded),
                    request.params,
                    time.monotonic() + app.request_deadline,
                )
                results = self._wait(ticket)
            choices = serve_tokens.choices(app.backend, request, encoded, results)
        except WireError as exc:
            self._send_error(exc)
            return
        except Cancelled as exc:
            logger.info("%s", exc)
            self.close_connection = True
            self._send_error(WireError(str(exc), 504, code="timeout"))
            return
        except Exception as exc:  # the model failed: report it to the client, keep serving
            logger.exception("generation failed")
            self._send_error(
                WireError(f"generation failed: {type(exc).__name__}: {exc}", 500, code="server_error")
            )
            return
        prompt_tokens = (
            sum(len(ids) for ids in encoded)
            if encoded is not None
            else sum(r[0].tokens_in for r in (results or []) if r)
        )
        if request.stream:
            self._stream(stream_chunks(request, choices, prompt_tokens, app.model_name))
        else:
            self._send(200, reply(request, choices, prompt_tokens, app.model_name))

    def do_PUT(self) -> None:
        self._method_not_allowed()

    do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_PUT

    def _method_not_allowed(self) -> None:
        self.close_connection = True
        error = WireError(
            f"method {self.command} is not allowed; use GET or POST", 405, code="method_not_allowed"
        )
        self.send_json(405, json.dumps(error.to_json()).encode(), {"Allow": "GET, POST"})

    def _wait(self, ticket: Any) -> list[list[Completion]]:
        """The ticket's rows; cancels it when the client hangs up or the deadline passes."""
        while True:
            try:
                return ticket.future.result(timeout=0.1)  # type: ignore[no-any-return]
            except FutureTimeout:
                pass
            if _client_gone(self.connection):
                ticket.cancel("the client disconnected")
                raise Cancelled("request cancelled: the client disconnected")
            if time.monotonic() >= ticket.deadline:
                ticket.cancel("its deadline passed")
                raise Cancelled(
                    f"request cancelled: not finished within {self.server.app.request_deadline:g} s "  # type: ignore[attr-defined]
                    "(reasonkit serve --request-deadline)"
                )

    def _read_json(self, limit: int) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise WireError("chunked request bodies are not supported; send Content-Length", 411)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise WireError("a JSON body with a Content-Length header is required", 411) from None
        if not 0 <= length <= limit:
            self.close_connection = True
            raise WireError(
                f"request body must be at most {limit} bytes (reasonkit serve --max-body-mb)", 413
            )
        chunks, got = [], 0
        while got < length:
            chunk = self.rfile.read(min(length - got, 1 << 20))
            if not chunk:
                self.close_connection = True
                raise WireError(f"the body ended after {got} of {length} bytes", 400)
            chunks.append(chunk)
            got += len(chunk)
        try:
            return json.loads(b"".join(chunks))
        except RecursionError:
            raise WireError("the request JSON is nested too deeply") from None
        except ValueError as exc:
            raise WireError(f"the request body is not valid JSON: {exc}") from None

    def _authorized(self) -> bool:
        key = self.server.app.api_key  # type: ignore[attr-defined]
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

    def _shown_path(self) -> str:
        path = self.path
        return path if len(path) <= MAX_PATH_SHOWN else f"{path[:MAX_PATH_SHOWN]}… ({len(path)} characters)"

    def _send_error(self, exc: WireError) -> None:
        self._send(exc.status, exc.to_json())

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        self.send_json(status, json.dumps(payload, ensure_ascii=False).encode())

    def _stream(self, chunks: Any) -> None:
        """Server-sent events; the connection closes after ``data: [DONE]``."""
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            logger.info("a streaming client disconnected")

    def _stream_live(self, request: Any, encoded: list[list[int]]) -> None:
        """Server-sent events written while the model generates: each choice's text as far as it is
        certain (:func:`serve_tokens.stream_prefix`), then the rest from the finished completion."""
        app: OpenAIServer = self.server.app  # type: ignore[attr-defined]
        params = request.params
        updates: queue.SimpleQueue[tuple[int, int, list[int]]] = queue.SimpleQueue()
        ticket = app.scheduler.submit(
            serve_tokens.generation_prompts(request, encoded),
            params,
            time.monotonic() + app.request_deadline,
            on_tokens=lambda i, j, ids: updates.put((i, j, ids)),
        )
        make = ChunkMaker(request, app.model_name)
        n = request.n
        sent = [""] * (len(request.prompts) * n)
        fan = params.temperature == 0  # greedy: one row per prompt serves all n choices
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            if request.chat:
                for index in range(len(sent)):
                    self._event(make.role(index))
            checked = time.monotonic()
            while not ticket.future.done():
                latest: dict[tuple[int, int], list[int]] = {}
                with contextlib.suppress(queue.Empty):
                    latest.update([_keyed(updates.get(timeout=0.05))])
                if not latest or time.monotonic() - checked > 0.2:  # also while text is held back
                    checked = time.monotonic()
                    if _client_gone(self.connection):
                        ticket.cancel("the client disconnected")
                        return
                    if time.monotonic() >= ticket.deadline:
                        ticket.cancel("its deadline passed")
                        self._event(
                            WireError("request cancelled: deadline passed", 504, code="timeout").to_json()
                        )
                        return
                if not latest:
                    continue
                while True:  # each update holds all tokens so far: only the latest per row matters
                    try:
                        latest.update([_keyed(updates.get_nowait())])
                    except queue.Empty:
                        break
                for (i, j), ids in latest.items():
                    text = serve_tokens.stream_prefix(app.backend, ids, params.stop)
                    for index in range(i * n, (i + 1) * n) if fan else (i * n + j,):
                        if len(text) > len(sent[index]) and text.startswith(sent[index]):
                            self._event(make.piece(index, text[len(sent[index]) :]))
                            sent[index] = text
            try:
                results = ticket.future.result()
            except Exception as exc:  # headers are out: report it as an error event
                logger.info("streamed generation failed: %s", exc)
                self._event(WireError(f"generation failed: {type(exc).__name__}: {exc}", 500).to_json())
                return
            choices = serve_tokens.choices(app.backend, request, encoded, results)
            for index, c in enumerate(choices):
                if not c.text.startswith(sent[index]):  # the tokenizer decoded a prefix differently
                    logger.warning("streamed text of choice %d is not a prefix of its completion", index)
                elif len(c.text) > len(sent[index]):
                    self._event(make.piece(index, c.text[len(sent[index]) :]))
            for index, c in enumerate(choices):
                self._event(make.finish(index, c.finish_reason))
            if request.include_usage:
                prompt_tokens = sum(len(ids) for ids in encoded)
                self._event(make.usage(prompt_tokens, sum(c.completion_tokens for c in choices)))
        except OSError:
            ticket.cancel("the client disconnected")
            logger.info("a streaming client disconnected")
            return
        except Exception as exc:  # headers are out: the status cannot change, so say it in the stream
            ticket.cancel("the stream failed")
            logger.exception("streaming failed")
            with contextlib.suppress(OSError):
                self._event(WireError(f"streaming failed: {type(exc).__name__}: {exc}", 500).to_json())
            return
        try:
            self.wfile.write(b"data: [DONE]\n\n")
        except OSError:
            logger.info("a streaming client disconnected")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def _keyed(update: tuple[int, int, list[int]]) -> tuple[tuple[int, int], list[int]]:
    i, j, ids = update
    return (i, j), ids


def _streams_live(app: OpenAIServer, request: Any, encoded: list[list[int]] | None) -> bool:
    """Whether a streamed request can be written while it generates: a local model that reports its
    tokens, something to generate, and no per-token log-probs (those are scored after generation)."""
    return bool(
        request.stream
        and request.params is not None
        and request.logprobs is None
        and not request.echo
        and encoded is not None
        and app.scheduler.streams
    )


def _check_penalties(backend: LanguageModel, request: Any) -> None:
    """Refuse presence/frequency penalties for a backend that would ignore them (say which)."""
    params = request.params
    if params is None or not params.penalized or getattr(backend, "supports_penalties", False):
        return
    key = "presence_penalty" if params.presence_penalty else "frequency_penalty"
    raise WireError(
        f"'{key}' cannot apply: the served backend {backend.name!r} ({type(backend).__name__}) does not "
        "apply presence/frequency penalties, and ignoring them would silently change your results; "
        "leave them out or 0",
        param=key,
    )


def _client_gone(conn: socket.socket) -> bool:
    """Whether the peer closed its side (readable with nothing to read); pipelined bytes are not a close."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


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
        max_tokens_limit: int = 4096,
        max_prompts: int = 256,
        max_body_bytes: int = MAX_BODY_BYTES,
        request_deadline: float = 600.0,
        workers: int = 32,
        read_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ):
        self.backend = backend
        self.model_name = served_model_name or backend.name
        self.prompt_pack = str(getattr(backend, "prompt_pack", "natural"))
        self.api_key = api_key
        self.limits = Limits(
            max_prompts=max_prompts, max_tokens=max_tokens_limit, default_max_tokens=default_max_tokens
        )
        self.default_max_tokens = default_max_tokens
        self.max_body_bytes = max_body_bytes
        self.request_deadline = request_deadline
        self.owns_backend = owns_backend
        try:
            self.httpd = PooledHTTPServer(
                (host, port), _Handler, workers=workers, read_timeout=read_timeout, idle_timeout=idle_timeout
            )
        except OSError as exc:
            raise BackendError(
                f"could not listen on {host}:{port} ({exc.strerror or exc}); choose another --port (0 picks a free one)"
            ) from exc
        self.httpd.app = self  # type: ignore[attr-defined]
        batch = int(getattr(backend, "batch_size", 32))
        self.scheduler = Scheduler(
            backend,
            max_wait_s=max_batch_wait_ms / 1000,
            max_prompts=max(batch, 1) * 8,
            unit_prompts=max(1, batch // 4),
        )
        self.batcher = self.scheduler  # the name older code and tests use
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
        # A short poll interval makes shutdown() return promptly.
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
        self.scheduler.close()
        self.httpd.server_close()
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
    **options: Any,
) -> OpenAIServer:
    """Serve ``backend`` (a LanguageModel, or a spec for :func:`load_backend`) on a background thread.

    ``port=0`` picks a free port; the returned server has ``.url`` and ``.shutdown()`` (or use ``with``).
    Keywords of :class:`OpenAIServer` (``api_key``, ``max_tokens_limit``, ``max_prompts`` …) set the
    server; any others go to ``load_backend`` (only with a spec). A backend loaded here from a spec is
    closed on shutdown; one passed in is left to the caller.
    """
    import inspect

    server_keys = set(inspect.signature(OpenAIServer).parameters)
    server_options = {k: v for k, v in options.items() if k in server_keys}
    backend_kwargs = {k: v for k, v in options.items() if k not in server_keys}
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
        owns_backend=owns,
        **server_options,
    )
    return server.start()


def serve_command(argv: Sequence[str]) -> int:
    """``reasonkit serve``: load the model, serve until Ctrl-C, return an exit code."""
    from reasonkit.config import ConfigError, parse_config

    config = parse_config(ServeConfig, argv, prog="reasonkit serve")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api_key = config.api_key or os.environ.get("REASONKIT_SERVE_API_KEY") or None
    if not is_loopback(config.host) and api_key is None:
        if not config.insecure_no_api_key:
            raise ConfigError(
                f"--host {config.host} exposes the model beyond this machine; set --api-key KEY (or "
                "REASONKIT_SERVE_API_KEY), or pass --insecure-no-api-key to serve it to anyone who can reach the port"
            )
        logger.warning(
            "serving on %s without an API key (--insecure-no-api-key): anyone who can reach this port can use the model",
            config.host,
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
        max_tokens_limit=config.max_tokens_limit,
        max_prompts=config.max_prompts,
        max_body_bytes=int(config.max_body_mb * 2**20),
        request_deadline=config.request_deadline,
        workers=config.workers,
        read_timeout=config.read_timeout,
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
