"""A forwarding HTTP proxy on loopback that asks for Basic credentials (407 without them).

``forward_proxy`` yields a ``ForwardProxy``: ``url`` to give as a remote's ``proxy_url``,
``username`` / ``password`` it accepts, and ``seen``: the absolute URLs it forwarded.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

__all__ = ["ForwardProxy", "forward_proxy"]

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
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
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
