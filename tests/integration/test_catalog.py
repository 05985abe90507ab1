"""The catalog on SQLite and PostgreSQL: one contract, both backends."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from support_content import commit, new_package

from mirrorflow.storage.catalog import AlreadyExists, NotFound
from mirrorflow.storage.content import ContentWriter, NewPackage


def _pkg(filename: str, content: bytes | None = None) -> NewPackage:
    return new_package(filename, name="Foo", content=content)


def _sync(writer: ContentWriter, packages: list[NewPackage], *, mirror: bool = False):
    return commit(writer, "foo", packages, mirror=mirror)


def test_repository_starts_at_version_zero(catalog):
    repo = catalog.create_repository("foo")
    assert repo.latest_version == 0
    version = catalog.get_version("foo")
    assert (version.number, version.added, version.removed, version.present) == (0, 0, 0, 0)


def test_names_are_unique_and_lookups_name_the_missing(catalog):
    catalog.create_repository("foo")
    catalog.create_remote("bar", url="https://index.example/simple/")
    with pytest.raises(AlreadyExists, match="repository 'foo' already exists"):
        catalog.create_repository("foo")
    with pytest.raises(AlreadyExists, match="remote 'bar'"):
        catalog.create_remote("bar", url="https://index.example/simple/")
    with pytest.raises(NotFound, match="repository 'nope' does not exist"):
        catalog.get_repository("nope")
    with pytest.raises(NotFound, match="remote 'nope'"):
        catalog.create_repository("other", remote="nope")
    assert [r.name for r in catalog.list_repositories()] == ["foo"]


def test_versions_are_intervals_and_old_versions_keep_their_content(catalog):
    writer = ContentWriter(catalog)
    catalog.create_repository("foo")
    a, b, c = _pkg("foo-1.0.tar.gz"), _pkg("foo-1.1.tar.gz"), _pkg("foo-1.2.tar.gz")

    v1 = _sync(writer, [a, b])
    assert (v1.number, v1.added, v1.removed, v1.present) == (1, 2, 0, 2)
    assert _sync(writer, [a, b]) is None, "an identical sync creates no version"
    assert catalog.get_repository("foo").latest_version == 1

    v2 = _sync(writer, [b, c], mirror=True)
    assert (v2.number, v2.added, v2.removed, v2.present) == (2, 1, 1, 2)
    assert [p.filename for p in writer.content_at("foo", 1)] == ["foo-1.0.tar.gz", "foo-1.1.tar.gz"]
    assert [p.filename for p in writer.content_at("foo")] == ["foo-1.1.tar.gz", "foo-1.2.tar.gz"]
    assert writer.content_at("foo", 0) == []

    v3 = _sync(writer, [a])  # additive: a comes back, nothing leaves
    assert (v3.number, v3.added, v3.removed, v3.present) == (3, 1, 0, 3)
    assert [v.number for v in catalog.list_versions("foo")] == [3, 2, 1, 0]
    assert writer.count_packages() == 3, "packages are shared rows, never duplicated"


def test_a_new_digest_under_the_same_filename_replaces_the_old_one(catalog):
    writer = ContentWriter(catalog)
    catalog.create_repository("foo")
    _sync(writer, [_pkg("foo-1.0.tar.gz", b"old")])
    v2 = _sync(writer, [_pkg("foo-1.0.tar.gz", b"new")])
    assert (v2.added, v2.removed, v2.present) == (1, 1, 1)
    [package] = writer.content_at("foo")
    assert package.sha256 == hashlib.sha256(b"new").hexdigest()


def test_artifacts_link_every_package_with_the_digest(catalog):
    writer = ContentWriter(catalog)
    catalog.create_repository("foo")
    pkg = _pkg("foo-1.0.tar.gz")
    _sync(writer, [pkg])
    assert writer.known_artifacts([pkg.sha256]) == set()
    writer.record_artifacts([(pkg.sha256, 10, "sha256/xx")])
    writer.record_artifacts([(pkg.sha256, 10, "sha256/xx")])  # idempotent
    assert writer.known_artifacts([pkg.sha256, "0" * 64]) == {pkg.sha256}
    [stored] = writer.content_at("foo")
    assert stored.artifact_sha256 == pkg.sha256


def test_a_discarded_sync_leaves_no_trace(catalog):
    writer = ContentWriter(catalog)
    repo = catalog.create_repository("foo")
    sync_id = str(uuid.uuid4())
    writer.stage(sync_id, repo.id, writer.upsert_packages([_pkg("foo-1.0.tar.gz")]).values())
    writer.discard(sync_id)
    assert writer.commit_version(repository="foo", sync_id=sync_id, mirror=False) is None
    assert catalog.get_repository("foo").latest_version == 0


def test_serving_reads_a_snapshot_beside_an_open_write_on_sqlite(sqlite_url):
    """A sync's open write transaction does not hold up the server's reads (SQLite's default is
    to wait up to busy_timeout, 30 s, for the write lock); they see what was committed."""
    import threading

    from sqlalchemy import update

    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.storage.models import Repository
    from mirrorflow.storage.serving import ServingCatalog

    catalog = Catalog.from_url(sqlite_url)
    catalog.create_repository("foo")
    serving = ServingCatalog(catalog)
    seen: list[int] = []
    with catalog.session() as writing:  # holds SQLite's write lock until the block ends
        writing.execute(update(Repository).where(Repository.name == "foo").values(latest_version=7))
        reader = threading.Thread(target=lambda: seen.append(serving.repository("foo").latest_version))
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "the read waited for the write lock"
    assert seen == [0]
    assert serving.repository("foo").latest_version == 7  # and the next read sees the commit
