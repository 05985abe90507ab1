"""A publication to S3 that fails midway leaves no object that nothing will ever delete
(``mirrorflow.server.publish_s3``: the pending object), and never deletes one a reader may need.

moto's S3 server on loopback with the real minio client; the failure is injected into the bucket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from support_content import commit, new_package
from support_s3 import _drop_bucket, new_bucket_name

from mirrorflow.fixtureindex.builder import make_wheel
from mirrorflow.server.publish import MARKER, PublishError
from mirrorflow.server.publish_s3 import PENDING, publish_to_bucket
from mirrorflow.storage.artifacts import StoreUnavailable
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.s3_publication import PublicationBucket
from mirrorflow.storage.serving import ServingCatalog


def _add_version(serving: ServingCatalog, store: FileSystemStore, *names: str) -> None:
    """Commit the next version of ``r``: what it held plus a stored wheel of each of ``names``."""
    writer, packages = ContentWriter(serving.catalog), []
    for name in names:
        filename, wheel = make_wheel(name, "1.0")
        stored = store.put_chunks([wheel], sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel))
        writer.record_artifacts([(stored.sha256, stored.size, stored.key)])
        packages.append(new_package(filename, content=wheel, size=len(wheel)))
    assert commit(writer, "r", packages, mirror=False) is not None
    writer.link_artifacts(package.sha256 for package in packages)  # recorded before their rows


@pytest.fixture
def published(sqlite_url, tmp_path, s3_client) -> Iterator[tuple[ServingCatalog, FileSystemStore, str]]:
    """Repository ``r`` (version 1: two wheels), a store, and an empty bucket's name."""
    catalog = Catalog.from_url(sqlite_url)
    store, serving = FileSystemStore(tmp_path / "store"), ServingCatalog(catalog)
    catalog.create_repository("r")
    _add_version(serving, store, "mf-orph-a", "mf-orph-b")
    name = new_bucket_name()
    s3_client.make_bucket(name)
    try:
        yield serving, store, name
    finally:
        _drop_bucket(s3_client, name)
        catalog.dispose()


def _keys(client, bucket: str, prefix: str) -> set[str]:
    return {
        o.object_name[len(prefix) + 1 :] for o in client.list_objects(bucket, prefix + "/", recursive=True)
    }


def _failing(bucket: PublicationBucket, fails: Callable[[str], bool]) -> PublicationBucket:
    """``bucket`` whose uploads of the keys ``fails`` names raise, as an endpoint going away would."""
    put, put_chunks = bucket.put, bucket.put_chunks

    def check(key: str) -> None:
        if fails(key):
            raise StoreUnavailable(f"{bucket} is unavailable: injected at {key!r}")

    bucket.put = lambda key, body, **kw: (check(key), put(key, body, **kw))[1]  # type: ignore[method-assign]
    bucket.put_chunks = lambda key, chunks, **kw: (check(key), put_chunks(key, chunks, **kw))[1]  # type: ignore[method-assign]
    return bucket


def test_a_failure_while_copying_files_removes_what_it_uploaded(published, s3_client) -> None:
    serving, store, name = published
    assert publish_to_bucket(serving, store, "r", None, PublicationBucket(s3_client, name, "p")).version == 1
    one = _keys(s3_client, name, "p")
    _add_version(serving, store, "mf-orph-c")
    # c's wheel is copied, then its .metadata fails: no page links the wheel yet.
    failing = _failing(PublicationBucket(s3_client, name, "p"), lambda key: key.endswith(".metadata"))
    with pytest.raises(PublishError, match="injected at 'files/.*mf_orph_c-1.0-py3-none-any.whl.metadata'"):
        publish_to_bucket(serving, store, "r", None, failing)
    assert _keys(s3_client, name, "p") == one, "the wheel it uploaded is gone, and the pending object"


def test_a_failure_after_pages_changed_is_cleared_by_the_next_publications(published, s3_client) -> None:
    serving, store, name = published
    bucket = PublicationBucket(s3_client, name, "p")
    publish_to_bucket(serving, store, "r", None, bucket)
    one = _keys(s3_client, name, "p")
    _add_version(serving, store, "mf-orph-c")
    # c's files and pages are up, the listing fails: a reader may hold c's page, which links c's wheel.
    failing = _failing(PublicationBucket(s3_client, name, "p"), lambda key: key == "simple/index.html")
    with pytest.raises(PublishError, match="injected"):
        publish_to_bucket(serving, store, "r", None, failing)
    left = _keys(s3_client, name, "p") - one
    assert PENDING in left and any(key.startswith("files/") for key in left), left
    assert b'"version": 1' in (bucket.read(MARKER) or b""), "the manifest is the old one"

    back = publish_to_bucket(serving, store, "r", 1, bucket)  # c is not in version 1
    assert not any(key.startswith("simple/mf-orph-c/") for key in _keys(s3_client, name, "p")), "pages go"
    kept = _keys(s3_client, name, "p") - one
    assert kept and all("mf_orph_c" in key for key in kept), "files stay one publication for readers"
    assert back.removed == 3
    publish_to_bucket(serving, store, "r", 1, bucket)
    assert _keys(s3_client, name, "p") == one, "then they go too: nothing is left that no manifest names"


def test_a_first_publication_that_failed_is_not_taken_for_a_foreign_prefix(published, s3_client) -> None:
    serving, store, name = published
    failing = _failing(PublicationBucket(s3_client, name, "p"), lambda key: key == "simple/index.v1_json")
    with pytest.raises(PublishError, match="injected"):
        publish_to_bucket(serving, store, "r", None, failing)
    assert MARKER not in _keys(s3_client, name, "p") and PENDING in _keys(s3_client, name, "p")
    again = publish_to_bucket(serving, store, "r", None, PublicationBucket(s3_client, name, "p"))
    assert again.version == 1 and PENDING not in _keys(s3_client, name, "p")
