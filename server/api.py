"""The read-only JSON API: the hrefs the CLI prints, answered in Pulp's shape (``mirrorflow.server.hrefs``).

Routes (all ``GET``; lists are paginated as Pulp paginates them)::

    /pulp/api/v3/repositories/python/python/[<uuid>/]            repositories
    /pulp/api/v3/repositories/python/python/<uuid>/versions/[<n>/]  their versions
    /pulp/api/v3/remotes/python/python/[<uuid>/]                 remotes (secrets as hidden_fields)
    /pulp/api/v3/content/python/packages/[<uuid>/]               packages; a list filters on
        repository_version, repository_version_added or repository_version_removed (a version href)

A list is ``{"count", "next", "previous", "results"}``; ``limit`` (default 100) and ``offset``
choose the page, and ``next`` / ``previous`` are absolute URLs, as Django REST framework's
limit-offset pagination writes them (a limit or offset that is not a number is ignored, as there).
An unknown object is a 404 ``{"detail": "Not found."}``; a filter naming no version a 400
``{"<filter>": ["..."]}``. The records come through ``ReadApi``, which the caller provides: the
views (field names, hidden secrets) are the CLI's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirrorflow.server.hrefs import (
    MEMBERSHIP_FILTERS,
    PACKAGES,
    REMOTES,
    REPOSITORIES,
    InvalidHref,
    Membership,
    parse_version_href,
)
from mirrorflow.storage.catalog import NotFound

__all__ = ["DEFAULT_LIMIT", "ReadApi", "api_routes", "page_links"]

#: Pulp's default page size.
DEFAULT_LIMIT = 100


class ReadApi(Protocol):
    """The records the API shows, as JSON-ready dicts; each raises ``NotFound`` for an unknown uuid."""

    def repositories(self) -> list[dict[str, Any]]: ...
    def repository(self, uuid: str) -> dict[str, Any]: ...
    def versions(self, repository_uuid: str) -> list[dict[str, Any]]: ...
    def version(self, repository_uuid: str, number: int) -> dict[str, Any]: ...
    def remotes(self) -> list[dict[str, Any]]: ...
    def remote(self, uuid: str) -> dict[str, Any]: ...
    def content(
        self, version: tuple[str, int, Membership] | None, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]: ...
    def package(self, uuid: str) -> dict[str, Any]: ...


def api_routes(api: ReadApi) -> list[Route]:
    """The API's routes over ``api`` (after the simple index's)."""
    handlers = _Handlers(api)
    return [
        Route(REPOSITORIES, handlers.repositories),
        Route(REPOSITORIES + "{uuid}/", handlers.repository),
        Route(REPOSITORIES + "{uuid}/versions/", handlers.versions),
        Route(REPOSITORIES + "{uuid}/versions/{number:int}/", handlers.version),
        Route(REMOTES, handlers.remotes),
        Route(REMOTES + "{uuid}/", handlers.remote),
        Route(PACKAGES, handlers.content),
        Route(PACKAGES + "{uuid}/", handlers.package),
    ]


def page_links(
    url: str, query: Sequence[tuple[str, str]], *, count: int, limit: int, offset: int
) -> tuple[str | None, str | None]:
    """``(next, previous)`` of a page, as Django REST framework's ``LimitOffsetPagination`` writes them.

    ``url`` is the list's absolute URL without query; ``query`` its other parameters, kept in order.

    >>> page_links("http://h/l/", [("name", "x")], count=250, limit=100, offset=100)
    ('http://h/l/?name=x&limit=100&offset=200', 'http://h/l/?name=x&limit=100')
    >>> page_links("http://h/l/", [], count=250, limit=100, offset=200)
    (None, 'http://h/l/?limit=100&offset=100')
    """
    kept = [(key, value) for key, value in query if key not in ("limit", "offset")]

    def link(params: list[tuple[str, str]]) -> str:
        return f"{url}?{urlencode(kept + params, safe='/:')}"

    following = (
        link([("limit", str(limit)), ("offset", str(offset + limit))]) if offset + limit < count else None
    )
    if offset <= 0:
        return following, None
    if offset - limit <= 0:
        return following, link([("limit", str(limit))])
    return following, link([("limit", str(limit)), ("offset", str(offset - limit))])


def _positive(text: str | None, default: int, *, strict: bool) -> int:
    """A query's limit or offset; anything that is not a fitting number gives ``default`` (as DRF)."""
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    if value < 0 or (strict and value == 0):
        return default
    return min(value, 2**31 - 1)


def _not_found() -> Response:
    return JSONResponse({"detail": "Not found."}, status_code=404)


class _Handlers:
    def __init__(self, api: ReadApi) -> None:
        self.api = api

    async def _one(self, method: Any, *args: Any) -> Response:
        try:
            return JSONResponse(_jsonable(await run_in_threadpool(method, *args)))
        except NotFound:
            return _not_found()

    async def _list(self, request: Request, method: Any, *args: Any) -> Response:
        try:
            rows = await run_in_threadpool(method, *args)
        except NotFound:
            return _not_found()
        limit, offset = self._window(request)
        return self._paginated(request, len(rows), rows[offset : offset + limit], limit, offset)

    @staticmethod
    def _window(request: Request) -> tuple[int, int]:
        params = request.query_params
        return (
            _positive(params.get("limit"), DEFAULT_LIMIT, strict=True),
            _positive(params.get("offset"), 0, strict=False),
        )

    @staticmethod
    def _paginated(request: Request, count: int, results: list[Any], limit: int, offset: int) -> Response:
        url = str(request.url.replace(query=""))
        following, previous = page_links(
            url, request.query_params.multi_items(), count=count, limit=limit, offset=offset
        )
        body = {"count": count, "next": following, "previous": previous, "results": results}
        return JSONResponse(_jsonable(body))

    async def repositories(self, request: Request) -> Response:
        return await self._list(request, self.api.repositories)

    async def repository(self, request: Request) -> Response:
        return await self._one(self.api.repository, request.path_params["uuid"])

    async def versions(self, request: Request) -> Response:
        return await self._list(request, self.api.versions, request.path_params["uuid"])

    async def version(self, request: Request) -> Response:
        return await self._one(self.api.version, request.path_params["uuid"], request.path_params["number"])

    async def remotes(self, request: Request) -> Response:
        return await self._list(request, self.api.remotes)

    async def remote(self, request: Request) -> Response:
        return await self._one(self.api.remote, request.path_params["uuid"])

    async def package(self, request: Request) -> Response:
        return await self._one(self.api.package, request.path_params["uuid"])

    async def content(self, request: Request) -> Response:
        given = [
            (key, request.query_params[key]) for key in MEMBERSHIP_FILTERS if key in request.query_params
        ]
        if len(given) > 1:
            message = f"give one of {', '.join(MEMBERSHIP_FILTERS)}, not {len(given)}"
            return JSONResponse({given[1][0]: [message]}, status_code=400)
        version: tuple[str, int, Membership] | None = None
        if given:
            key, href = given[0]
            try:
                repository_uuid, number = parse_version_href(href)
            except InvalidHref as exc:
                return JSONResponse({key: [str(exc)]}, status_code=400)
            version = (repository_uuid, number, MEMBERSHIP_FILTERS[key])
        limit, offset = self._window(request)
        try:
            count, results = await run_in_threadpool(
                lambda: self.api.content(version, limit=limit, offset=offset)
            )
        except NotFound:
            href = given[0][1] if given else ""
            return JSONResponse({given[0][0]: [f"{href!r} names no repository version"]}, status_code=400)
        return self._paginated(request, count, results, limit, offset)


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC with a ``Z``, as Pulp (and the CLI) print them."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    isoformat = getattr(value, "isoformat", None)
    if isoformat is not None:
        return str(isoformat()).replace("+00:00", "Z")
    return value
