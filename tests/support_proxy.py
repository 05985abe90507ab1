"""Loopback HTTP middlemen that ask for credentials, in front of a fixture index.

- ``forward_proxy`` yields a ``ForwardProxy`` (407 without Basic credentials): ``url`` to give as
  a remote's ``proxy_url``, the ``username`` / ``password`` it accepts, and ``seen``: the absolute
  URLs it forwarded.
- ``private_index`` yields an ``AuthGate`` over the seed index, as a company index would be (401
  without credentials): ``url`` is its simple root; it takes Basic ``username`` / ``password`` or
  the header ``Authorization: Bearer <token>``; ``seen`` holds each request's path and the
  ``Authorization`` it came with.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

__all__ = ["AuthGate", "ForwardProxy", "forward_proxy", "private_index"]

#: Headers not passed on (hop by hop, credentials meant for the middleman, and what it recomputes).
_HOP = {
    "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailers", "upgrade",
    "host", "content-length", "transfer-encoding", "content-encoding",
}  # fmt: skip


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class _Middleman:
    """A threaded HTTP server that refuses what ``refuse`` names and forwards the rest with httpx.

    ``refuse(handler)`` returns None to forward, or ``(status, challenge header, value)``;
    ``target(path)`` is the URL to forward a request line's target to.
    """

    def __init__(self, base_url: str | None = None) -> None:
        self._client = httpx.Client(base_url=base_url or "", timeout=10, trust_env=False)
        middleman = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                refused = middleman.refuse(self)
                if refused is not None:
                    status, name, value = refused
                    self.send_response(status)
                    self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"authorization"}}
                answer = middleman._client.get(self.path, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def refuse(self, request: BaseHTTPRequestHandler) -> tuple[int, str, str] | None:
        raise NotImplementedError

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


class ForwardProxy(_Middleman):
    """A forwarding proxy (requests in absolute form) that answers 407 without its credentials."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.url = self.address
        self.seen: list[str] = []
        self.refused = 0

    def refuse(self, request: BaseHTTPRequestHandler) -> tuple[int, str, str] | None:
        if request.headers.get("Proxy-Authorization") != _basic(self.username, self.password):
            self.refused += 1
            return 407, "Proxy-Authenticate", 'Basic realm="test"'
        self.seen.append(request.path)  # absolute form: http://host:port/path
        return None


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy("mirror", "proxy-secret")
    try:
        yield proxy
    finally:
        proxy.stop()


class AuthGate(_Middleman):
    """A private index in front of ``upstream``: 401 without Basic credentials or the bearer token."""

    def __init__(self, upstream: str, *, username: str, password: str, token: str) -> None:
        super().__init__(base_url=upstream.rstrip("/"))
        self.username, self.password, self.token = username, password, token
        self.url = f"{self.address}/simple/"
        self.seen: list[tuple[str, str | None]] = []
        self._accepted = {_basic(username, password), f"Bearer {token}"}

    def refuse(self, request: BaseHTTPRequestHandler) -> tuple[int, str, str] | None:
        given = request.headers.get("Authorization")
        self.seen.append((request.path, given))
        return None if given in self._accepted else (401, "WWW-Authenticate", 'Basic realm="company index"')


@pytest.fixture
def private_index(seed_index) -> Iterator[AuthGate]:
    gate = AuthGate(seed_index.base_url, username="ci", password="index-secret", token="tok-123")
    try:
        yield gate
    finally:
        gate.stop()
