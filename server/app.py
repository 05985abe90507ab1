"""The simple-index ASGI app (Starlette): what pip and uv install from.

Routes (``<repo>`` is a repository name, ``<n>`` a version number)::

    /<repo>/simple/                          project listing of the latest version
    /<repo>/simple/<project>/                project page of the latest version (+ pull-through)
    /<repo>/versions/<n>/simple/[<project>/] the same, pinned to version n (reproducible installs)
    /<repo>/files/<sha256>/<filename>        a file of the repository (any version)
    /<repo>/files/<sha256>/<filename>.metadata   its PEP 658 core metadata
    /pulp/api/v3/...                         the read-only JSON API (``server.api``), when given one

Pages: PEP 503 HTML or PEP 691 JSON by ``Accept``; ETag / If-None-Match; ``X-PyPI-Last-Serial``.
A non-normalized project name is redirected (301) to the normalized URL; an unknown repository,
version or project is a 404 with one line of text. Catalog and store calls run in worker threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from server.api import ReadApi, api_routes
from server.files import FileServer, content_type_of
from server.metadata import core_metadata
from server.pages import (
    JSON_V1,
    etag_matches,
    etag_of,
    negotiate,
    page_file,
    render_listing,
    render_project,
)
from server.pull_through import pull_through_files
from server.upstream import ServeError, Upstreams
from storage.artifacts import ArtifactStore
from storage.catalog import Catalog, NotFound
from storage.records import RepositoryState, ServedFile
from storage.serving import ServingCatalog

__all__ = ["PAGE_CACHE_SECONDS", "create_app"]

PAGE_CACHE_SECONDS = 5.0
PAGE_CACHE_SIZE = 256

log = logging.getLogger("mirrorflow.server")
access_log = logging.getLogger("mirrorflow.server.access")


def create_app(
    catalog: Catalog,
    store: ArtifactStore,
    upstreams: Upstreams,
    *,
    redirect_to_store: bool = False,
    pull_through_ttl: timedelta = timedelta(minutes=10),
    page_cache_seconds: float = PAGE_CACHE_SECONDS,
    api: ReadApi | None = None,
) -> Any:
    """Return the ASGI app serving every repository of ``catalog`` (wrapped in the request log).

    ``redirect_to_store``: answer file requests with a 302 to a presigned URL when the store has one
    (S3). ``pull_through_ttl``: how long a pulled-through project page is served before it is
    fetched again from the remote. ``page_cache_seconds``: how long a rendered page of a repository
    version is kept in memory (0: never; the benchmark measures uncached pages so).
    """
    serving = ServingCatalog(catalog)
    files = FileServer(store, serving, upstreams, redirect_to_store=redirect_to_store)
    routes = _Routes(serving, files, upstreams, pull_through_ttl, page_cache_seconds)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
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
    return RequestLog(app)


def _text(status: int, message: str) -> Response:
    return PlainTextResponse(message + "\n", status_code=status)


class _Routes:
    def __init__(
        self,
        serving: ServingCatalog,
        files: FileServer,
        upstreams: Upstreams,
        ttl: timedelta,
        page_cache_seconds: float,
    ) -> None:
        self.serving, self.files, self.upstreams, self.ttl = serving, files, upstreams, ttl
        # Rendered pages of repository versions, for page_cache_seconds: a version's content never
        # changes; only what is stored does (a wheel fetched on demand starts offering its metadata).
        self._pages: dict[tuple[Any, ...], tuple[float, bytes, int]] = {}
        self._page_seconds = page_cache_seconds

    async def warm_up(self) -> None:
        """Pay the process's one-time costs at startup rather than on the first request.

        That is anyio's worker-thread backend (imported on first use, ~15 ms), a pooled catalog
        connection and the compiled SQL of the page queries. No page is read or kept.
        """

        def queries() -> None:
            self.serving.project_files(0, 0, "")
            with suppress(NotFound):
                self.serving.repository("")

        try:
            await run_in_threadpool(queries)
        except Exception as exc:  # a catalog down at startup shows on requests, with their errors
            log.warning("warm-up failed: %s", exc)

    async def _state(self, request: Request) -> tuple[RepositoryState, int, bool]:
        """The repository, the version to serve and whether it is pinned; raise ServeError(404)."""
        name = request.path_params["repo"]
        try:
            state = await run_in_threadpool(self.serving.repository, name)
        except NotFound:
            raise ServeError(404, f"no repository {name!r}") from None
        number = request.path_params.get("number")
        if number is None:
            return state, state.latest_version, False
        if number > state.latest_version or not await run_in_threadpool(
            self.serving.has_version, state.id, number
        ):
            raise ServeError(404, f"repository {name!r} has no version {number}")
        return state, number, True

    async def add_slash(self, request: Request) -> Response:
        return RedirectResponse(request.url.path + "/", status_code=301)

    async def listing(self, request: Request) -> Response:
        try:
            state, number, pinned = await self._state(request)
        except ServeError as exc:
            return _text(exc.status, exc.message)
        media_type = negotiate(request.headers.get("accept"))
        if media_type is None:
            return _text(406, "acceptable: text/html, application/vnd.pypi.simple.v1+(html|json)")
        pull = state.pull_through_remote is not None and not pinned
        projects = await run_in_threadpool(self.serving.projects, state.id, number, pull_through=pull)
        serial = max((p.serial for p in projects), default=0)
        body = render_listing(projects, serial=serial, media_type=media_type)
        return _page(request, body, media_type, serial)

    async def project(self, request: Request) -> Response:
        project = request.path_params["project"]
        normalized = canonicalize_name(project)
        if normalized != project:
            base = request.url.path.rstrip("/").rsplit("/", 1)[0]
            return RedirectResponse(f"{base}/{quote(normalized)}/", status_code=301)
        try:
            state, number, pinned = await self._state(request)
            media_type = negotiate(request.headers.get("accept"))
            if media_type is None:
                return _text(406, "acceptable: text/html, application/vnd.pypi.simple.v1+(html|json)")
            key = (state.id, number, normalized, media_type)
            cached = self._pages.get(key)
            if cached is not None and cached[0] > time.monotonic():
                return _page(request, cached[1], media_type, cached[2])
            found = await run_in_threadpool(self.serving.project_files, state.id, number, normalized)
            cacheable = bool(found)
            if not found and state.pull_through_remote is not None and not pinned:
                pulled = await run_in_threadpool(
                    pull_through_files, self.serving, self.upstreams, state, normalized, ttl=self.ttl
                )
                found = [page_file(file) for file in pulled]
        except ServeError as exc:
            return _text(exc.status, exc.message)
        if not found:
            return _text(404, f"no project {normalized!r} in repository {state.name!r} version {number}")
        serial = max(f.package_id for f in found)
        body = await run_in_threadpool(
            lambda: render_project(
                found[0].name,
                normalized,
                found,
                serial=serial,
                media_type=media_type,
                files_prefix=f"/{quote(state.name)}/files/",
            )
        )
        if cacheable and self._page_seconds > 0:
            if len(self._pages) >= PAGE_CACHE_SIZE:
                self._pages.clear()
            self._pages[key] = (time.monotonic() + self._page_seconds, body, serial)
        return _page(request, body, media_type, serial)

    async def file(self, request: Request) -> Response:
        sha256, filename = request.path_params["sha256"], request.path_params["filename"]
        try:
            state, _, _ = await self._state(request)
            found = await run_in_threadpool(self.serving.find_file, state.id, sha256, filename)
            if found is None and filename.endswith(".metadata"):
                package = await run_in_threadpool(
                    self.serving.find_file, state.id, sha256, filename.removesuffix(".metadata")
                )
                if package is not None:
                    return await self._metadata(package)
            if found is None:
                return _text(404, f"no file {filename!r} with sha256 {sha256!r} in repository {state.name!r}")
            if request.method == "HEAD":
                headers = {"Content-Type": content_type_of(filename)}
                if found.size is not None:
                    headers["Content-Length"] = str(found.size)
                return Response(headers=headers)
            delivery = await run_in_threadpool(self.files.prepare, found)
        except ServeError as exc:
            return _text(exc.status, exc.message)
        if delivery.redirect is not None:
            return RedirectResponse(delivery.redirect, status_code=302)
        assert delivery.chunks is not None
        headers = {"X-Mirrorflow-Source": delivery.source}
        if delivery.size is not None:
            headers["Content-Length"] = str(delivery.size)
        return StreamingResponse(delivery.chunks, media_type=content_type_of(filename), headers=headers)

    async def _metadata(self, package: ServedFile) -> Response:
        data = await run_in_threadpool(core_metadata, self.files, package)
        return Response(data, media_type=content_type_of(".metadata"))


def _page(request: Request, body: bytes, media_type: str, serial: int) -> Response:
    etag = etag_of(body + media_type.encode())
    headers = {"ETag": etag, "X-PyPI-Last-Serial": str(serial), "Vary": "Accept"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    content_type = media_type if media_type == JSON_V1 else f"{media_type}; charset=utf-8"
    return Response(body, headers=headers | {"Content-Type": content_type})


class RequestLog:
    """ASGI middleware: one log line per request (method, path, status, bytes, milliseconds)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
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
