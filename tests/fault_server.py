"""A real HTTP server on loopback that misbehaves on purpose, to test OpenAIBackend's error handling.

Each request pops the next action from a script (the last action repeats): reply with a status and
body, hang until released, or answer a well-formed completion. The server counts requests and the
most requests it ever had in flight at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Action:
    status: int = 200
    body: bytes | None = None  # None: a valid completion reply for the request
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to wait before answering (released early on shutdown)


def completion_reply(request: dict[str, Any], text: str = "ok") -> dict[str, Any]:
    n = int(request.get("n", 1))
    chat = "messages" in request
    choices = [
        {
            "index": i,
            "finish_reason": "stop",
            **(
                {"message": {"role": "assistant", "content": f"{text}{i}"}}
                if chat
                else {"text": f"{text}{i}"}
            ),
        }
        for i in range(n)
    ]
    return {"choices": choices, "usage": {"prompt_tokens": 3, "completion_tokens": 2 * n}}


class FaultServer:
    def __init__(self, script: list[Action] | Callable[[dict[str, Any]], Action]):
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self._answer(json.loads(self.rfile.read(length) or b"{}"))

            def _answer(self, request: dict[str, Any]) -> None:
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), **request})
                    action = server._next(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                done = False
                try:
                    if action.hang:
                        server._release.wait(action.hang)
                    body = (
                        action.body
                        if action.body is not None
                        else json.dumps(completion_reply(request)).encode()
                    )
                    # Leave the in-flight count before replying: once the reply is out, the client
                    # may send its next request before this thread runs again.
                    with server._lock:
                        server.in_flight -= 1
                        done = True
                    self.send_response(action.status)
                    for key, value in action.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout), which is what some tests want
                finally:
                    if not done:
                        with server._lock:
                            server.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def _next(self, request: dict[str, Any]) -> Action:
        if callable(self.script):
            return self.script(request)
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
