"""Serve a built fixture index over loopback HTTP/1.1 (keep-alive), as a PyPI-compatible simple index.

Routes::

    GET /simple/                 the listing, negotiated (PEP 691) between JSON and HTML
    GET /simple/<project>/       a project page, negotiated; ``X-PyPI-Last-Serial`` header;
                                 a non-normalized name or a missing slash redirects (301), as PyPI does
    GET /files/<xx>/<filename>   a file (or its ``.metadata``), with Content-Length; with ``ranges=True``
                                 a single ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` answers 206
    GET /pypi/<project>/json     the legacy JSON API (what bandersnatch reads), ``X-PyPI-Last-Serial``;
                                 its file URLs are absolute, under ``/packages/``
    GET /packages/<xx>/<filename>  the same files, at the path layout of the public index's file host

``mode`` pins the format: ``"negotiate"`` (default), ``"html-only"`` (ignores ``Accept``, as old
mirrors do) or ``"json-only"``. ``RunningIndex.hits`` counts requests per path. Without ``ranges``
(the default) files ignore ``Range`` and answer 200 with the whole file, as a plain static server does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name

from mirrorflow.fixtureindex.builder import FixtureProject, build_index

__all__ = ["JSON_TYPE", "HTML_V1_TYPE", "Mode", "RunningIndex", "choose_format", "serve_index"]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
Mode = Literal["negotiate", "html-only", "json-only"]


def _host_port(server: ThreadingHTTPServer) -> tuple[str, int]:
    """The address an IPv4 or IPv6 server listens on (``server_address`` is typed loosely)."""
    host, port = server.server_address[:2]
    return (host if isinstance(host, str) else host.decode()), int(port)


def _accept_q(accept: str, media_type: str) -> float:
    """Return the q-value ``accept`` gives ``media_type`` (most specific range wins; 0 when absent)."""
    main = media_type.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        kind = kind.lower()
        specificity = {media_type: 2, f"{main}/*": 1, "*/*": 0}.get(kind)
        if specificity is None or specificity < best[0]:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = (specificity, q)
    return best[1]


def choose_format(accept: str | None, mode: Mode = "negotiate") -> str:
    """Return the media type to answer with: JSON only when the client prefers it strictly.

    >>> choose_format("application/vnd.pypi.simple.v1+json, text/html;q=0.1")
    'application/vnd.pypi.simple.v1+json'
    >>> choose_format(None)
    'text/html'
    """
    if mode != "negotiate":
        return JSON_TYPE if mode == "json-only" else "text/html"
    accept = accept or "*/*"
    q_json, q_v1_html, q_html = (_accept_q(accept, kind) for kind in (JSON_TYPE, HTML_V1_TYPE, "text/html"))
    if q_json > max(q_v1_html, q_html):
        return JSON_TYPE
    return HTML_V1_TYPE if q_v1_html > q_html else "text/html"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _IndexServer
    timeout = 30  # An idle keep-alive connection frees its thread after this many seconds.

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass  # Keep test output clean.

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def _dispatch(self, *, send_body: bool) -> None:
        path = urlsplit(self.path).path
        self.server.count(path)
        if path in {"/simple", "/simple/"}:
            if path == "/simple":
                return self._redirect("/simple/", send_body)
            return self._page(self.server.root / "simple", self.server.last_serial, send_body)
        if path.startswith("/simple/"):
            name = unquote(path[len("/simple/") :]).rstrip("/")
            normalized = canonicalize_name(name)
            if normalized not in self.server.serials:
                return self._send(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain", send_body)
            if name != normalized or not path.endswith("/"):
                return self._redirect(f"/simple/{quote(normalized)}/", send_body)
            serial = self.server.serials[normalized]
            return self._page(self.server.root / "simple" / normalized, serial, send_body)
        if path.startswith("/pypi/") and path.endswith("/json"):
            return self._legacy_json(unquote(path[len("/pypi/") : -len("/json")]), send_body)
        for prefix in ("/files/", "/packages/"):
            if path.startswith(prefix):
                return self._file(unquote(path[len(prefix) :]), send_body)
        return self._send(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain", send_body)

    def _page(self, directory: Path, serial: int, send_body: bool) -> None:
        media_type = choose_format(self.headers.get("Accept"), self.server.mode)
        name = "index.json" if media_type == JSON_TYPE else "index.html"
        body = (directory / name).read_bytes()
        content_type = media_type if media_type == JSON_TYPE else f"{media_type}; charset=utf-8"
        headers = {"X-PyPI-Last-Serial": str(serial), "Vary": "Accept"}
        if self.server.etags:
            headers["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
            if self.headers.get("If-None-Match") == headers["ETag"]:
                self.server.count_not_modified(urlsplit(self.path).path)
                return self._send(HTTPStatus.NOT_MODIFIED, b"", content_type, send_body, headers)
        self._send(HTTPStatus.OK, body, content_type, send_body, headers)

    def _legacy_json(self, name: str, send_body: bool) -> None:
        normalized = canonicalize_name(name)
        if normalized not in self.server.serials:
            return self._send(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain", send_body)
        if name != normalized:
            return self._redirect(f"/pypi/{quote(normalized)}/json", send_body)
        document = json.loads((self.server.root / "pypi" / normalized / "json").read_bytes())
        # The builder writes server paths; this API's URLs are absolute (bandersnatch fetches them as given).
        host, port = _host_port(self.server)
        for files in [*document["releases"].values(), document["urls"]]:
            for file in files:
                file["url"] = f"http://{host}:{port}{file['url']}"
        body = json.dumps(document).encode()
        headers = {"X-PyPI-Last-Serial": str(self.server.serials[normalized])}
        self._send(HTTPStatus.OK, body, "application/json", send_body, headers)

    def _file(self, relative: str, send_body: bool) -> None:
        files = (self.server.root / "files").resolve()
        target = (files / relative).resolve()
        if not target.is_relative_to(files) or not target.is_file():
            return self._send(HTTPStatus.NOT_FOUND, b"Not Found\n", "text/plain", send_body)
        size = target.stat().st_size
        span = _byte_range(self.headers.get("Range"), size) if self.server.ranges else None
        if span is None:
            return self._send(HTTPStatus.OK, target.read_bytes(), "application/octet-stream", send_body)
        start, end = span
        with target.open("rb") as file:  # the range only: a big file is not read whole for a few KiB
            file.seek(start)
            body = file.read(end - start)
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{size}", "Accept-Ranges": "bytes"}
        self._send(HTTPStatus.PARTIAL_CONTENT, body, "application/octet-stream", send_body, headers)

    def _redirect(self, location: str, send_body: bool) -> None:
        self._send(HTTPStatus.MOVED_PERMANENTLY, b"", "text/plain", send_body, {"Location": location})

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        send_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_head(status, body, content_type, headers)
        if send_body:
            self.wfile.write(body)

    def _send_head(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None
    ) -> None:
        """The status line and headers of a response of ``body``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` a single-range ``Range`` header asks of ``size`` bytes, or None (whole file).

    >>> _byte_range("bytes=-10", 100), _byte_range("bytes=5-9", 100), _byte_range("bytes=90-", 100)
    ((90, 100), (5, 10), (90, 100))
    >>> _byte_range("bytes=0-1,5-6", 100), _byte_range("items=1-2", 100), _byte_range(None, 100)
    (None, None, None)
    """
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    if not first and last.isdigit():
        return max(0, size - int(last)), size
    if first.isdigit() and (last.isdigit() or not last) and int(first) < size:
        return int(first), min(size, int(last) + 1 if last else size)
    return None


class _IndexServer(ThreadingHTTPServer):
    # Non-daemon handler threads, joined on close: stop() leaves no thread or socket behind.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], root: Path, mode: Mode, *, ranges: bool = False, etags: bool = False
    ) -> None:
        super().__init__(address, _Handler)
        self.root = root
        self.mode = mode
        self.ranges = ranges
        self.etags = etags
        self.not_modified: Counter[str] = Counter()
        state = json.loads((root / "index-state.json").read_text(encoding="utf-8"))
        self.last_serial: int = state["last_serial"]
        self.serials: dict[str, int] = state["projects"]
        self.hits: Counter[str] = Counter()
        self.arrivals: list[float] = []  # time.monotonic() of each request, in arrival order
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1
            self.arrivals.append(time.monotonic())

    def count_not_modified(self, path: str) -> None:
        with self._lock:
            self.not_modified[path] += 1

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # Registered here, on the serving thread, so stop() cannot miss a just-accepted connection.
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-answer (or stop() shutting its socket) is normal here.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def drop_connections(self) -> None:
        """Shut down open keep-alive connections so that their threads end now."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # Already closed by the other side.
                connection.shutdown(socket.SHUT_RDWR)


class RunningIndex:
    """A fixture index served on a background thread; ``url`` is its simple root (pip's --index-url).

    A context manager: leaving it stops the server. ``hits`` counts requests per URL path,
    ``arrivals`` holds when each request arrived.
    """

    def __init__(self, server: _IndexServer) -> None:
        self._server = server
        host, port = _host_port(server)
        self.base_url = f"http://{host}:{port}/"
        self.url = f"{self.base_url}simple/"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fixtureindex", daemon=True
        )
        self._thread.start()

    @property
    def root(self) -> Path:
        return self._server.root

    def rebuild(self, projects: Iterable[FixtureProject]) -> None:
        """Replace the index's projects (a later state of the upstream: statuses, takedowns), serving
        them from the next request; serials continue past the previous state's."""
        shutil.rmtree(self._server.root / "simple", ignore_errors=True)
        shutil.rmtree(self._server.root / "pypi", ignore_errors=True)
        index = build_index(projects, self._server.root, first_serial=self._server.last_serial)
        self._server.serials, self._server.last_serial = dict(index.serials), index.last_serial

    @property
    def hits(self) -> Counter[str]:
        return self._server.hits

    @property
    def not_modified(self) -> Counter[str]:
        """The requests per path answered 304 (with ``etags``): ``hits`` less these were sent whole."""
        return self._server.not_modified

    @property
    def arrivals(self) -> list[float]:
        """When each request arrived (``time.monotonic()``), in order."""
        return self._server.arrivals

    def stop(self) -> None:
        """Stop serving, close every connection and join the server's threads. Idempotent."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> RunningIndex:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_index(
    root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    mode: Mode = "negotiate",
    ranges: bool = False,
    etags: bool = False,
) -> RunningIndex:
    """Serve the index built under ``root`` (see ``mirrorflow.fixtureindex.builder.build_index``).

    ``port=0`` picks a free port; ``ranges`` makes files answer range requests (206); ``etags`` gives
    project pages an ETag (of the body) and answers a matching If-None-Match with 304. Returns the
    ``RunningIndex`` (already serving).
    """
    if mode not in ("negotiate", "html-only", "json-only"):
        raise ValueError(f"mode {mode!r} is not one of 'negotiate', 'html-only', 'json-only'")
    return RunningIndex(_IndexServer((host, port), Path(root), mode, ranges=ranges, etags=etags))
