"""Incremental sync: serials, conditional requests, stale pages, and the touched-only commit.

The steps run as the flow runs them (plan -> batches -> commit) against an index served by an
``httpx.MockTransport``, so each test can move the index and count the requests; the last test
runs the real flow through the CLI on the seed index. Both catalogs (SQLite, PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import httpx
import pytest
from support_sync import sync_config

from mirrorflow.storage.content import ContentWriter
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.filters import FilterSpec
from mirrorflow.tasks.index_client import IndexClient, build_http_client
from mirrorflow.tasks.listing import filter_fingerprint, list_projects
from mirrorflow.tasks.stages import run_batch

ROOT = "https://index.example/simple/"
JSON = "application/vnd.pypi.simple.v1+json"


class FakeIndex:
    """A PEP 691 index in memory: ``projects[name] = (serial, [filenames])``."""

    def __init__(self, **projects: tuple[int, list[str]]) -> None:
        self.projects = dict(projects)
        self.listing_serials = True
        self.page_serial_lag: dict[str, int] = {}  # name -> how far behind the listing its page is
        self.validators = "serial"  # "serial" (none), "etag" or "last-modified"
        self.hits: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.hits[path] += 1
        if path == "/simple/":
            entries = [
                {"name": n, **({"_last-serial": s} if self.listing_serials else {})}
                for n, (s, _) in sorted(self.projects.items())
            ]
            body = {"meta": {"api-version": "1.1"}, "projects": entries}
            return httpx.Response(200, json=body, headers={"Content-Type": JSON})
        name = path.removeprefix("/simple/").rstrip("/")
        if name not in self.projects:
            return httpx.Response(404)
        serial, filenames = self.projects[name]
        serial -= self.page_serial_lag.get(name, 0)
        headers = {"Content-Type": JSON}
        if self.listing_serials:
            headers["X-PyPI-Last-Serial"] = str(serial)
        if self.validators == "etag":
            headers["ETag"] = f'"{serial}"'
            if request.headers.get("If-None-Match") == headers["ETag"]:
                self.conditional[name] += 1
                return httpx.Response(304, headers=headers)
        if self.validators == "last-modified":
            headers["Last-Modified"] = f"Mon, 0{serial % 9 + 1} Jan 2024 00:00:00 GMT"
            if request.headers.get("If-Modified-Since") == headers["Last-Modified"]:
                self.conditional[name] += 1
                return httpx.Response(304, headers=headers)
        files = [
            {
                "filename": f,
                "url": f"/files/{f}",
                "hashes": {"sha256": hashlib.sha256(f.encode()).hexdigest()},
            }
            for f in filenames
        ]
        body = {"meta": {"api-version": "1.1"}, "name": name, "files": files}
        return httpx.Response(200, content=json.dumps(body).encode(), headers=headers)

    def page_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path != "/simple/")


def _files(name: str, *versions: str) -> list[str]:
    return [f"{name}-{v}.tar.gz" for v in versions]


@pytest.fixture
def setup(catalog, fs_store):
    catalog.create_remote("up", url=ROOT)
    repo = catalog.create_repository("repo", remote="up")
    index = FakeIndex(alpha=(10, _files("alpha", "1.0")), beta=(20, _files("beta", "1.0", "2.0")))
    http = build_http_client(concurrency=4, timeout=5.0, transport=httpx.MockTransport(index.handle))
    writer = ContentWriter(catalog)

    def sync(*, mirror: bool = True, spec: FilterSpec | None = None, attempts: int = 2):
        spec = spec or FilterSpec.build()
        fields = {
            "url": ROOT,
            "includes": [str(r) for r in spec.includes],
            "excludes": [str(r) for r in spec.excludes],
        }
        fingerprint = filter_fingerprint(fields, mirror=mirror)
        config = sync_config(
            repository="repo",
            repository_id=repo.id,
            remote="up",
            spec=spec,
            mirror=mirror,
            concurrency=4,
            attempts=attempts,
            stale_backoff=0.01,
            fingerprint=fingerprint,
            accepted_fingerprints=(fingerprint, filter_fingerprint(fields, mirror=True)),
        )
        services = SyncServices(index=IndexClient(ROOT, client=http), store=fs_store, writer=writer)
        work = list_projects(config, services)
        report = run_batch(work.fetch, config, services)
        version = writer.commit_version(
            repository="repo",
            sync_id=config.sync_id,
            mirror=mirror,
            remote_name="up",
            scope=work.scope,
            fingerprint=fingerprint,
        )
        return work, report, version

    def content() -> list[str]:
        return sorted(p.filename for p in writer.content_at("repo"))

    yield index, sync, content
    http.close()


def test_unchanged_serials_fetch_no_page_and_make_no_version(setup):
    index, sync, content = setup
    work, _, version = sync()
    assert work.mode == "full" and version is not None and version.number == 1
    pages = index.page_hits()
    work, report, version = sync()
    assert (work.mode, len(work.fetch), work.unchanged) == ("serial", 0, 2)
    assert version is None and index.page_hits() == pages
    assert content() == ["alpha-1.0.tar.gz", "beta-1.0.tar.gz", "beta-2.0.tar.gz"]


def test_only_changed_and_new_projects_are_fetched_and_the_rest_keeps_its_content(setup):
    index, sync, content = setup
    sync()
    index.hits.clear()
    index.projects["alpha"] = (11, _files("alpha", "1.0", "1.1"))
    index.projects["gamma"] = (30, _files("gamma", "0.1"))
    work, _, version = sync(mirror=True)
    assert [w.name for w in work.fetch] == ["alpha", "gamma"]
    assert "/simple/beta/" not in index.hits
    assert version is not None and (version.added, version.removed) == (2, 0)
    assert content() == [
        "alpha-1.0.tar.gz",
        "alpha-1.1.tar.gz",
        "beta-1.0.tar.gz",
        "beta-2.0.tar.gz",
        "gamma-0.1.tar.gz",
    ]


def test_a_changed_project_loses_its_removed_files_in_mirror_mode_only(setup):
    index, sync, content = setup
    sync(mirror=True)
    index.projects["beta"] = (21, _files("beta", "2.0"))
    _, _, version = sync(mirror=True)
    assert version is not None and version.removed == 1
    assert content() == ["alpha-1.0.tar.gz", "beta-2.0.tar.gz"]


@pytest.mark.parametrize("mirror", [True, False], ids=["mirror", "additive"])
def test_projects_gone_from_the_listing(setup, mirror):
    index, sync, content = setup
    sync(mirror=mirror)
    del index.projects["beta"]
    work, _, version = sync(mirror=mirror)
    assert work.gone == ("beta",) and not work.fetch
    if mirror:
        assert version is not None and version.removed == 2
        assert content() == ["alpha-1.0.tar.gz"]
    else:
        assert version is None and "beta-1.0.tar.gz" in content()
    index.projects["beta"] = (20, _files("beta", "1.0", "2.0"))
    work, _, _ = sync(mirror=mirror)
    assert [w.name for w in work.fetch] == ["beta"], "a forgotten project is fetched when it returns"


def test_changing_the_filters_forces_a_full_re_evaluation(setup):
    index, sync, content = setup
    sync()
    work, _, version = sync(spec=FilterSpec.build(excludes=["beta>=2"]))
    assert work.mode == "full" and work.reason == "filters changed"
    assert [w.name for w in work.fetch] == ["alpha", "beta"]
    assert version is not None and content() == ["alpha-1.0.tar.gz", "beta-1.0.tar.gz"]
    work, _, _ = sync(spec=FilterSpec.build(excludes=["beta>=2"]))
    assert work.mode == "serial" and not work.fetch


def test_a_mirror_sync_after_an_additive_one_re_evaluates_everything(setup):
    index, sync, content = setup
    sync(mirror=False)
    index.projects["beta"] = (21, _files("beta", "2.0"))
    sync(mirror=False)
    assert "beta-1.0.tar.gz" in content()
    work, _, _ = sync(mirror=True)
    assert work.mode == "full"
    assert content() == ["alpha-1.0.tar.gz", "beta-2.0.tar.gz"]


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_without_serials_pages_are_fetched_conditionally(setup, validators):
    index, sync, content = setup
    index.listing_serials = False
    index.validators = validators
    sync()
    work, report, version = sync()
    assert work.mode == "conditional" and len(work.fetch) == 2
    assert index.conditional == Counter({"alpha": 1, "beta": 1})
    assert report.not_modified == 2 and version is None
    index.projects["alpha"] = (11, _files("alpha", "1.0", "1.1"))
    work, report, version = sync()
    assert report.not_modified == 1 and version is not None and version.added == 1
    assert "alpha-1.1.tar.gz" in content() and "beta-2.0.tar.gz" in content()


def test_a_stale_page_is_retried_then_reported_and_left_as_it_was(setup):
    index, sync, content = setup
    sync()
    index.projects["beta"] = (25, _files("beta", "3.0"))
    index.page_serial_lag["beta"] = 3  # the page still says 22: a lagging cache
    index.hits.clear()
    work, report, version = sync(mirror=True, attempts=3)
    assert index.hits["/simple/beta/"] == 3  # the first try and two retries
    assert report.stale == ["beta"]
    assert version is None, "a stale project is neither emptied nor changed"
    assert content() == ["alpha-1.0.tar.gz", "beta-1.0.tar.gz", "beta-2.0.tar.gz"]
    del index.page_serial_lag["beta"]
    work, report, version = sync(mirror=True)
    assert [w.name for w in work.fetch] == ["beta"], "the stale project's serial was not remembered"
    assert version is not None and content() == ["alpha-1.0.tar.gz", "beta-3.0.tar.gz"]


def _page_hits(running) -> int:
    return sum(n for path, n in running.hits.items() if path.startswith("/simple/") and path != "/simple/")


def test_the_flow_resyncs_the_seed_index_without_fetching_pages(cli, seed_index):
    assert cli("repository", "create", "--name", "foo").exit_code == 0
    assert cli("remote", "create", "--name", "bar", "--url", seed_index.url).exit_code == 0
    first = cli("repository", "sync", "--name", "foo", "--remote", "bar", "--mirror")
    assert first.exit_code == 0, first.stderr
    assert first.json()["number"] == 1
    pages = _page_hits(seed_index)
    second = cli("repository", "sync", "--name", "foo", "--remote", "bar", "--mirror")
    assert second.exit_code == 0, second.stderr
    assert second.json()["number"] == 1, "nothing changed: no new version"
    assert _page_hits(seed_index) == pages, "unchanged serials: no project page fetched"


def test_a_stale_project_keeps_its_content_through_a_full_mirror_re_evaluation(setup):
    index, sync, content = setup
    sync(mirror=True)
    index.projects["beta"] = (25, _files("beta", "3.0"))
    index.page_serial_lag["beta"] = 1
    work, report, _ = sync(mirror=True, spec=FilterSpec.build(excludes=["alpha<1"]), attempts=1)
    assert work.mode == "full" and report.stale == ["beta"]
    assert content() == ["alpha-1.0.tar.gz", "beta-1.0.tar.gz", "beta-2.0.tar.gz"]
    del index.page_serial_lag["beta"]
    work, _, _ = sync(mirror=True, spec=FilterSpec.build(excludes=["alpha<1"]))
    assert [w.name for w in work.fetch] == ["beta"]
    assert content() == ["alpha-1.0.tar.gz", "beta-3.0.tar.gz"]


def test_forgetting_the_memory_makes_the_next_sync_full(setup, catalog):
    from mirrorflow.storage.serials import SerialMemory

    index, sync, content = setup
    sync()
    SerialMemory(catalog).forget(catalog.get_repository("repo").id)
    work, _, version = sync()
    assert work.mode == "full" and work.reason == "first sync" and version is None
