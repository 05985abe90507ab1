"""The simple-index ASGI app (Starlette): what pip and uv install from.

Routes (``<repo>`` is a repository name, ``<n>`` a version number)::

    /<repo>/simple/                          project listing of the latest version
    /<repo>/simple/<project>/                project page of the latest version (+ pull-through)
    /<repo>/versions/<n>/simple/[<project>/] the same, pinned to version n (reproducible installs)
    /<repo>/files/<sha256>/<filename>        a file of the repository (any version)
    /<repo>/files/<sha256>/<filename>.metadata   its PEP 658 core metadata
    /<repo>/files/<sha256>/<filename>.provenance its PEP 740 provenance object (``mirrorflow.server.provenance``)
    /pulp/api/v3/...                         the read-only JSON API (``mirrorflow.server.api``), when given one

Pages: PEP 503 HTML or PEP 691 JSON by ``Accept``; ETag / If-None-Match; ``X-PyPI-Last-Serial``.
Rendered pages are kept per repository version (``mirrorflow.server.cache``): a cached page costs no catalog
query, and which version is the latest is re-read at most once per ``state_interval``.
A non-normalized project name is redirected (301) to the normalized URL; an unknown repository,
version or project is a 404 with one line of text. Catalog and store calls run in worker threads.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from packaging.utils import canonicalize_name
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from mirrorflow.server.advisories import ServedAdvisories
from mirrorflow.server.api import ReadApi, api_routes
from mirrorflow.server.cache import CachedPage, Lookups, PageCache, RepositoryStates
from mirrorflow.server.files import FileServer, content_type_of
from mirrorflow.server.metadata import core_metadata
from mirrorflow.server.pages import (
    JSON_V1,
    etag_matches,
    etag_of,
    negotiate,
    page_file,
    render_listing,
    render_project,
)
from mirrorflow.server.provenance import PROVENANCE_SUFFIX, PROVENANCE_TYPE, provenance_body
from mirrorflow.server.pull_through import pull_through_files
from mirrorflow.server.refusals import Refusals
from mirrorflow.server.upstream import ServeError, Upstreams
from mirrorflow.storage.artifacts import ArtifactStore
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.provenance import with_provenance
from mirrorflow.storage.records import ProjectEntry, RepositoryState, ServedFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist

__all__ = ["PAGE_CACHE_BYTES", "STATE_INTERVAL", "WORKER_THREADS", "create_app"]

#: Memory for rendered pages, per process (an LRU by bytes; 0: no page cache).
PAGE_CACHE_BYTES = 64 * 1024 * 1024
#: Seconds between two reads of the repositories' state (the change signal), per process.
STATE_INTERVAL = 1.0
#: Worker threads of a server process (catalog reads, the store, upstream fetches). The catalog's
#: connection pool is sized to them (``flows.cli_serve``): a thread never waits for a connection,
#: and a returned connection is kept rather than closed.
WORKER_THREADS = 16

log = logging.getLogger("mirrorflow.server")
access_log = logging.getLogger("mirrorflow.server.access")

_ACCEPTABLE = "acceptable: text/html, application/vnd.pypi.simple.v1+(html|json)"


def create_app(
    catalog: Catalog,
    store: ArtifactStore,
    upstreams: Upstreams,
    *,
    redirect_to_store: bool = False,
    pull_through_ttl: timedelta = timedelta(minutes=10),
    page_cache_bytes: int = PAGE_CACHE_BYTES,
    state_interval: float = STATE_INTERVAL,
    worker_threads: int = WORKER_THREADS,
    api: ReadApi | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Return the ASGI app serving every repository of ``catalog`` (wrapped in the request log).

    ``redirect_to_store``: answer file requests with a 302 to a presigned URL when the store has one
    (S3). ``pull_through_ttl``: how long a pulled-through project page is served before it is
    fetched again from the remote. ``page_cache_bytes``: memory for rendered pages (0: none; the
    benchmark measures uncached pages so). ``state_interval``: how stale the repositories' state
    (and so the latest version served) may be, in seconds of ``clock``. ``worker_threads``: the
    size of the worker thread pool, which should not exceed the catalog's connection pool.
    """
    serving = ServingCatalog(catalog)
    files = FileServer(store, serving, upstreams, redirect_to_store=redirect_to_store)
    advisories = ServedAdvisories(catalog)

    def load_states() -> list[RepositoryState]:
        # The advisories are read with the states they serve, before those states are published.
        read = serving.repositories()
        advisories.refresh(read)
        return read

    states = RepositoryStates(load_states, run=run_in_threadpool, interval=state_interval, clock=clock)
    routes = _Routes(
        serving, files, upstreams, pull_through_ttl, states, PageCache(max_bytes=page_cache_bytes), advisories
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        await routes.warm_up()
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/{repo}/simple/", routes.listing),
            Route("/{repo}/simple/{project}/", routes.project),
            Route("/{repo}/simple/{project}", routes.add_slash),
            Route("/{repo}/versions/{number:int}/simple/", routes.listing),
            Route("/{repo}/versions/{number:int}/simple/{project}/", routes.project),
            Route("/{repo}/versions/{number:int}/simple/{project}", routes.add_slash),
            Route("/{repo}/files/{sha256}/{filename}", routes.file),
            # After the index's routes, which they cannot clash with ("api" is not "simple" or
            # "files"): a pip request matches first, as before the API existed.
            *(api_routes(api) if api is not None else []),
        ],
    )
    app.state.page_cache = routes.pages  # for tests and benchmarks: what is cached
    app.state.repository_states = states
    return RequestLog(app)


def _text(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status)


# Control characters (NUL above all: PostgreSQL refuses it in text) never name anything served;
# neither does a name longer than any filesystem or index allows. Such a path is answered 404
# before it reaches the catalog.
_HOSTILE = re.compile(r"[\x00-\x1f\x7f]").search
_LONGEST = 1024


def _hostile(text: str) -> bool:
    return len(text) > _LONGEST or _HOSTILE(text) is not None


def _no_such(kind: str, text: str) -> Response:
    """The 404 of a hostile name, which shows at most its first 100 characters."""
    shown = repr(text[:100]) + ("..." if len(text) > 100 else "")
    return _text(404, f"no {kind} {shown}")


_is_sha256 = re.compile(r"[0-9a-f]{64}").fullmatch


class _Routes:
    def __init__(
        self,
        serving: ServingCatalog,
        files: FileServer,
        upstreams: Upstreams,
        ttl: timedelta,
        states: RepositoryStates,
        pages: PageCache,
        advisories: ServedAdvisories,
    ) -> None:
        self.serving, self.files, self.upstreams, self.ttl = serving, files, upstreams, ttl
        self.states, self.pages, self.advisories = states, pages, advisories
        self.files_found: Lookups[tuple[int, int, int, str, str], ServedFile | None] = Lookups(
            max_entries=20_000
        )
        self._media_types: dict[str | None, str | None] = {}

    async def warm_up(self) -> None:
        """Pay the process's one-time costs at startup rather than on the first request.

        That is anyio's worker-thread backend (imported on first use, ~15 ms), a pooled catalog
        connection, the compiled SQL of the page queries and the repositories' state. No page is
        read or kept.
        """

        def queries() -> None:
            self.serving.project_page(0, 0, "")
            self.serving.projects(0, 0, pull_through=False)

        try:
            await run_in_threadpool(queries)
            await self.states.get("")
        except Exception as exc:  # a catalog down at startup shows on requests, with their errors
            log.warning("warm-up failed: %s", exc)

    def _negotiate(self, accept: str | None) -> str | None:
        """``negotiate``, remembered per ``Accept`` header (clients send a handful of them)."""
        try:
            return self._media_types[accept]
        except KeyError:
            pass
        media_type = negotiate(accept)
        if len(self._media_types) >= 256:
            self._media_types.clear()
        self._media_types[accept] = media_type
        return media_type

    async def _state(self, request: Request) -> tuple[RepositoryState, int, bool]:
        """The repository, the version to serve and whether it is pinned; raise ServeError(404).

        From the repositories' state, read at most once per interval: no catalog query.
        """
        name = request.path_params["repo"]
        state = None if _hostile(name) else await self.states.get(name)
        if state is None:
            raise ServeError(404, f"no repository {name[:100]!r}")
        number = request.path_params.get("number")
        if number is None:
            return state, state.latest_version, False
        if not state.has_version(number):
            raise ServeError(404, f"repository {name!r} has no version {number}")
        return state, number, True

    async def add_slash(self, request: Request) -> Response:
        if _hostile(request.path_params["project"]):
            return _no_such("project", request.path_params["project"])
        return RedirectResponse(request.url.path + "/", status_code=301)

    async def listing(self, request: Request) -> Response:
        try:
            state, number, pinned = await self._state(request)
        except ServeError as exc:
            return _text(exc.status, exc.message)
        media_type = self._negotiate(request.headers.get("accept"))
        if media_type is None:
            return _text(406, _ACCEPTABLE)
        # The latest listing of a pull-through repository grows without a commit: never cached.
        pull = state.pull_through_remote is not None and not pinned
        # As the pages' key: a project whose every file is refused is not listed.
        key = (state.id, number, "", media_type, state.blocklist, state.advisories, state.block_advisories)
        cached = None if pull else self.pages.get(key)
        if cached is None:
            projects = await run_in_threadpool(self._listed, state, number, pull)
            serial = max((p.serial for p in projects), default=0)
            body = render_listing(projects, serial=serial, media_type=media_type)
            cached = _rendered(body, media_type, serial)
            if not pull:
                self.pages.put(key, cached)
        return _send(request, cached)

    def _listed(self, state: RepositoryState, number: int, pull: bool) -> list[ProjectEntry]:
        """The projects the listing names: those with a file serve does not refuse (a worker thread)."""
        projects = self.serving.projects(state.id, number, pull_through=pull)
        blocklist = parsed_blocklist(state.blocklist) if state.blocklist else None
        refusals = Refusals(state, blocklist, self.advisories)
        return refusals.listed(self.serving, number, projects, pull_through=pull)

    async def project(self, request: Request) -> Response:
        project = request.path_params["project"]
        if _hostile(project):
            return _no_such("project", project)
        normalized = canonicalize_name(project)
        if normalized != project:
            base = request.url.path.rstrip("/").rsplit("/", 1)[0]
            return RedirectResponse(f"{base}/{quote(normalized)}/", status_code=301)
        try:
            state, number, pinned = await self._state(request)
        except ServeError as exc:
            return _text(exc.status, exc.message)
        media_type = self._negotiate(request.headers.get("accept"))
        if media_type is None:
            return _text(406, _ACCEPTABLE)
        # The blocklist and the advisories are part of the key: a change re-renders every version's pages.
        key = (
            state.id,
            number,
            normalized,
            media_type,
            state.blocklist,
            state.advisories,
            state.block_advisories,
        )
        cached = self.pages.get(key)
        if cached is not None:
            return _send(request, cached)
        pull = state.pull_through_remote is not None and not pinned
        try:
            found, serial = await run_in_threadpool(self.serving.project_page, state.id, number, normalized)
            # What a version holds never changes; what pull-through finds does (not cached).
            cacheable = bool(found) or not pull
            pulled_through = not found and pull
            if pulled_through:
                pulled = await run_in_threadpool(
                    pull_through_files, self.serving, self.upstreams, state, normalized, ttl=self.ttl
                )
                found = [page_file(file) for file in pulled]
        except ServeError as exc:
            return _text(exc.status, exc.message)
        if found and state.blocklist:
            blocklist = parsed_blocklist(state.blocklist)
            listed = len(found)
            found = [f for f in found if blocklist.blocks(f.name, f.filename, f.version) is None]
            if listed and not found:
                why = (
                    f"every file of project {normalized!r} in version {number} is blocklisted in "
                    f"repository {state.name!r}\n"
                )
                return self._refused_page(request, key if cacheable else None, why)
        if found and state.advisories:
            blocking = {f.version: self.advisories.blocking(state, normalized, f.version) for f in found}
            kept = [f for f in found if blocking[f.version] is None]
            if not kept:
                ids = sorted({a.id for a in blocking.values() if a is not None})
                why = (
                    f"every file of project {normalized!r} in version {number} is blocked by advisory "
                    f"{', '.join(ids)} in repository {state.name!r}\n"
                )
                return self._refused_page(request, key if cacheable else None, why)
            found = kept
        # PEP 792: the status the version holds; a quarantined project is served as its upstream
        # serves it, without files (any other project without files is not in the version).
        status = await run_in_threadpool(self.serving.project_status, state.id, number, normalized)
        if not found and (status is None or status[0] != "quarantined"):
            text = f"no project {normalized!r} in repository {state.name!r} version {number}\n".encode()
            cached = CachedPage(404, text, _headers(_PLAIN_TEXT, len(text)), None)
        else:
            if pulled_through and found:  # as the listing: a pulled project's serial is its largest file id
                serial = max((f.package_id for f in found), default=0)
            prefix = f"/{quote(state.name)}/files/"
            catalog = self.serving.catalog
            display = found[0].name if found else normalized
            cached = await run_in_threadpool(  # rendered and hashed in one trip to a worker thread
                lambda: _rendered(
                    render_project(
                        display,
                        normalized,
                        found,
                        serial=serial,
                        media_type=media_type,
                        files_prefix=prefix,
                        provenance=with_provenance(catalog, state.id, (f.sha256 for f in found)),
                        status=status,
                    ),
                    media_type,
                    serial,
                )
            )
        if cacheable:
            self.pages.put(key, cached)
        return _send(request, cached)

    async def file(self, request: Request) -> Response:
        sha256, filename = request.path_params["sha256"], request.path_params["filename"]
        if not _is_sha256(sha256):
            return _no_such("file with sha256", sha256)
        if _hostile(filename):
            return _no_such("file", filename)
        try:
            state, _, _ = await self._state(request)
            found = await self._find_file(state, sha256, filename)
            if found is None and filename.endswith(PROVENANCE_SUFFIX):
                package = await self._find_file(state, sha256, filename.removesuffix(PROVENANCE_SUFFIX))
                if package is not None:
                    if (refused := self._blocked(state, package)) is not None:
                        return refused
                    body = await run_in_threadpool(
                        provenance_body, self.serving.catalog, self.upstreams, state.id, package
                    )
                    return Response(body, media_type=PROVENANCE_TYPE)
            if found is None and filename.endswith(".metadata"):
                name = filename.removesuffix(".metadata")
                package = await self._find_file(state, sha256, name)
                if package is not None and (refused := self._blocked(state, package)) is not None:
                    return refused
                if package is not None:
                    response = await self._metadata(package)
                    if package.core_metadata_sha256 is None:  # stored now: look the digest up again
                        self.files_found.pop(
                            (state.id, state.latest_version, state.oldest_version, sha256, name)
                        )
                    return response
            if found is None:
                return _text(404, f"no file {filename!r} with sha256 {sha256!r} in repository {state.name!r}")
            if (refused := self._blocked(state, found)) is not None:
                return refused
            if request.method == "HEAD":
                headers = {"Content-Type": content_type_of(filename)}
                if found.package.size is not None:
                    headers["Content-Length"] = str(found.package.size)
                return Response(headers=headers)
            delivery = await run_in_threadpool(self.files.prepare, found)
        except ServeError as exc:
            return _text(exc.status, exc.message)
        if delivery.redirect is not None:
            return RedirectResponse(delivery.redirect, status_code=302)
        if delivery.chunks is None:  # a bug in FileServer: every Delivery has one or the other
            raise RuntimeError(f"{filename}: the file server gave neither bytes nor a redirect")
        headers = {"X-Mirrorflow-Source": delivery.source}
        if delivery.size is not None:
            headers["Content-Length"] = str(delivery.size)
        return StreamingResponse(delivery.chunks, media_type=content_type_of(filename), headers=headers)

    def _refused_page(self, request: Request, key: Any, text: str) -> Response:
        """Answer 404 with ``text`` for a project page whose every file is refused; remembered under
        ``key`` unless None (what pull-through found may change)."""
        body = text.encode()
        cached = CachedPage(404, body, _headers(_PLAIN_TEXT, len(body)), None)
        if key is not None:
            self.pages.put(key, cached)
        return _send(request, cached)

    async def _find_file(self, state: RepositoryState, sha256: str, filename: str) -> ServedFile | None:
        """``ServingCatalog.find_file``, remembered while the repository's versions stay as they are.

        Remembered: stored files (what is stored stays so) and, without a pull-through remote,
        files the repository does not have. A file still to be fetched is looked up each time.
        """
        key = (state.id, state.latest_version, state.oldest_version, sha256, filename)
        try:
            return self.files_found.get(key)
        except KeyError:
            pass
        found = await run_in_threadpool(self.serving.find_file, state.id, sha256, filename)
        # Not remembered: a file not yet stored (it will be), and an unknown one where a pull-through
        # may bring it.
        stored = found is not None and found.artifact_sha256 is not None
        if stored or (found is None and state.pull_through_remote is None):
            self.files_found.put(key, found)
        return found

    def _blocked(self, state: RepositoryState, file: ServedFile) -> Response | None:
        """The 404 of a file the blocklist or a blocking advisory names (in every version)."""
        refused = _blocklisted(state, file)
        if refused is not None or not state.advisories:
            return refused
        advisory = self.advisories.blocking(state, file.package.normalized_name, file.package.version)
        if advisory is None:
            return None
        return _text(
            404,
            f"file {file.package.filename!r} is blocked by advisory {advisory.id} in repository {state.name!r}",
        )

    async def _metadata(self, package: ServedFile) -> Response:
        data = await run_in_threadpool(core_metadata, self.files, package)
        return Response(data, media_type=content_type_of(".metadata"))


_PLAIN_TEXT = b"text/plain; charset=utf-8"


@functools.lru_cache(maxsize=64)
def parsed_blocklist(entries: tuple[str, ...]) -> Blocklist:
    """A repository's stored entries, parsed once per distinct list (the state re-reads them each second)."""
    return Blocklist.parse(entries)


def _blocklisted(state: RepositoryState, file: ServedFile) -> Response | None:
    """The 404 of a file the repository's blocklist names (in every version, pinned ones included)."""
    if not state.blocklist:
        return None
    entry = parsed_blocklist(state.blocklist).blocks(
        file.package.name, file.package.filename, file.package.version
    )
    if entry is None:
        return None
    return _text(
        404, f"file {file.package.filename!r} is blocklisted in repository {state.name!r} (entry {entry!r})"
    )


def _headers(content_type: bytes, length: int, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(length).encode()), *extra]


def _rendered(body: bytes, media_type: str, serial: int) -> CachedPage:
    """A page as it is sent, with its ETag (depending on the format as well as the body) and headers."""
    etag = etag_of(body + media_type.encode())
    content_type = media_type if media_type == JSON_V1 else f"{media_type}; charset=utf-8"
    extra = ((b"etag", etag.encode()), (b"x-pypi-last-serial", str(serial).encode()), (b"vary", b"Accept"))
    return CachedPage(200, body, _headers(content_type.encode(), len(body), *extra), etag)


class _Sent(Response):
    """A response whose headers were built once, when its page was rendered."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code, self.body, self.raw_headers, self.background = status, body, raw_headers, None


def _send(request: Request, page: CachedPage) -> Response:
    if page.etag is not None and etag_matches(request.headers.get("if-none-match"), page.etag):
        # 304: the validators, without the body's Content-Type and Content-Length (``_headers``
        # puts those two first)
        return _Sent(304, b"", page.raw_headers[2:])
    return _Sent(page.status, page.body, page.raw_headers)


class RequestLog:
    """ASGI middleware: one log line per request (method, path, status, bytes, milliseconds).

    Only while ``mirrorflow.server.access`` logs at INFO (``mirrorflow serve --access-log``);
    otherwise a request costs it one check. The line is handed to the logging handlers on the event
    loop: the serve command gives the logger a queue handler, so that writing it happens elsewhere.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 0, 0

        async def logging_send(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s "%s %s" %s %d %.1fms', client[0], scope["method"], scope["path"], status, sent, elapsed
            )
