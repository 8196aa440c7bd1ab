"""An HTTP/1.1 server with a bounded worker pool, for ``reasonkit serve`` (standard library only).

``ThreadingHTTPServer`` starts one thread per connection, keeps it while the connection idles and
listens with a backlog of 5: 1,000 idle connections held 1,007 threads and 63 of 100 simultaneous
connects were reset. Here:

- the listening socket has a real backlog (``backlog``, default 1024);
- one dispatcher thread watches every open connection with a selector; a connection costs a thread
  only while a request on it is being read or answered (``workers`` threads, a bounded queue in
  front of them: when it is full the client gets a JSON 503 at once);
- a request must arrive whole within ``read_timeout`` seconds of its first byte (slow senders get
  no thread forever); idle keep-alive connections close after ``idle_timeout``; beyond
  ``max_connections`` open ones, the longest idle is closed;
- every error the HTTP layer itself produces (malformed request line, URL too long, unknown method,
  timeouts) is an OpenAI-style JSON error, never an HTML page.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import queue
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

logger = logging.getLogger("reasonkit.serve")


def error_json(status: int, message: str, code: str | None = None) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, unbuffered (nothing is read past the request, so the connection can go
    back to the selector), failing with TimeoutError once the request's deadline has passed."""

    def __init__(self, conn: socket.socket, read_timeout: float) -> None:
        self.conn = conn
        self.read_timeout = read_timeout
        self.deadline: float | None = None  # set at the first byte

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.read_timeout
        remaining = self.deadline - now
        if remaining <= 0:
            raise TimeoutError(f"the request was not received within {self.read_timeout:g} s")
        self.conn.settimeout(remaining)
        return self.conn.recv_into(buffer)


class OneRequestHandler(BaseHTTPRequestHandler):
    """Handles one request per dispatch; errors from the HTTP layer are JSON."""

    protocol_version = "HTTP/1.1"
    server: PooledHTTPServer  # type: ignore[assignment]

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = _DeadlineReader(self.connection, self.server.read_timeout)  # type: ignore[assignment]
        self.wfile = self.connection.makefile("wb", 0)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.close()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unparsable request line leaves HTTP/0.9, which gets no headers
        text = message or self.responses.get(code, ("error",))[0]
        if explain and code != 414:
            text = f"{text}: {explain}"
        self.send_json(code, error_json(code, f"HTTP {code}: {text}"))

    def send_json(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client is gone
            self.close_connection = True


class PooledHTTPServer:
    """Serve ``handler_class`` (a :class:`OneRequestHandler`) on ``address`` with a bounded pool."""

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[OneRequestHandler],
        *,
        workers: int = 32,
        backlog: int = 1024,
        max_connections: int = 1024,
        read_timeout: float = 10.0,
        idle_timeout: float = 60.0,
    ) -> None:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=backlog)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.handler_class = handler_class
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._returned: queue.SimpleQueue[tuple[socket.socket, Any]] = queue.SimpleQueue()
        self._work: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(
            maxsize=max(1024, 4 * workers)
        )
        self._idle: dict[socket.socket, tuple[float, Any]] = {}  # connection -> (last activity, address)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self.busy = 0  # requests being handled now
        self._workers = [
            threading.Thread(target=self._work_loop, name=f"reasonkit-serve-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._workers:
            thread.start()

    # ---- dispatcher ------------------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        last_sweep = time.monotonic()
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(timeout=poll_interval):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        self._dispatch(key.fileobj)  # type: ignore[arg-type]
                if time.monotonic() - last_sweep > min(1.0, self.idle_timeout / 2):
                    last_sweep = time.monotonic()
                    self._close_idle(older_than=self.idle_timeout)
        finally:
            self._stopped.set()

    def _accept(self) -> None:
        for _ in range(256):
            try:
                conn, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving what is open
                logger.warning("accept failed: %r", exc)
                return
            if len(self._idle) >= self.max_connections:
                oldest = min(self._idle, key=lambda c: self._idle[c][0])
                self._forget(oldest)
            self._watch(conn, addr)

    def _watch(self, conn: socket.socket, addr: Any) -> None:
        conn.setblocking(False)
        self._idle[conn] = (time.monotonic(), addr)
        self._selector.register(conn, selectors.EVENT_READ)

    def _dispatch(self, conn: socket.socket) -> None:
        _, addr = self._idle.pop(conn)
        self._selector.unregister(conn)
        try:
            self._work.put_nowait((conn, addr))
        except queue.Full:
            try:
                conn.settimeout(1.0)
                body = error_json(503, "the server is at capacity; retry shortly", "server_busy")
                head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                conn.sendall(head.encode() + body)
            except OSError:
                pass
            _close(conn)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                conn, addr = self._returned.get_nowait()
            except queue.Empty:
                return
            if self._stop.is_set():
                _close(conn)
            else:
                self._watch(conn, addr)

    def _close_idle(self, older_than: float) -> None:
        cutoff = time.monotonic() - older_than
        for conn in [c for c, (t, _) in self._idle.items() if t <= cutoff]:
            self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        self._idle.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        _close(conn)

    # ---- workers ---------------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, addr = item
            self.busy += 1
            keep = False
            try:
                conn.setblocking(True)
                handler = self.handler_class(conn, addr, self)  # type: ignore[arg-type]
                keep = not handler.close_connection
            except Exception as exc:  # a broken connection must never kill a worker
                logger.warning("request from %s failed: %r", addr, exc)
            finally:
                self.busy -= 1
            if keep and not self._stop.is_set():
                self._returned.put((conn, addr))
                try:
                    self._wake_w.send(b"x")
                except OSError:
                    _close(conn)
            else:
                _close(conn)

    # ---- lifecycle -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (from another thread) and wait for it to return."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        self._stop.set()
        for conn in list(self._idle):
            self._forget(conn)
        for _ in self._workers:
            self._work.put(None)
        for thread in self._workers:
            thread.join(timeout=5)
        for sock in (self.socket, self._wake_r, self._wake_w):
            _close(sock)
        self._selector.close()


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
