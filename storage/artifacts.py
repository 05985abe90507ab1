"""The artifact store port: content-addressed blobs (wheels, sdists) keyed by their sha256.

Two implementations live next to this module, ``filesystem_store.FileSystemStore`` and
``s3_store.S3Store``; both are held to one contract suite (``tests/integration/test_artifact_stores.py``).
Writes are verified before anything is published and published atomically under
``artifact_key(sha256)``, so a file is stored whole and correct or not at all, and storing the same
bytes twice changes nothing.

Errors (vendor errors are translated into these at the edge of each implementation)::

    ArtifactStoreError                 base of everything raised on purpose by a store
    +-- ArtifactNotFound               no artifact with this digest (also a FileNotFoundError); .sha256
    +-- DigestMismatch                 the bytes are not what the caller announced; nothing stored;
    |                                  .expected_sha256, .actual_sha256, .expected_size, .actual_size
    +-- ArtifactTooLarge               the stream exceeded the store's max_size; nothing stored;
    |                                  .max_size, .received
    +-- StoreUnavailable               the backend cannot be reached (S3 down, timeouts): transient,
                                       worth retrying later

A malformed digest is a programming error and raises ``ValueError`` from ``artifact_key``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from mirrorflow.storage.errors import MirrorflowError

__all__ = [
    "ArtifactInventory",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreError",
    "ArtifactTooLarge",
    "ChunkReader",
    "DigestMismatch",
    "Putter",
    "SpooledFile",
    "StoreUnavailable",
    "StoredArtifact",
    "StoredObject",
    "artifact_key",
    "is_digest",
    "spool_chunks",
]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class ArtifactStoreError(MirrorflowError):
    """Base class of the errors an artifact store raises on purpose."""


class ArtifactNotFound(ArtifactStoreError, FileNotFoundError):
    """No artifact is stored under ``sha256``."""

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        super().__init__(f"no artifact with sha256 {sha256!r} in the store")


class DigestMismatch(ArtifactStoreError):
    """The streamed bytes do not match the announced digest or size; nothing was stored.

    ``actual_sha256`` is None when the stream was abandoned early because it already exceeded
    ``expected_size``; ``actual_size`` is then the number of bytes received so far.
    """

    def __init__(
        self,
        *,
        expected_sha256: str | None,
        actual_sha256: str | None,
        expected_size: int | None,
        actual_size: int,
    ) -> None:
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        self.expected_size = expected_size
        self.actual_size = actual_size
        got_size = f"{actual_size}" if actual_sha256 is not None else f"at least {actual_size}"
        super().__init__(
            f"content does not match: expected sha256={expected_sha256!r} size={expected_size!r}, "
            f"got sha256={actual_sha256!r} size={got_size} bytes; nothing was stored"
        )


class ArtifactTooLarge(ArtifactStoreError):
    """The stream exceeded the store's ``max_size``; it was abandoned and nothing was stored."""

    def __init__(self, *, max_size: int, received: int) -> None:
        self.max_size = max_size
        self.received = received
        super().__init__(
            f"artifact is larger than max_size={max_size!r} bytes (received {received!r} so far); "
            "nothing was stored: raise the store's max_size to accept it"
        )


class StoreUnavailable(ArtifactStoreError):
    """The backend cannot be reached or answered with a server error; transient."""


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """An artifact as stored: its digest, its size in bytes and its content-addressed key.

    ``key`` is ``artifact_key(sha256)``, independent of the backend (an S3 store may put it under
    a prefix).
    """

    sha256: str
    size: int
    key: str


def artifact_key(sha256: str) -> str:
    """Return the content-addressed key of the artifact whose digest is ``sha256``.

    The two levels of fan-out keep directories (and S3 listings) small.

    >>> artifact_key("ab" * 32)
    'sha256/ab/ab/abababababababababababababababababababababababababababababababab'
    >>> artifact_key("ABC")
    Traceback (most recent call last):
    ...
    ValueError: invalid sha256 digest 'ABC': expected 64 lowercase hex digits

    Raises ``ValueError`` unless ``sha256`` is 64 lowercase hexadecimal digits.
    """
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"invalid sha256 digest {sha256!r}: expected 64 lowercase hex digits")
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def is_digest(name: str) -> bool:
    """Whether ``name`` is a sha256 digest as keys spell it (64 lowercase hex digits).

    >>> is_digest("ab" * 32), is_digest("AB" * 32), is_digest("spool-1")
    (True, False, False)
    """
    return _SHA256_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An artifact object in a store: its digest and when it was last written (aware, UTC)."""

    sha256: str
    modified: datetime


class Putter(Protocol):
    """What stores bytes: an ``ArtifactStore``, or its ``deferred()`` scope."""

    def put_chunks(self, chunks: Iterable[bytes], *, sha256: str | None, size: int | None) -> StoredArtifact:
        """Store the bytes of ``chunks`` (see ``ArtifactStore.put_chunks``)."""
        ...


@runtime_checkable
class ArtifactInventory(Protocol):
    """What orphan cleanup needs of a store: what it holds, deleting, and a crashed writer's spool.

    Narrow on purpose (``mirrorflow.storage.maintenance`` takes this, not a whole store): a sync never lists.
    """

    def stored_objects(self) -> Iterator[StoredObject]:
        """Yield every artifact object under its key (nothing else: no spool files, no strays).

        Raises ``StoreUnavailable``.
        """
        ...

    def delete(self, sha256: str) -> None:
        """Remove the artifact; deleting a missing artifact is not an error."""
        ...

    def remove_spool(self, *, older_than: datetime) -> int:
        """Delete what writers left half-written before ``older_than``; return how many files."""
        ...


@runtime_checkable
class ArtifactStore(ArtifactInventory, Protocol):
    """Where artifact bytes live, addressed by their sha256 (and its inventory, for maintenance)."""

    def put_chunks(self, chunks: Iterable[bytes], *, sha256: str | None, size: int | None) -> StoredArtifact:
        """Store the bytes of ``chunks`` and return what was stored.

        The stream is spooled to a temporary file while hashing (bounded memory) and checked against
        ``sha256`` and ``size`` when given; when ``sha256`` is None the computed digest decides the
        key. The artifact is then published atomically; if the key already exists the existing
        object is kept. Raises ``DigestMismatch`` or ``ArtifactTooLarge`` (nothing stored),
        ``StoreUnavailable``, or ``ValueError`` for a malformed ``sha256``.
        """
        ...

    def deferred(self) -> AbstractContextManager[Putter]:
        """A scope for many puts that pays for durability once, on leaving it (a sync's batch).

        Inside, ``put_chunks`` verifies as usual; what it stored is published and durable when the
        block exits normally, so record rows for it only after the block. On an exception, what
        was not yet published is dropped. A backend whose puts are durable anyway (S3) returns
        itself. Safe to share between threads.
        """
        ...

    def exists(self, sha256: str) -> bool:
        """Return whether an artifact is stored under ``sha256``. Raises ``StoreUnavailable``."""
        ...

    def open_chunks(self, sha256: str, *, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Return an iterator streaming the artifact's bytes; close it if not read to the end.

        Raises ``ArtifactNotFound`` at the call (not at the first chunk) and ``StoreUnavailable``.
        """
        ...

    def stat(self, sha256: str) -> int:
        """Return the artifact's size in bytes. Raises ``ArtifactNotFound``, ``StoreUnavailable``."""
        ...

    def url_for(self, sha256: str, *, filename: str, expires: timedelta) -> str | None:
        """Return a time-limited download URL where the backend has one (S3), else None."""
        ...


@dataclass(frozen=True, slots=True)
class SpooledFile:
    """A verified temporary copy of a stream: where it is, its digest and its size."""

    path: Path
    sha256: str
    size: int


@contextmanager
def spool_chunks(
    chunks: Iterable[bytes],
    *,
    sha256: str | None,
    size: int | None,
    max_size: int | None,
    fsync: bool,
    directory: Path | None = None,
) -> Iterator[SpooledFile]:
    """Write ``chunks`` to a temporary file while hashing, verify it, and yield it.

    ``directory`` is where the temporary file is created (the system temp dir when None); a store
    that publishes with ``os.replace`` passes a directory on the same filesystem. ``fsync`` makes
    the bytes durable before they are yielded. The temporary file is removed on exit unless the
    caller moved it away.

    Raises ``ValueError`` for a malformed ``sha256`` or a negative ``size`` before reading anything;
    ``ArtifactTooLarge`` as soon as the stream exceeds ``max_size``; ``DigestMismatch`` as soon as it
    exceeds ``size``, or at the end when the size or digest differ. Whatever the chunk iterator
    raises propagates unchanged. In every failure the temporary file is removed.
    """
    if sha256 is not None:
        artifact_key(sha256)  # validates
    if size is not None and size < 0:
        raise ValueError(f"invalid size {size!r}: expected a non-negative number of bytes")
    if max_size is not None and size is not None and size > max_size:
        # Refuse before downloading a single byte: the caller announced a size we will not accept.
        raise ArtifactTooLarge(max_size=max_size, received=0)

    fd, name = tempfile.mkstemp(prefix="spool-", dir=directory)
    path = Path(name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                received += len(chunk)
                if max_size is not None and received > max_size:
                    raise ArtifactTooLarge(max_size=max_size, received=received)
                if size is not None and received > size:
                    # Stop at once: a mirror must not fill its disk because an index lied.
                    raise DigestMismatch(
                        expected_sha256=sha256, actual_sha256=None, expected_size=size, actual_size=received
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        actual = digest.hexdigest()
        if (sha256 is not None and actual != sha256) or (size is not None and received != size):
            raise DigestMismatch(
                expected_sha256=sha256, actual_sha256=actual, expected_size=size, actual_size=received
            )
        yield SpooledFile(path=path, sha256=actual, size=received)
    finally:
        path.unlink(missing_ok=True)


class ChunkReader(Iterator[bytes]):
    """An iterator over a stored artifact's chunks that owns a resource and releases it.

    Implementations open the artifact eagerly (so a missing one raises at the call) and hand the
    chunks here; ``close`` runs at exhaustion, on ``close()``, on leaving a ``with`` block, or, as
    a last resort, when the reader is garbage collected.
    """

    def __init__(self, chunks: Iterator[bytes], close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._close: Callable[[], None] | None = close

    def __next__(self) -> bytes:
        if self._close is None:
            raise StopIteration
        try:
            return next(self._chunks)
        except BaseException:
            # StopIteration or a failure: either way the resource is of no further use.
            self.close()
            raise

    def close(self) -> None:
        """Release the underlying file or connection; safe to call more than once."""
        close, self._close = self._close, None
        if close is None:
            return
        try:
            stop = getattr(self._chunks, "close", None)  # a suspended generator: finish it first
            if stop is not None:
                stop()
        finally:
            close()

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
