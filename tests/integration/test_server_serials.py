"""Serve's serials: a project's serial is the last repository version that added or removed one of its
files, the same number on its page, in the listing, in the header and in ``repository publish``;
a pinned version keeps its own. A downstream mirrorflow syncing ``--mirror`` from serve then sees a
removal in serial mode. Both catalogs; content written directly, no Prefect flow run.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support_content import commit, new_package
from support_server import NoUpstreams
from support_sync import sync_config

from mirrorflow.server.app import create_app
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.publish import load_version
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.blocklists import add_entry
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import parse_entry
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.filters import FilterSpec
from mirrorflow.tasks.index_client import IndexClient, build_http_client
from mirrorflow.tasks.listing import SyncMode, filter_fingerprint, list_projects
from mirrorflow.tasks.stages import run_batch


def _package(filename: str) -> NewPackage:
    return new_package(filename, size=len(filename), url=f"https://index.example/{filename}")


def _commit(catalog: Catalog, store: FileSystemStore, *filenames: str) -> None:
    """Commit a ``--mirror`` version of ``pps`` holding exactly ``filenames`` (stored: content = the name)."""
    writer = ContentWriter(catalog)
    packages = [_package(name) for name in filenames]
    for package in packages:
        done = store.put_chunks([package.filename.encode()], sha256=package.sha256, size=package.size)
        writer.record_artifacts([(done.sha256, done.size, done.key)])
    assert commit(writer, "pps", packages, mirror=True) is not None
    writer.link_artifacts(p.sha256 for p in packages)


@pytest.fixture
def upstream(
    catalog: Catalog, tmp_path
) -> Iterator[tuple[httpx.Client, Catalog, FileSystemStore, list[float]]]:
    """``mirrorflow serve`` (the test's clock) over repository ``pps`` of ``catalog``, version 1:
    ``epochal`` 1.0 and 2.0, ``other`` 1.0."""
    store = FileSystemStore(tmp_path / "store")
    catalog.create_repository("pps")
    _commit(catalog, store, "epochal-1.0.tar.gz", "epochal-2.0.tar.gz", "other-1.0.tar.gz")
    clock = [1000.0]
    app = create_app(catalog, store, NoUpstreams(), clock=lambda: clock[0])
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, catalog, store, clock


def _serials(client: httpx.Client, prefix: str) -> dict[str, int]:
    """Every project's serial as the listing at ``prefix`` shows it, checked against its page: JSON
    meta, header, HTML meta and comment."""
    listing = client.get(f"{prefix}/simple/", headers={"Accept": JSON_V1}).json()
    serials = {p["name"]: p["_last-serial"] for p in listing["projects"]}
    assert listing["meta"]["_last-serial"] == max(serials.values())
    for name, serial in serials.items():
        page = client.get(f"{prefix}/simple/{name}/", headers={"Accept": JSON_V1})
        assert page.json()["meta"]["_last-serial"] == serial, name
        assert page.headers["X-PyPI-Last-Serial"] == str(serial), name
        html = client.get(f"{prefix}/simple/{name}/").text
        assert f"<!--SERIAL {serial}-->" in html and f'"pypi:last-serial" content="{serial}"' in html, name
    return serials


def test_a_removal_raises_the_serial_of_its_project_only_and_pinned_versions_keep_theirs(upstream) -> None:
    client, catalog, store, clock = upstream
    assert _serials(client, "/pps") == {"epochal": 1, "other": 1}
    _commit(catalog, store, "epochal-1.0.tar.gz", "other-1.0.tar.gz")  # version 2 removes epochal 2.0
    clock[0] += 10.0
    assert _serials(client, "/pps") == {"epochal": 2, "other": 1}, "a removal alone raises the serial"
    assert _serials(client, "/pps/versions/1") == {"epochal": 1, "other": 1}, "version 1 keeps its serials"
    _commit(catalog, store, "epochal-1.0.tar.gz", "other-1.0.tar.gz", "other-2.0.tar.gz")
    clock[0] += 10.0
    assert _serials(client, "/pps") == {"epochal": 2, "other": 3}
    assert _serials(client, "/pps/versions/2") == {"epochal": 2, "other": 1}
    serving = ServingCatalog(catalog)
    repository_id = catalog.get_repository("pps").id
    assert serving.project_page(repository_id, 2, "epochal").serial == 2
    assert [f.filename for f in serving.project_page(repository_id, 2, "epochal").files] == [
        "epochal-1.0.tar.gz"
    ]
    assert serving.project_page(repository_id, 3, "nothing").serial == 0
    assert load_version(serving, "pps", 2).serials == {"epochal": 2, "other": 1}, "publish: as serve"


def test_a_blocklist_entry_refusing_files_of_a_pinned_version_keeps_listing_and_page_equal(upstream) -> None:
    client, catalog, _, clock = upstream
    parsed = parse_entry("epochal==2.0")
    add_entry(catalog, "pps", entry=parsed.canonical, kind=parsed.kind.value, project=parsed.project,
              blocks=parsed.blocks)  # fmt: skip
    clock[0] += 10.0
    assert _serials(client, "/pps") == {"epochal": 2, "other": 1}, "the entry's version removed 2.0"
    # Version 1 still holds 2.0 and serve refuses it there: the serial stays the version's.
    assert _serials(client, "/pps/versions/1") == {"epochal": 1, "other": 1}
    assert load_version(ServingCatalog(catalog), "pps", 1).serials == {"epochal": 1, "other": 1}


def test_a_downstream_mirror_sync_sees_a_blocklisted_file_go_in_serial_mode(upstream, tmp_path) -> None:
    """The trial's case: a second mirrorflow syncs ``--mirror`` from the first one's serve; the
    upstream blocklists ``epochal==1.0``; the downstream's next sync, in serial mode, removes it."""
    client, _, _, clock = upstream
    url = f"{str(client.base_url).rstrip('/')}/pps/simple/"
    down = Catalog.from_url(f"sqlite:///{tmp_path / 'down.db'}")
    down.create_remote("up", url=url)
    repo = down.create_repository("down", remote="up")
    writer = ContentWriter(down)
    http = build_http_client(concurrency=2, timeout=10.0, http2=False)
    fingerprint = filter_fingerprint({"url": url, "includes": [], "excludes": []}, mirror=True)

    def sync() -> tuple[SyncMode, bool]:
        config = sync_config(
            repository="down", repository_id=repo.id, remote="up", spec=FilterSpec.build(), mirror=True,
            concurrency=2, attempts=2, stale_backoff=0.01, fingerprint=fingerprint,
            accepted_fingerprints=(fingerprint,),
        )  # fmt: skip
        services = SyncServices(
            index=IndexClient(url, client=http), store=FileSystemStore(tmp_path / "down"), writer=writer
        )
        work = list_projects(config, services)
        report = run_batch(work.fetch, config, services)
        assert not report.failures and not report.stale, report
        version = writer.commit_version(
            repository="down", sync_id=config.sync_id, mirror=True, remote_name="up", scope=work.scope,
            fingerprint=fingerprint,
        )  # fmt: skip
        return work.mode, version is not None

    def files() -> list[str]:
        return sorted(p.filename for p in writer.content_at("down"))

    try:
        assert sync() == (SyncMode.FULL, True)
        assert sync() == (SyncMode.SERIAL, False)
        assert files() == ["epochal-1.0.tar.gz", "epochal-2.0.tar.gz", "other-1.0.tar.gz"]
        # Not the file with the largest id: the largest package id (the old serial) stays as it was.
        parsed = parse_entry("epochal==1.0")
        add_entry(upstream[1], "pps", entry=parsed.canonical, kind=parsed.kind.value,
                  project=parsed.project, blocks=parsed.blocks)  # fmt: skip
        clock[0] += 10.0
        assert sync() == (SyncMode.SERIAL, True), "the removal shows in the serial"
        assert files() == ["epochal-2.0.tar.gz", "other-1.0.tar.gz"]
        assert sync() == (SyncMode.SERIAL, False), "and then nothing changes"
    finally:
        http.close()
        down.dispose()


def test_the_listing_takes_the_version_entry_of_a_project_the_version_holds_as_its_page_does(
    catalog: Catalog, tmp_path
) -> None:
    """Pull-through: a project the version holds is listed with the version's serial (its page shows
    the version's files), one only pulled through with the largest id of its pulled files."""
    store = FileSystemStore(tmp_path / "store")
    catalog.create_repository("pps")
    _commit(catalog, store, "epochal-1.0.tar.gz")
    catalog.create_remote("pt", url="https://index.example/simple/")
    serving = ServingCatalog(catalog)
    repository_id = catalog.get_repository("pps").id
    serving.record_pull_through(repository_id, "pt", "epochal", [_package("epochal-9.0.tar.gz")])
    serving.record_pull_through(repository_id, "pt", "pulled", [_package("pulled-1.0.tar.gz")])
    pulled_id = max(f.package_id for f in serving.pull_through_files(repository_id, "pulled")[0])
    listed = {p.normalized_name: p.serial for p in serving.projects(repository_id, 1, pull_through=True)}
    assert listed == {"epochal": 1, "pulled": pulled_id}
    assert serving.project_page(repository_id, 1, "epochal").serial == 1
