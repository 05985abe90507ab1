"""The server's page cache: pages per repository version, the change signal, ETags, hostile paths.

The real app runs with uvicorn on a loopback port, over a catalog filled directly with
``ContentWriter``, on both catalogs; its clock is the test's, so "a second later" costs no sleep.
Catalog statements are counted with a SQLAlchemy event on the catalog's engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import create_engine, event, text
from support_server import NoUpstreams

from mirrorflow.server.app import create_app
from mirrorflow.server.cache import CachedPage, PageCache
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore


def _package(name: str, version: str) -> NewPackage:
    filename = f"{name}-{version}.tar.gz"
    return NewPackage(
        name=name, normalized_name=name, version=version, filename=filename, packagetype="sdist",
        python_version="source", requires_python=None, sha256=hashlib.sha256(filename.encode()).hexdigest(),
        size=10, upload_time=datetime(2024, 1, 1, tzinfo=UTC), yanked=False, yanked_reason=None,
        metadata_sha256=None, has_metadata=False, url=f"https://index.example/{filename}",
    )  # fmt: skip


def _commit(catalog: Catalog, repo: str, *packages: NewPackage) -> None:
    """Add ``packages`` to ``repo`` as a new version (what a sync's commit does)."""
    writer = ContentWriter(catalog)
    sync_id = f"s-{repo}-{packages[0].filename}"
    writer.stage(sync_id, catalog.get_repository(repo).id, writer.upsert_packages(list(packages)).values())
    writer.commit_version(repository=repo, sync_id=sync_id, mirror=False)


@dataclass
class _Server:
    """The module's server, its catalog and clock, and this test's repository (``/r/`` in paths)."""

    client: httpx.Client
    catalog: Catalog
    store: FileSystemStore
    repo: str = "r"
    statements: list[str] = field(default_factory=list)
    now: float = 1000.0

    def get(self, path: str, **headers: str):
        if path.startswith("/r/") or path.startswith("/r%"):
            path = f"/{self.repo}{path[2:]}"
        return self.client.get(path, headers=headers)

    def commit(self, *packages: NewPackage) -> None:
        _commit(self.catalog, self.repo, *packages)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def _module_server(request, tmp_path_factory) -> Iterator[_Server]:
    """One catalog and server per backend for the module (a migration per test would cost more
    than the tests); each test has a repository of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('cache') / 'catalog.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    catalog = Catalog.from_url(url)
    store = FileSystemStore(tmp_path_factory.mktemp("store"))
    state = _Server(client=None, catalog=catalog, store=store)  # type: ignore[arg-type]
    app = create_app(catalog, store, NoUpstreams(), clock=lambda: state.now)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        state.client = client
        yield state
    catalog.dispose()


@pytest.fixture
def served(_module_server, request) -> Iterator[_Server]:
    """Repository ``r`` of this test at version 1 (project ``a`` 1.0), statements counted."""
    server = _module_server
    server.repo = "r-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    server.catalog.create_repository(server.repo)
    server.commit(_package("a", "1.0"))
    server.now += 1.0  # the server learns of the repository
    listener = lambda *args: server.statements.append(args[2])  # noqa: E731
    event.listen(server.catalog.engine, "before_cursor_execute", listener)
    try:
        yield server
    finally:
        event.remove(server.catalog.engine, "before_cursor_execute", listener)
        server.statements.clear()


def _versions(response) -> list[str]:
    assert response.status_code == 200, response.text
    return response.json()["versions"]


def test_a_commit_changes_the_latest_page_within_the_interval(served):
    assert _versions(served.get("/r/simple/a/", accept=JSON_V1)) == ["1.0"]
    served.commit(_package("a", "2.0"))
    assert _versions(served.get("/r/simple/a/", accept=JSON_V1)) == ["1.0"], "within the interval"
    served.now += 1.0
    assert _versions(served.get("/r/simple/a/", accept=JSON_V1)) == ["1.0", "2.0"]
    assert _versions(served.get("/r/versions/1/simple/a/", accept=JSON_V1)) == ["1.0"]
    assert served.get("/r/versions/2/simple/").status_code == 200


def test_cached_pages_cost_no_catalog_query(served):
    paths = ["/r/simple/a/", "/r/versions/1/simple/a/", "/r/simple/", "/r/simple/nope/", "/x/simple/"]
    first = [served.get(path).status_code for path in paths]
    assert first == [200, 200, 200, 404, 404]
    served.statements.clear()
    for _ in range(5):
        assert [served.get(path).status_code for path in paths] == first
    assert served.statements == []
    served.now += 1.0  # the state is read again: one statement (plus BEGIN on SQLite) for them all
    assert [served.get(path).status_code for path in paths * 3] == first * 3
    assert len([s for s in served.statements if "repositories" in s]) == 1
    assert all("packages" not in s for s in served.statements), "pages still come from the cache"


def test_pinned_pages_stay_cached_across_commits(served):
    pinned = served.get("/r/versions/1/simple/a/")
    served.commit(_package("a", "2.0"))
    served.now += 1.0
    served.get("/r/simple/")  # reads the new state
    served.statements.clear()
    again = served.get("/r/versions/1/simple/a/")
    assert again.content == pinned.content and again.headers["etag"] == pinned.headers["etag"]
    assert served.statements == []


def test_etag_is_the_pages_and_if_none_match_gives_304(served):
    first = served.get("/r/simple/a/")
    etag = first.headers["etag"]
    assert first.headers["content-length"] == str(len(first.content))
    again = served.get("/r/simple/a/", **{"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert "content-type" not in again.headers and again.headers["x-pypi-last-serial"]
    assert served.get("/r/simple/a/", **{"if-none-match": f'W/"x", {etag}'}).status_code == 304
    as_json = served.get("/r/simple/a/", accept=JSON_V1, **{"if-none-match": etag})
    assert as_json.status_code == 200 and as_json.headers["etag"] != etag
    assert served.get("/r/versions/1/simple/a/").headers["etag"] == etag, "same version, same page"


_HOSTILE = [
    "/r/simple/foo%00bar/",
    "/r/versions/1/simple/foo%00bar/",
    "/r/simple/foo%00bar",
    "/r%00/simple/",
    "/r/simple/a%0a/",
    f"/r/files/{'0' * 64}/a%00.tar.gz",
    f"/r/files/{'0' * 64}/a-1.0.tar.gz%00.metadata",
    "/r/files/00%00/a-1.0.tar.gz",
    "/r/simple/" + "a" * 2000 + "/",
]


def test_hostile_paths_never_reach_the_catalog(served):
    served.get("/r/simple/")  # the state is read
    served.statements.clear()
    for path in _HOSTILE:
        response = served.get(path)
        assert response.status_code in (400, 404) and len(response.text) < 200, path
    assert served.statements == []


def test_a_stored_file_is_looked_up_once(served):
    body = b"sdist bytes"
    package = _package("b", "1.0")._replace(sha256=hashlib.sha256(body).hexdigest(), size=len(body))
    served.commit(package)
    stored = served.store.put_chunks([body], sha256=package.sha256, size=len(body))
    ContentWriter(served.catalog).record_artifacts([(stored.sha256, stored.size, stored.key)])
    served.now += 1.0
    path = f"/r/files/{package.sha256}/{package.filename}"
    assert served.get(path).content == body
    served.statements.clear()
    assert served.get(path).content == body and served.get(path + "x").status_code == 404
    assert served.get(path + "x").status_code == 404
    selects = [statement for statement in served.statements if statement.startswith("SELECT")]
    assert len(selects) == 2, "the unknown name once (two lookups), the stored file never"


def test_the_page_cache_evicts_the_least_recently_used_by_bytes():
    cache = PageCache(max_bytes=12_000)
    for name in "abc":
        cache.put(name, CachedPage(200, b"x" * 3000, [], None))
    cache.get("a")
    cache.put("d", CachedPage(200, b"x" * 3000, [], None))
    assert sorted(cache.keys()) == ["a", "c", "d"] and cache.size <= 12_000  # type: ignore[type-var]
    cache.put("huge", CachedPage(200, b"x" * 20_000, [], None))
    assert cache.get("huge") is None and len(cache) == 3
