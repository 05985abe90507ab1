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

#: Headers a proxy does not pass on (hop by hop, and its own credentials).
_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailers", "upgrade"}


class ForwardProxy:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.seen: list[str] = []
        self.refused = 0
        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        client = httpx.Client(timeout=10, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.headers.get("Proxy-Authorization") != expected:
                    proxy.refused += 1
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.seen.append(self.path)  # absolute-form: http://host:port/path
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"host"}}
                answer = client.get(self.path, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP | {"content-length", "transfer-encoding", "content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._client = client
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy("mirror", "proxy-secret")
    try:
        yield proxy
    finally:
        proxy.stop()


class AuthGate:
    def __init__(self, upstream: str, *, username: str, password: str, token: str) -> None:
        self.username, self.password, self.token = username, password, token
        self.seen: list[tuple[str, str | None]] = []
        basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        accepted = {basic, f"Bearer {token}"}
        client = httpx.Client(base_url=upstream.rstrip("/"), timeout=10, trust_env=False)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                given = self.headers.get("Authorization")
                gate.seen.append((self.path, given))
                if given not in accepted:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="company index"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "if-none-match")}
                answer = client.get(self.path, headers=headers)
                self.send_response(answer.status_code)
                for name in ("Content-Type", "ETag", "X-PyPI-Last-Serial", "Location"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/simple/"
        self._client = client
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def private_index(seed_index) -> Iterator[AuthGate]:
    gate = AuthGate(seed_index.base_url, username="ci", password="index-secret", token="tok-123")
    try:
        yield gate
    finally:
        gate.stop()
