"""orphans cleanup: deletes what nothing references, keeps what a version or a running sync uses."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.maintenance import cleanup_orphans
from mirrorflow.storage.models import Artifact, Package

LATER = datetime.now(UTC) + timedelta(hours=2)  # "now" for a cleanup that finds everything old
HOUR = timedelta(hours=1)


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def _stored_package(writer: ContentWriter, store, name: str) -> NewPackage:
    body = f"the bytes of {name}".encode()
    artifact = store.put_chunks([body], sha256=None, size=None)
    filename = f"{name}-1.0-py3-none-any.whl"
    package = NewPackage(name, name, "1.0", filename, "bdist_wheel", "py3", None, artifact.sha256,
                         artifact.size, None, False, None, None, False, f"https://index.example/{filename}")  # fmt: skip
    writer.upsert_packages([package])
    writer.record_artifacts([(artifact.sha256, artifact.size, artifact.key)])
    return package


def _ids(catalog) -> dict[str, int]:
    with catalog.session() as session:
        return {name: id_ for name, id_ in session.execute(select(Package.name, Package.id))}


def _world(catalog, store):
    """kept (in the latest version), old (only in version 1, still retained), loose (nothing), staged."""
    repo = catalog.create_repository("foo")
    writer = ContentWriter(catalog)
    packages = {n: _stored_package(writer, store, n) for n in ("kept", "old", "loose", "staged")}
    ids = _ids(catalog)
    for version in (["kept", "old"], ["kept"]):
        sync_id = str(uuid.uuid4())
        writer.stage(sync_id, repo.id, [ids[n] for n in version])
        writer.commit_version(repository="foo", sync_id=sync_id, mirror=True)
    writer.stage(str(uuid.uuid4()), repo.id, [ids["staged"]])  # a sync still running
    stray = store.put_chunks([b"an object whose sync died before recording it"], sha256=None, size=None)
    return packages, stray.sha256


def test_cleanup_deletes_only_what_nothing_references(catalog, store):
    packages, stray = _world(catalog, store)

    result = cleanup_orphans(catalog, store, protection=HOUR, now=LATER)

    assert (result.packages, result.artifacts, result.objects) == (1, 1, 2)
    assert set(_ids(catalog)) == {"kept", "old", "staged"}
    loose = packages.pop("loose").sha256
    assert not store.exists(loose) and not store.exists(stray)
    with catalog.session() as session:
        assert set(session.scalars(select(Artifact.sha256))) == {p.sha256 for p in packages.values()}
    assert all(store.exists(p.sha256) for p in packages.values())
    again = cleanup_orphans(catalog, store, protection=HOUR, now=LATER)
    assert (again.packages, again.artifacts, again.objects) == (0, 0, 0), "a second run changes nothing"


def test_the_protection_time_keeps_young_rows_and_objects(catalog, store):
    packages, stray = _world(catalog, store)
    result = cleanup_orphans(catalog, store, protection=HOUR)
    assert (result.packages, result.artifacts, result.objects) == (0, 0, 0)
    assert store.exists(stray) and store.exists(packages["loose"].sha256)
    assert "loose" in _ids(catalog)


def test_an_object_with_a_row_is_never_deleted_even_when_old(catalog, fs_store):
    writer = ContentWriter(catalog)
    package = _stored_package(writer, fs_store, "kept")
    catalog.create_repository("foo")
    with catalog.session() as session:  # a package whose version was retained away, its row still young
        session.execute(update(Package).values(created=datetime.now(UTC)))
    old = (LATER - 2 * HOUR).timestamp()
    os.utime(fs_store.path_for(package.sha256), (old, old))
    assert [f.sha256 for f in fs_store.stored_objects()] == [package.sha256]
    cleanup_orphans(catalog, fs_store, protection=HOUR, now=LATER - HOUR)
    assert fs_store.exists(package.sha256), "the artifact row protects its object"


def test_a_sync_reusing_an_old_orphan_touches_it_so_cleanup_leaves_it(catalog, store):
    """A sync that finds an old orphan's artifact (known_artifacts) and package (upsert) reuses them:
    the touch restarts the protection time, so a cleanup racing that sync keeps them."""
    writer = ContentWriter(catalog)
    package = _stored_package(writer, store, "reused")
    two_hours_ago = datetime.now(UTC) - 2 * HOUR
    with catalog.session() as session:  # an orphan for two hours: cleanup would take it now
        session.execute(update(Package).values(created=two_hours_ago, touched_at=None))
        session.execute(update(Artifact).values(created=two_hours_ago, touched_at=None))

    assert writer.known_artifacts([package.sha256]) == {package.sha256}  # the sync skips the download
    writer.upsert_packages([package])  # and records the package it is about to stage

    result = cleanup_orphans(catalog, store, protection=HOUR)
    assert (result.packages, result.artifacts, result.objects) == (0, 0, 0)
    assert "reused" in _ids(catalog) and store.exists(package.sha256)
    later = cleanup_orphans(catalog, store, protection=HOUR, now=LATER)
    assert (later.packages, later.artifacts) == (1, 1), "still an orphan once the protection time is over"


def test_bad_protection_time_is_one_line(cli):
    result = cli("orphans", "cleanup", "--protection-time", "-5")
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr.splitlines()[-1]
        == "Error: protection_time: must be a number of minutes from 0 to 5256000 (got -5)"
    )


@pytest.mark.slow
def test_cleanup_racing_a_sync_never_takes_what_the_sync_is_writing(cli, mirrorflow_env, seed_index):
    """A cleanup loop runs all through an immediate sync: the version is whole and every file stored.

    Old orphans (rows backdated two hours) are deleted during the race, so the cleanup does work
    while the sync writes objects, then packages, then artifacts, then staging rows.
    """
    settings = Settings()
    catalog, store = catalog_for(settings), store_for(settings)
    writer = ContentWriter(catalog)
    orphan = _stored_package(writer, store, "orphan")
    with catalog.session() as session:
        two_hours_ago = datetime.now(UTC) - 2 * HOUR
        session.execute(update(Package).values(created=two_hours_ago))
        session.execute(update(Artifact).values(created=two_hours_ago))
    if isinstance(store, FileSystemStore):
        old = two_hours_ago.timestamp()
        os.utime(store.path_for(orphan.sha256), (old, old))

    assert cli("repository", "create", "--name", "foo").exit_code == 0
    assert cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--policy", "immediate",
               "--includes", '["django", "scipy", "pip-tools", "shelf-reader", "mf-demo-lib"]').exit_code == 0  # fmt: skip

    done, runs, errors = threading.Event(), [], []

    def clean() -> None:
        while not done.is_set():
            try:
                runs.append(cleanup_orphans(catalog, store, protection=HOUR))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            time.sleep(0.01)

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    try:
        synced = cli("repository", "sync", "--name", "foo", "--remote", "bar")
    finally:
        done.set()
        cleaner.join()
    assert synced.exit_code == 0, synced.stderr
    assert not errors, errors
    assert len(runs) >= 2, "the cleanup ran while the sync did"
    assert sum(r.packages for r in runs) == 1 and not store.exists(orphan.sha256), "the old orphan went"

    content = writer.content_at("foo")
    assert len(content) == synced.json()["content_summary"]["present"]["python.python"]["count"] > 10
    for package in content:
        assert package.artifact_sha256 == package.sha256, package.filename
        body = b"".join(store.open_chunks(package.sha256))
        assert hashlib.sha256(body).hexdigest() == package.sha256
    after = cleanup_orphans(catalog, store, protection=timedelta(0))
    assert (after.packages, after.artifacts) == (0, 0), "everything the sync wrote is referenced now"


def test_cleanup_removes_old_spool_files_a_crashed_writer_left(catalog, fs_store):
    incoming = fs_store.root / ".incoming"
    old_spool, old_ready, young = incoming / "spool-a", incoming / "ready-spool-b", incoming / "spool-c"
    for path in (old_spool, old_ready, young):
        path.write_bytes(b"half a download")
    old = (LATER - 2 * HOUR).timestamp()
    for path in (old_spool, old_ready):
        os.utime(path, (old, old))
    os.utime(young, ((LATER - HOUR / 2).timestamp(),) * 2)
    result = cleanup_orphans(catalog, fs_store, protection=HOUR, now=LATER)
    assert result.spool_files == 2
    assert sorted(p.name for p in incoming.iterdir()) == ["spool-c"], "a young file may still be written"
