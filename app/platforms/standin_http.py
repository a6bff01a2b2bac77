"""Local stand-ins for the WeChat server API and the Alipay gateway: real HTTP on 127.0.0.1.

They answer the calls Huiyuan makes, the way the platforms do, so the real client code runs end
to end offline (tests and the development sandbox). Each runs a ``ThreadingHTTPServer`` in a
daemon thread on a free loopback port; ``url`` is what ``WECHAT_API_BASE_URL`` /
``ALIPAY_GATEWAY_URL`` point at. The platforms: ``wechat_standin``, ``alipay_standin``.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit


class _Handler(BaseHTTPRequestHandler):
    standin: ClassVar[Any]

    def log_message(self, format: str, *args: Any) -> None:
        return  # query strings carry secrets: never print them

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        status, body = self.standin.handle("GET", parts.path, query, b"", dict(self.headers))
        self._answer(status, body)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = dict(parse_qsl(parts.query))
        status, body = self.standin.handle("POST", parts.path, query, raw, dict(self.headers))
        self._answer(status, body)


class StandInServer:
    """A loopback HTTP server in a thread. ``start()`` → ``url``; ``stop()`` when done."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.current_headers: dict[str, str] = {}  # the request being routed (under the lock)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "stand-in not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> StandInServer:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(
        self, method: str, path: str, query: dict, body: bytes, headers: dict | None = None
    ) -> tuple[int, str]:
        with self._lock:
            self.requests.append((method, path))
            self.current_headers = headers or {}
            return self.route(method, path, query, body)

    def route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, str]:
        raise NotImplementedError


def sandbox_id(prefix: str, code: str) -> str:
    """A stable id derived from a ``sandbox-…`` code (the sandbox accepts any such code)."""
    return prefix + hashlib.sha256(code.encode()).hexdigest()[:24]
