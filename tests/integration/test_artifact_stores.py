"""One contract suite for every ``ArtifactStore``: the filesystem store and the S3 store (moto).

Each contract test runs once per backend; backend-specific checks (what is left on disk or in the
bucket) go through ``leftovers``, which lists *everything* a store holds, temporary files included.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from minio import Minio
from support_s3 import new_bucket_name

from mirrorflow.storage.artifacts import (
    ArtifactInventory,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    ArtifactTooLarge,
    DigestMismatch,
    StoredArtifact,
    StoreUnavailable,
    artifact_key,
)
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.s3_store import S3Store

DATA = b"mirrorflow artifact bytes\n" * 100
DATA_SHA = hashlib.sha256(DATA).hexdigest()
MISSING_SHA = "0" * 64
MakeStore = Callable[..., ArtifactStore]


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> ArtifactStore:
    result: ArtifactStore = request.getfixturevalue(f"{backend}_store")
    return result


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Build an extra store of the current backend with constructor options (e.g. ``max_size``)."""
    if backend == "fs":
        return lambda **options: FileSystemStore(tmp_path / "extra", **options)
    client: Minio = request.getfixturevalue("s3_client")
    return lambda **options: S3Store(client, new_bucket_name(), **options)


@pytest.fixture
def leftovers(backend: str, request: pytest.FixtureRequest) -> Callable[[ArtifactStore], list[str]]:
    """Return a function listing every file (fs, ``.incoming`` included) or object (S3) in a store."""
    if backend == "fs":

        def files(store: ArtifactStore) -> list[str]:
            assert isinstance(store, FileSystemStore)
            return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())

        return files
    client: Minio = request.getfixturevalue("s3_client")

    def objects(store: ArtifactStore) -> list[str]:
        assert isinstance(store, S3Store)
        return sorted(str(o.object_name) for o in client.list_objects(store.bucket, recursive=True))

    return objects


def test_implements_the_protocol(store: ArtifactStore) -> None:
    assert isinstance(store, ArtifactStore)


def test_the_inventory_lists_every_artifact_and_nothing_else(store: ArtifactStore) -> None:
    """``stored_objects`` (orphan cleanup's view): each stored artifact once, with a recent time."""
    assert isinstance(store, ArtifactInventory)
    assert list(store.stored_objects()) == []
    before = datetime.now(UTC) - timedelta(minutes=1)
    other = store.put_chunks([b"other"], sha256=None, size=None).sha256
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    with pytest.raises(DigestMismatch):
        store.put_chunks([b"bad"], sha256=MISSING_SHA, size=None)
    listed = {o.sha256: o.modified for o in store.stored_objects()}
    assert sorted(listed) == sorted([DATA_SHA, other])
    assert all(before < moment <= datetime.now(UTC) + timedelta(minutes=1) for moment in listed.values())
    store.delete(other)
    assert [o.sha256 for o in store.stored_objects()] == [DATA_SHA]


def test_remove_spool_deletes_only_old_leftovers(store: ArtifactStore, backend: str) -> None:
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    if backend == "fs":
        assert isinstance(store, FileSystemStore)
        (store.root / ".incoming" / "spool-crashed").write_bytes(b"half")
        assert store.remove_spool(older_than=datetime.now(UTC) - timedelta(hours=1)) == 0
        assert store.remove_spool(older_than=datetime.now(UTC) + timedelta(seconds=5)) == 1
    else:  # an S3 store spools in the system's temporary directory, never in the bucket
        assert store.remove_spool(older_than=datetime.now(UTC) + timedelta(seconds=5)) == 0
    assert store.exists(DATA_SHA) and [o.sha256 for o in store.stored_objects()] == [DATA_SHA]


def test_roundtrip(store: ArtifactStore) -> None:
    stored = store.put_chunks(chunked(DATA, 1000), sha256=DATA_SHA, size=len(DATA))

    assert stored == StoredArtifact(sha256=DATA_SHA, size=len(DATA), key=artifact_key(DATA_SHA))
    assert store.exists(DATA_SHA)
    assert store.stat(DATA_SHA) == len(DATA)
    assert b"".join(store.open_chunks(DATA_SHA, chunk_size=7)) == DATA

    store.delete(DATA_SHA)
    assert not store.exists(DATA_SHA)
    store.delete(DATA_SHA)  # idempotent


def test_content_addressed_key(store: ArtifactStore, leftovers: Callable[[ArtifactStore], list[str]]) -> None:
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    assert leftovers(store) == [f"sha256/{DATA_SHA[:2]}/{DATA_SHA[2:4]}/{DATA_SHA}"]


def test_second_put_is_a_noop(store: ArtifactStore, leftovers: Callable[[ArtifactStore], list[str]]) -> None:
    first = store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    second = store.put_chunks(chunked(DATA, 100), sha256=None, size=None)

    assert first == second
    assert leftovers(store) == [artifact_key(DATA_SHA)]
    assert b"".join(store.open_chunks(DATA_SHA)) == DATA


def test_existing_artifact_does_not_excuse_bad_bytes(store: ArtifactStore) -> None:
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    with pytest.raises(DigestMismatch):
        store.put_chunks([b"evil"], sha256=DATA_SHA, size=None)
    assert b"".join(store.open_chunks(DATA_SHA)) == DATA


def test_wrong_sha256_stores_nothing(
    store: ArtifactStore, leftovers: Callable[[ArtifactStore], list[str]]
) -> None:
    with pytest.raises(DigestMismatch) as caught:
        store.put_chunks(chunked(DATA, 64), sha256=MISSING_SHA, size=len(DATA))

    error = caught.value
    assert (error.expected_sha256, error.actual_sha256) == (MISSING_SHA, DATA_SHA)
    assert (error.expected_size, error.actual_size) == (len(DATA), len(DATA))
    assert MISSING_SHA in str(error) and DATA_SHA in str(error)
    assert not store.exists(MISSING_SHA)
    assert not store.exists(DATA_SHA)
    assert leftovers(store) == []


@pytest.mark.parametrize(
    ("announced", "actual_sha256"),
    [
        pytest.param(len(DATA) + 1, DATA_SHA, id="stream-shorter-than-announced"),
        pytest.param(len(DATA) - 1, None, id="stream-longer-than-announced-stops-early"),
    ],
)
def test_wrong_size_stores_nothing(
    store: ArtifactStore,
    leftovers: Callable[[ArtifactStore], list[str]],
    announced: int,
    actual_sha256: str | None,
) -> None:
    with pytest.raises(DigestMismatch) as caught:
        store.put_chunks(chunked(DATA, 64), sha256=None, size=announced)

    assert caught.value.expected_size == announced
    assert caught.value.actual_sha256 == actual_sha256
    assert not store.exists(DATA_SHA)
    assert leftovers(store) == []


def test_put_without_sha256_computes_the_key(store: ArtifactStore) -> None:
    stored = store.put_chunks(iter([b"abc", b"", b"def"]), sha256=None, size=None)

    expected = hashlib.sha256(b"abcdef").hexdigest()
    assert stored == StoredArtifact(sha256=expected, size=6, key=artifact_key(expected))
    assert b"".join(store.open_chunks(expected)) == b"abcdef"


def test_empty_artifact(store: ArtifactStore) -> None:
    empty_sha = hashlib.sha256(b"").hexdigest()
    stored = store.put_chunks([], sha256=empty_sha, size=0)

    assert stored.size == 0
    assert store.stat(empty_sha) == 0
    assert b"".join(store.open_chunks(empty_sha)) == b""


def test_streams_a_multi_megabyte_body(store: ArtifactStore) -> None:
    # 6 MiB and a bit: over minio's 5 MiB part size, so the S3 store goes through a multipart upload.
    body = os.urandom(6 * 1024 * 1024 + 12345)
    sha = hashlib.sha256(body).hexdigest()

    stored = store.put_chunks(chunked(body, 8191), sha256=sha, size=len(body))

    assert stored.size == len(body)
    assert store.stat(sha) == len(body)
    digest = hashlib.sha256()
    for chunk in store.open_chunks(sha, chunk_size=1 << 20):
        assert len(chunk) <= 1 << 20
        digest.update(chunk)
    assert digest.hexdigest() == sha


def test_failing_chunk_iterator_stores_nothing(
    store: ArtifactStore, leftovers: Callable[[ArtifactStore], list[str]]
) -> None:
    def broken() -> Iterator[bytes]:
        yield DATA[:100]
        yield DATA[100:200]
        raise ConnectionResetError("upstream index hung up")

    with pytest.raises(ConnectionResetError):
        store.put_chunks(broken(), sha256=DATA_SHA, size=len(DATA))

    assert not store.exists(DATA_SHA)
    assert leftovers(store) == []


def test_max_size_refuses_large_artifacts(
    make_store: MakeStore, leftovers: Callable[[ArtifactStore], list[str]]
) -> None:
    limited = make_store(max_size=100)

    with pytest.raises(ArtifactTooLarge) as caught:
        limited.put_chunks(chunked(DATA, 64), sha256=None, size=None)
    assert caught.value.max_size == 100
    assert "max_size=100" in str(caught.value)
    with pytest.raises(ArtifactTooLarge):
        limited.put_chunks([b"x"], sha256=None, size=101)  # refused from the announced size alone

    assert leftovers(limited) == []
    assert limited.put_chunks([DATA[:100]], sha256=None, size=100).size == 100


def test_missing_artifact(store: ArtifactStore) -> None:
    assert not store.exists(MISSING_SHA)
    with pytest.raises(ArtifactNotFound) as caught:
        store.stat(MISSING_SHA)
    assert caught.value.sha256 == MISSING_SHA
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(ArtifactNotFound):
        store.open_chunks(MISSING_SHA)  # raised at the call, before any iteration


def test_partially_read_stream_can_be_closed(store: ArtifactStore) -> None:
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))

    chunks = store.open_chunks(DATA_SHA, chunk_size=10)
    assert next(chunks) == DATA[:10]
    chunks.close()  # type: ignore[attr-defined]  # ChunkReader.close; releases the file/connection
    assert list(chunks) == []
    assert store.stat(DATA_SHA) == len(DATA)  # the store still works after an abandoned read


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.exists("ABC"), id="exists"),
        pytest.param(lambda s: s.stat("a" * 63), id="stat"),
        pytest.param(lambda s: s.open_chunks("g" * 64), id="open_chunks"),
        pytest.param(lambda s: s.delete("../" * 21 + "a"), id="delete"),
        pytest.param(lambda s: s.put_chunks([b""], sha256="A" * 64, size=None), id="put_chunks"),
        pytest.param(lambda s: s.url_for("", filename="x.whl", expires=timedelta(minutes=1)), id="url_for"),
    ],
)
def test_malformed_digest_is_a_value_error(
    store: ArtifactStore, call: Callable[[ArtifactStore], object]
) -> None:
    with pytest.raises(ValueError, match="invalid sha256 digest"):
        call(store)


def test_url_for(store: ArtifactStore, backend: str) -> None:
    store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))

    url = store.url_for(DATA_SHA, filename="demo-1.0-py3-none-any.whl", expires=timedelta(minutes=5))

    if backend == "fs":
        assert url is None
        return
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == DATA
    assert 'filename="demo-1.0-py3-none-any.whl"' in response.headers["content-disposition"]


# S3 only ---------------------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_prefix_namespaces_the_objects(s3_client: Minio, s3_store: S3Store) -> None:
    store = S3Store(s3_client, s3_store.bucket, prefix="/mirror/main/")
    stored = store.put_chunks([DATA], sha256=None, size=None)

    assert stored.key == artifact_key(DATA_SHA)
    names = [o.object_name for o in s3_client.list_objects(s3_store.bucket, recursive=True)]
    assert names == [f"mirror/main/{artifact_key(DATA_SHA)}"]
    assert not s3_store.exists(DATA_SHA)  # same bucket, no prefix: another namespace
    assert [o.sha256 for o in store.stored_objects()] == [DATA_SHA]
    assert list(s3_store.stored_objects()) == []


@pytest.mark.s3
def test_s3_missing_bucket(s3_client: Minio) -> None:
    store = S3Store(s3_client, new_bucket_name(), create_bucket=False)

    assert not store.exists(DATA_SHA)
    with pytest.raises(ArtifactNotFound):
        store.stat(DATA_SHA)
    store.delete(DATA_SHA)
    with pytest.raises(ArtifactStoreError, match="NoSuchBucket") as caught:
        store.put_chunks([DATA], sha256=None, size=None)
    assert not isinstance(caught.value, ArtifactNotFound)


def _dead_endpoint() -> str:
    """Return a loopback ``host:port`` on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def test_s3_unreachable_endpoint_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the S3 store spools uploads
    endpoint = _dead_endpoint()
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as caught:
        S3Store.from_settings(endpoint, "key", "secret", "bucket", secure=False, region="us-east-1")
    assert isinstance(caught.value.__cause__, Exception)

    store = S3Store.from_settings(
        endpoint, "key", "secret", "bucket", secure=False, region="us-east-1", create_bucket=False
    )
    with pytest.raises(StoreUnavailable):
        store.exists(DATA_SHA)
    with pytest.raises(StoreUnavailable):
        store.open_chunks(DATA_SHA)
    with pytest.raises(StoreUnavailable):
        store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))

    assert time.monotonic() - started < 5
    assert list(tmp_path.iterdir()) == []  # the verified spool file was removed all the same


# -- deferred puts: published and durable together when the scope exits ---------------------------


def test_deferred_puts_are_published_when_the_scope_exits(store: ArtifactStore, leftovers) -> None:
    other = b"another artifact\n" * 50
    other_sha = hashlib.sha256(other).hexdigest()
    with store.deferred() as puts:
        first = puts.put_chunks(chunked(DATA, 100), sha256=DATA_SHA, size=len(DATA))
        again = puts.put_chunks([DATA], sha256=None, size=None)  # the same bytes twice: one object
        second = puts.put_chunks([other], sha256=other_sha, size=len(other))
        with pytest.raises(DigestMismatch):
            puts.put_chunks([b"tampered"], sha256=DATA_SHA, size=None)
    assert first == again == StoredArtifact(sha256=DATA_SHA, size=len(DATA), key=artifact_key(DATA_SHA))
    assert second.sha256 == other_sha
    assert b"".join(store.open_chunks(DATA_SHA)) == DATA
    assert b"".join(store.open_chunks(other_sha)) == other
    assert leftovers(store) == sorted(
        [store_path(store, DATA_SHA), store_path(store, other_sha)]
    )  # no spool file left behind


def test_deferred_puts_wait_in_incoming_until_the_scope_exits(fs_store: FileSystemStore) -> None:
    with fs_store.deferred() as puts:
        puts.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
        assert not fs_store.exists(DATA_SHA)  # not under its key before it is durable
        assert [p.name.startswith("ready-") for p in (fs_store.root / ".incoming").iterdir()] == [True]
    assert fs_store.exists(DATA_SHA)
    assert list((fs_store.root / ".incoming").iterdir()) == []


def test_a_failing_scope_publishes_nothing_and_leaves_nothing(fs_store: FileSystemStore) -> None:
    with pytest.raises(RuntimeError), fs_store.deferred() as puts:
        puts.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
        raise RuntimeError("the batch failed")
    assert not fs_store.exists(DATA_SHA)
    assert [p for p in fs_store.root.rglob("*") if p.is_file()] == []


def test_deferred_puts_keep_an_existing_object(fs_store: FileSystemStore, monkeypatch) -> None:
    import mirrorflow.storage.filesystem_store as fs

    fs_store.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    before = fs_store.path_for(DATA_SHA).stat().st_ino
    monkeypatch.setattr(fs, "_libc_syncfs", lambda: None)  # the fsync-per-file path (no syncfs)
    with fs_store.deferred() as puts:
        puts.put_chunks([DATA], sha256=DATA_SHA, size=len(DATA))
    assert fs_store.path_for(DATA_SHA).stat().st_ino == before
    assert list((fs_store.root / ".incoming").iterdir()) == []


def test_deferred_puts_publish_in_steps_so_a_killed_sync_keeps_most_of_its_work(
    fs_store: FileSystemStore, monkeypatch
) -> None:
    import mirrorflow.storage.filesystem_store as fs

    flushes: list[str] = []
    real_syncfs = fs._syncfs

    def counting_syncfs(directory: Path) -> bool:
        flushes.append(threading.current_thread().name)
        if len(flushes) == 1:
            raise OSError(5, "an early flush failed")  # that step publishes nothing; a later one does
        return real_syncfs(directory)

    monkeypatch.setattr(fs, "_EARLY_FLUSH_BYTES", len(DATA))
    monkeypatch.setattr(fs, "_syncfs", counting_syncfs)
    blobs = [DATA + bytes([i]) for i in range(4)]
    digests = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    with fs_store.deferred() as puts:
        for index, blob in enumerate(blobs):
            puts.put_chunks([blob], sha256=digests[index], size=len(blob))
            puts._flusher.join()  # type: ignore[attr-defined]  # one step per put here
            # A step makes what was spooled durable, then publishes it: visible before the exit.
            assert [fs_store.exists(d) for d in digests] == [index >= 1] * (index + 1) + [False] * (3 - index)
        assert flushes == ["mirrorflow-flush"] * 7  # the failed one, then durable + moves durable, x3
    assert flushes[7:] == []  # nothing was left for the exit
    assert all(fs_store.exists(digest) for digest in digests)
    assert list((fs_store.root / ".incoming").iterdir()) == []


def test_deferred_puts_left_by_an_exception_keep_what_a_step_published(
    fs_store: FileSystemStore, monkeypatch
) -> None:
    import mirrorflow.storage.filesystem_store as fs

    monkeypatch.setattr(fs, "_EARLY_FLUSH_BYTES", len(DATA))
    first, second = DATA + b"1", DATA + b"2"
    with pytest.raises(RuntimeError), fs_store.deferred() as puts:
        puts.put_chunks([first], sha256=hashlib.sha256(first).hexdigest(), size=len(first))
        puts._flusher.join()  # type: ignore[attr-defined]
        monkeypatch.setattr(fs, "_EARLY_FLUSH_BYTES", 1 << 40)  # no step for the second
        puts.put_chunks([second], sha256=hashlib.sha256(second).hexdigest(), size=len(second))
        raise RuntimeError("the batch failed")
    assert fs_store.exists(hashlib.sha256(first).hexdigest()), "published by a step: kept, for a rerun"
    assert not fs_store.exists(hashlib.sha256(second).hexdigest())
    assert list((fs_store.root / ".incoming").iterdir()) == []


def store_path(store: ArtifactStore, sha256: str) -> str:
    return store.object_name(sha256) if isinstance(store, S3Store) else artifact_key(sha256)
