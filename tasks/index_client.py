"""The HTTP shell over an upstream simple index: fetch a page, hand its body to ``mirrorflow.tasks.simple``.

All decisions about page content live in ``mirrorflow.tasks.simple`` (pure); this module only negotiates the
format (PEP 691), bounds how much it reads, and translates httpx's errors into ours.

Errors::

    IndexClientError                .url: the request that failed
     ├── ProjectNotFound            .project: the index answered 404 / 410 for a project page
     ├── NoSimpleIndex              .tried: no candidate URL answered as a simple index
     ├── UpstreamError              .status, .reason: a non-2xx answer, an unusable Content-Type,
     │    │                         too many redirects, a certificate the client does not trust or
     │    │                         another request error (.status None)
     │    └── PageTooLarge          .limit: a page above max_page_bytes
     └── TransientError             .status (None for network errors), .reason, .retry_after: 429,
                                    5xx, timeouts and connection errors; worth retrying with backoff
                                    (.connection_lost: a network error, retried later and on a new
                                    connection: see ``IndexClient``)
    mirrorflow.tasks.simple.InvalidPage        (a ValueError) the page came back but cannot be parsed

``index_url`` is the simple index root, as pip's ``--index-url`` (``https://index.example/simple/``).
``locate_simple_root`` finds it from the URL a user gave a remote (``mirrorflow.tasks.index_url`` has the rule).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from packaging.utils import canonicalize_name

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.distributions import ProjectListing, ProjectPage
from mirrorflow.tasks.retrying import retry_after_seconds
from mirrorflow.tasks.simple import (
    InvalidPage,
    looks_like_project_page,
    parse_listing_html,
    parse_listing_json,
    parse_project_html,
    parse_project_json,
)
from mirrorflow.tasks.throttle import Throttle

__all__ = [
    "ACCEPT",
    "DEFAULT_MAX_PAGE_BYTES",
    "IndexClient",
    "IndexClientError",
    "NoSimpleIndex",
    "PageTooLarge",
    "ProjectNotFound",
    "TransientError",
    "UpstreamError",
    "build_http_client",
    "locate_simple_root",
    "ConditionalPage",
]

_E = TypeVar("_E", bound=BaseException)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = frozenset({"text/html", "application/vnd.pypi.simple.v1+html"})
#: What page requests accept: JSON first, then the versioned HTML type, then plain HTML (PEP 691).
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
DEFAULT_MAX_PAGE_BYTES = 50 * 1024 * 1024


class IndexClientError(MirrorflowError):
    """Base of the index client's errors; ``url`` is the request that failed."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url


class ProjectNotFound(IndexClientError):
    """The index has no page for ``project`` (404 or 410)."""

    def __init__(self, url: str, project: str) -> None:
        super().__init__(url, f"project {project!r} not found on the index ({url!r})")
        self.project = project


class NoSimpleIndex(IndexClientError):
    """No URL tried answered as a simple index; ``tried`` maps each URL asked to what it answered."""

    def __init__(self, url: str, tried: Mapping[str, str], what: str) -> None:
        asked = "; ".join(f"{candidate!r} {answer}" for candidate, answer in tried.items())
        super().__init__(url, f"{what} at {url!r}: tried {asked}; check the remote's url")
        self.tried = dict(tried)


class UpstreamError(IndexClientError):
    """The index answered, but not with something usable: a non-2xx status or a wrong Content-Type.

    ``status`` is None when there was no final response to blame (too many redirects, a bad URL).
    """

    def __init__(self, url: str, status: int | None, reason: str) -> None:
        where = f"answered {status}" if status is not None else "failed"
        super().__init__(url, f"{url!r} {where}: {reason}")
        self.status = status
        self.reason = reason


class PageTooLarge(UpstreamError):
    """A page was larger than the client's ``max_page_bytes``."""

    def __init__(self, url: str, status: int, limit: int) -> None:
        super().__init__(url, status, f"page larger than the {limit}-byte limit (max_page_bytes)")
        self.limit = limit


class TransientError(IndexClientError):
    """A failure worth retrying: 429, 5xx, a timeout or a connection error (``status`` None).

    ``retry_after``: the seconds the answer's ``Retry-After`` asked to wait, when it gave one
    (``mirrorflow.tasks.retrying`` waits at least that long before the next try).
    ``connection_lost``: no answer came (a reset HTTP/2 stream, a connection closed mid-answer, a
    timeout); ``mirrorflow.tasks.retrying`` waits seconds before the next try.
    """

    def __init__(
        self, url: str, status: int | None, reason: str, *, retry_after: float | None = None
    ) -> None:
        where = f"answered {status}" if status is not None else "failed"
        super().__init__(url, f"{url!r} {where}: {reason} (transient, retry later)")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.connection_lost = status is None


def _user_agent() -> str:
    try:
        return f"mirrorflow/{version('mirrorflow')}"
    except PackageNotFoundError:  # Running from a checkout that was never installed.
        return "mirrorflow/0+unknown"


def _raise_for_status(response: httpx.Response, *, project: str | None = None) -> None:
    status = response.status_code
    url = str(response.request.url)
    if 200 <= status < 300:
        return
    if project is not None and status in (404, 410):
        raise ProjectNotFound(url, project)
    if status == 429 or status >= 500:
        asked = retry_after_seconds(response.headers.get("Retry-After"), now=datetime.now(UTC))
        raise TransientError(url, status, response.reason_phrase or "server error", retry_after=asked)
    raise UpstreamError(url, status, response.reason_phrase or "unexpected status")


@contextmanager
def _translate_transport_errors(url: str) -> Iterator[None]:
    """Turn httpx's request errors into ``TransientError`` (worth a retry) or ``UpstreamError``.

    A certificate the client does not trust is an ``UpstreamError``: retrying cannot fix it.
    """
    try:
        yield
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        refused = _certificate_refusal(exc)
        if refused is not None:
            reason = f"TLS certificate not trusted ({refused.verify_message}): set ca_cert, or tls_validation false"
            raise UpstreamError(url, None, reason) from exc
        if _cause(exc, socket.gaierror) is not None:
            # A host name that does not resolve is a wrong URL far more often than a DNS hiccup.
            host = httpx.URL(url).host if _http_url(url) is not None else url
            raise UpstreamError(url, None, f"host {host!r} not found: check the remote's url") from exc
        raise TransientError(url, None, f"{type(exc).__name__}: {exc}") from exc
    except (httpx.RequestError, httpx.TooManyRedirects) as exc:
        raise UpstreamError(url, None, f"{type(exc).__name__}: {exc}") from exc


class IndexClient:
    """Reads one upstream simple index through a shared ``httpx.Client`` (the caller owns and closes it).

    ``index_url`` is the simple root (pip's ``--index-url``); a missing trailing slash is added.

    ``fresh_client`` builds a client like ``client`` (``build_http_client`` with the same settings).
    With it, a thread whose request lost its connection (``TransientError.connection_lost``) makes its
    next request, the retry, on a client of its own, closed after that request: a new connection.
    The pooled one may still be up (an HTTP/2 stream reset leaves its connection open, and httpx
    would send the retry on it); the retry should not depend on it. Without it, retries share the pool.
    """

    def __init__(
        self,
        index_url: str,
        *,
        client: httpx.Client,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        fresh_client: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.index_url = index_url if index_url.endswith("/") else index_url + "/"
        self._client = client
        self.max_page_bytes = max_page_bytes
        self._index_origin = _origin(_http_url(self.index_url))
        self._fresh_client = fresh_client
        self._lost = threading.local()  # .connection: this thread's last request lost its connection

    def __repr__(self) -> str:
        return f"IndexClient({self.index_url!r})"

    @property
    def http(self) -> httpx.Client:
        """The pooled HTTP client (a ``DependencyReader`` of the same process shares it)."""
        return self._client

    def project_url(self, name: str) -> str:
        """Return the URL of a project's page: ``<root>/<normalized name>/``.

        Raises ``packaging.utils.InvalidName`` (a ValueError) for a name that is not a valid project name.
        """
        return f"{self.index_url}{quote(canonicalize_name(name, validate=True))}/"

    def get_listing(self) -> ProjectListing:
        """Fetch and parse the ``/simple/`` listing. Raises the errors in the module docstring."""
        page = self._get_page(self.index_url, project=None)
        if page.media_type == JSON_TYPE:
            return parse_listing_json(page.body, page_url=page.url, last_serial_header=page.serial)
        return parse_listing_html(page.text(), page_url=page.url, last_serial_header=page.serial)

    def get_project(self, name: str) -> ProjectPage:
        """Fetch and parse one project's page.

        Raises ``ProjectNotFound`` on 404/410, and the other errors in the module docstring.
        """
        page = self._get_page(self.project_url(name), project=name)
        if page.media_type == JSON_TYPE:
            return parse_project_json(page.body, page_url=page.url, last_serial_header=page.serial)
        return parse_project_html(page.text(), page_url=page.url, last_serial_header=page.serial)

    def get_project_if_changed(
        self, name: str, *, etag: str | None, last_modified: str | None
    ) -> ConditionalPage:
        """Fetch a project's page unless it is unchanged since ``etag`` / ``last_modified``.

        Sends If-None-Match / If-Modified-Since for the validators given; a 304 answer gives a
        ``ConditionalPage`` whose ``page`` is None. Raises like ``get_project``.
        """
        headers = {"If-None-Match": etag} if etag else {}
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        page = self._get_page(self.project_url(name), project=name, conditional=headers)
        if page.not_modified:
            return ConditionalPage(None, etag, last_modified)
        if page.media_type == JSON_TYPE:
            parsed = parse_project_json(page.body, page_url=page.url, last_serial_header=page.serial)
        else:
            parsed = parse_project_html(page.text(), page_url=page.url, last_serial_header=page.serial)
        return ConditionalPage(parsed, page.etag, page.last_modified)

    @contextmanager
    def _requesting(self, url: str) -> Iterator[httpx.Client]:
        """The client for one request to ``url``, with httpx's errors translated (see the class docstring)."""
        fresh = self._fresh_client if getattr(self._lost, "connection", False) else None
        self._lost.connection = False
        try:
            with _translate_transport_errors(url), contextlib.ExitStack() as stack:
                if fresh is not None:
                    yield stack.enter_context(fresh())
                else:
                    yield self._client
        except TransientError as exc:
            self._lost.connection = exc.connection_lost
            raise

    def _accept(self) -> str:
        """The ``Accept`` of page requests: PEP 691's negotiation, unless the remote's ``headers`` set one
        (an upstream that mishandles negotiation can be asked for HTML only, say)."""
        given = self._client.headers.get("Accept")
        return ACCEPT if given in (None, "*/*") else given

    def probe_listing(self) -> str | None:
        """Ask for the listing and read only its start: None when it is a simple listing, else what
        the URL answered (for ``NoSimpleIndex``). Raises ``TransientError``."""
        headers = {"Accept": self._accept()}
        url = self.index_url
        with self._requesting(url) as client, client.stream("GET", url, headers=headers) as response:
            if response.status_code == 429 or response.status_code >= 500:
                _raise_for_status(response)
            if not 200 <= response.status_code < 300:
                return f"answered {response.status_code}"
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if media_type != JSON_TYPE and media_type not in HTML_TYPES:
                return f"answered Content-Type {media_type!r}"
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= _PROBE_BYTES:
                    break
        if looks_like_project_page(head[:_PROBE_BYTES], json_body=media_type == JSON_TYPE):
            return "answered a project page, not a listing"
        return None

    @contextmanager
    def stream_file(self, url: str, *, headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
        """Stream a distribution file: ``with client.stream_file(url) as response: response.iter_bytes()``.

        Raises ``UpstreamError`` / ``TransientError`` on a non-2xx status, and ``TransientError`` for
        network errors, also while the caller reads the body. Only http(s) URLs are fetched
        (``UpstreamError`` otherwise, as for a redirect to another scheme). The client's credentials
        go to the index's own origin only: a file on another host (a separate file host, or one a
        hostile page names) is fetched without them, as pip does. ``headers`` are added to the request
        (a ``Range``: the caller checks for 206, as a server may ignore it and answer 200).
        """
        parsed = _http_url(url)  # parsed once: httpx takes the URL object as it is
        origin = _origin(parsed)
        if parsed is None or origin is None:
            raise UpstreamError(url, None, "not an http(s) URL with a host; refusing to fetch it")
        extra: dict[str, Any] = {} if origin == self._index_origin else {"auth": None}
        if headers:
            extra["headers"] = dict(headers)
        with self._requesting(url) as client, client.stream("GET", parsed, **extra) as response:
            _raise_for_status(response)
            yield response

    def _get_page(self, url: str, *, project: str | None, conditional: dict[str, str] | None = None) -> _Page:
        """GET a page with PEP 691 negotiation, reading at most ``max_page_bytes``."""
        headers = {"Accept": self._accept(), **(conditional or {})}
        with self._requesting(url) as client, client.stream("GET", url, headers=headers) as response:
            if conditional and response.status_code == 304:
                return _Page(b"", "", "utf-8", str(response.url), None, not_modified=True)
            _raise_for_status(response, project=project)
            final_url = str(response.url)
            media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            charset = response.charset_encoding or "utf-8"
            if media_type != JSON_TYPE and media_type not in HTML_TYPES:
                reason = f"Content-Type {response.headers.get('Content-Type')!r} is not a simple page"
                raise UpstreamError(final_url, response.status_code, reason)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_page_bytes:
                raise PageTooLarge(final_url, response.status_code, self.max_page_bytes)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_page_bytes:
                    raise PageTooLarge(final_url, response.status_code, self.max_page_bytes)
                chunks.append(chunk)
            serial = response.headers.get("X-PyPI-Last-Serial")
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            return _Page(
                b"".join(chunks), media_type, charset, final_url, serial, etag=etag, last_modified=modified
            )


#: How much of a candidate listing ``locate_simple_root`` reads to tell a listing from a project page.
_PROBE_BYTES = 64 * 1024


def locate_simple_root(
    url: str,
    candidates: Sequence[str],
    *,
    client: httpx.Client,
    projects: Sequence[str] = (),
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
) -> str:
    """Return the first of ``candidates`` (``mirrorflow.tasks.index_url.simple_root_candidates(url)``) that answers
    as a simple index; a single candidate is returned without a request.

    With ``projects`` (a remote's included names; the first three are asked), a candidate answers
    when one of their pages is found under it, or else, when none is found anywhere, when its
    listing answers (the names are wrong, not the URL). Without, it answers when its listing is a
    simple listing: 2xx, a simple Content-Type, and not a project page (a project named ``simple``
    under a simple root). Raises ``NoSimpleIndex`` naming every URL tried and its answer, and
    ``TransientError`` when a candidate could not be asked.
    """
    if len(candidates) == 1:
        return candidates[0]
    tried: dict[str, str] = {}
    indexes = [
        IndexClient(candidate, client=client, max_page_bytes=max_page_bytes) for candidate in candidates
    ]
    for index in indexes if projects else ():
        for name in projects[:3]:
            try:
                index.get_project(name)
            except (ProjectNotFound, InvalidPage) as exc:
                tried[index.project_url(name)] = _answer(exc)
            except UpstreamError as exc:
                if exc.status is None:  # no answer at all (a host that does not resolve): same for all
                    raise
                tried[index.project_url(name)] = _answer(exc)
            else:
                return index.index_url
    # No included project anywhere (wrong names, or a wrong URL?), or no includes: the first
    # candidate whose listing answers is the index. With includes, the sync then fails naming the
    # projects it did not find.
    for index in indexes:
        answer = index.probe_listing()
        if answer is None:
            return index.index_url
        tried[index.index_url] = answer
    what = "none of the included projects found" if projects else "no simple index"
    raise NoSimpleIndex(url, tried, what)


def _answer(exc: Exception) -> str:
    if isinstance(exc, ProjectNotFound):
        return "answered 404"
    if isinstance(exc, UpstreamError) and exc.status is not None:
        return f"answered {exc.status} ({exc.reason})"
    return f"is not a simple page ({getattr(exc, 'reason', exc)})"


def _certificate_refusal(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc`` (httpx chains httpcore's error to it), if any."""
    return _cause(exc, ssl.SSLCertVerificationError)


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first error of type ``kind`` in ``exc``'s short chain (httpx -> httpcore -> ssl/socket)."""
    cause: BaseException | None = exc
    for _ in range(5):
        if isinstance(cause, kind):
            return cause
        if cause is None:
            return None
        cause = cause.__cause__ or cause.__context__
    return None


def _http_url(url: str) -> httpx.URL | None:
    """Return ``url`` parsed, or None when httpx cannot parse it."""
    try:
        return httpx.URL(url)
    except httpx.InvalidURL:
        return None


def _origin(parsed: httpx.URL | None) -> tuple[str, str, int] | None:
    """Return ``(scheme, host, port)`` of an http(s) URL, or None for anything else.

    >>> _origin(_http_url("https://index.example/simple/")), _origin(_http_url("file:///etc/passwd"))
    (('https', 'index.example', 443), None)
    """
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    return parsed.scheme, parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class _Page:
    """A fetched page body with what the parse step needs to know about the response."""

    body: bytes
    media_type: str
    charset: str
    url: str
    serial: str | None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False

    def text(self) -> str:
        """Decode an HTML body with its declared charset (UTF-8 by default); raise InvalidPage."""
        try:
            return self.body.decode(self.charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidPage(self.url, f"body does not decode as {self.charset!r} ({exc})") from exc


@dataclass(frozen=True, slots=True)
class ConditionalPage:
    """A conditional fetch: ``page`` is None when the index answered 304 Not Modified.

    ``etag`` / ``last_modified`` are the validators to send next time (the old ones on a 304).
    """

    page: ProjectPage | None
    etag: str | None
    last_modified: str | None


def _ssl_context(verify: bool | str, cert: str | tuple[str, str] | None) -> ssl.SSLContext | bool:
    # httpx 0.28 deprecates verify=<path> and cert=...: build the SSLContext it asks for instead.
    if cert is None and isinstance(verify, bool):
        return verify
    if isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        context = httpx.create_ssl_context(verify=verify)
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    return context


def build_http_client(
    *,
    concurrency: int = 10,
    timeout: float | None = 60.0,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    headers: Mapping[str, str] | None = None,
    proxy_url: str | None = None,
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    http2: bool = True,
    rate_limit: float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """Return one pooled ``httpx.Client`` for an index: keep-alive, up to ``concurrency`` connections.

    ``timeout`` applies to every phase; ``connect_timeout`` / ``read_timeout`` override one phase.
    ``verify`` is a bool or a CA bundle path; ``cert`` a client certificate (path, or (cert, key)).
    ``rate_limit``: requests per second, spaced evenly, across the client's threads
    (``mirrorflow.tasks.throttle``; None or 0: no limit). Redirects are followed (at most 5). ``transport``
    is a test seam (``httpx.MockTransport``); when given, httpx ignores the connection settings.
    The caller closes the client.
    """
    timeouts: dict[str, Any] = {}
    if connect_timeout is not None:
        timeouts["connect"] = connect_timeout
    if read_timeout is not None:
        timeouts["read"] = read_timeout
    return httpx.Client(
        http2=http2,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout, **timeouts),
        headers={"User-Agent": _user_agent(), **(headers or {})},
        proxy=proxy_url,
        verify=_ssl_context(verify, cert),
        auth=auth,
        follow_redirects=True,
        max_redirects=5,
        transport=transport,
        event_hooks={"request": [Throttle(rate_limit)]} if rate_limit else None,
    )
