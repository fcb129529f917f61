"""Servers that are not what the drill expects: wrong APIs and non-HTTP ports."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: An engine's replies to the calls the drill makes before it polls.
ENGINE_PROBES: Mapping[str, tuple[int, Any]] = {
    "/healthz": (200, {"status": "ok", "version": "0.0.0"}),
    "/api/v1/incidents": (200, {"incidents": [], "next_cursor": None}),
}


@dataclass
class StubHttp:
    """An HTTP server answering each path prefix with a fixed status and body.

    A ``str`` body is sent as HTML, anything else as JSON. Unknown paths get
    ``fallback``. Every request path is kept in ``seen``.
    """

    replies: Mapping[str, tuple[int, Any]]
    fallback: tuple[int, Any] = (404, "<h1>Not Found</h1>")
    seen: list[str] = field(default_factory=list)
    url: str = ""

    def reply(self, path: str) -> tuple[int, Any]:
        self.seen.append(path)
        for prefix, reply in self.replies.items():
            if path.startswith(prefix):
                return reply
        return self.fallback


def _handler(stub: StubHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, body = stub.reply(self.path)
            html = isinstance(body, str)
            raw = (body if html else json.dumps(body)).encode()
            self.send_response(status)
            kind = "text/html" if html else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def stub_http(
    replies: Mapping[str, tuple[int, Any]],
    fallback: tuple[int, Any] = (404, "<h1>Not Found</h1>"),
) -> Iterator[StubHttp]:
    """Run a :class:`StubHttp` on a loopback port for the ``with`` block."""
    stub = StubHttp(replies, fallback)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _read_request(connection: socket.socket) -> None:
    """Read one HTTP request (head and body), so the reply is not cut by a reset."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return
        body += chunk


@contextmanager
def not_http() -> Iterator[str]:
    """A loopback port that answers every request with a non-HTTP banner."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                _read_request(connection)
                connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
