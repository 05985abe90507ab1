"""``FileSystemStore``: the artifact store port on a local directory.

Layout under ``root``::

    <root>/.incoming/spool-<random>     streams being written (never read by anyone else)
    <root>/sha256/ab/cd/<sha256>        published artifacts, see ``artifacts.artifact_key``

A write is spooled into ``.incoming`` (same filesystem as the final key), verified, fsynced and then
moved with ``os.replace``, which is atomic on POSIX: a reader sees the whole file under its key or
nothing, never a partial file. ``deferred()`` does the same for many writes at the price of two
flushes per step (a sync's batch of downloads: an ``fsync`` per file was a quarter of its download
threads' time): the files wait in ``.incoming``; every 32 MiB spooled, a background step flushes
the filesystem (``syncfs``), moves the files spooled before it under their keys and flushes again,
and the block's exit does the same for the rest. A crash or power loss leaves spool files in
``.incoming``, never a torn file under a key; what a step published stays, so a sync killed at 90%
finds most of its downloads under their keys when it runs again (``mirrorflow.tasks.fetch`` reuses them). Errors are those of
``mirrorflow.storage.artifacts``; a missing file becomes
``ArtifactNotFound``. Other ``OSError``s (disk full, permissions) propagate unchanged: they are not
transient and need an operator.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from mirrorflow.storage.artifacts import (
    ArtifactNotFound,
    ChunkReader,
    StoredArtifact,
    StoredObject,
    artifact_key,
    is_digest,
    spool_chunks,
)

__all__ = ["DeferredPuts", "FileSystemStore"]

_INCOMING = ".incoming"
#: A deferred scope starts a flush in the background each time this much more was spooled.
_EARLY_FLUSH_BYTES = 32 << 20


class FileSystemStore:
    """Artifacts stored as files under ``root``; implements ``mirrorflow.storage.artifacts.ArtifactStore``.

    ``max_size`` (bytes, None for no limit) makes ``put_chunks`` refuse larger artifacts with
    ``ArtifactTooLarge``. The root and its ``.incoming`` directory are created if missing.
    """

    def __init__(self, root: Path | str, *, max_size: int | None = None) -> None:
        self._root = Path(root)
        self._incoming = self._root / _INCOMING
        self._max_size = max_size
        self._incoming.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FileSystemStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        """The directory holding the artifacts."""
        return self._root

    def path_for(self, sha256: str) -> Path:
        """Return where the artifact ``sha256`` lives (or would live). Raises ``ValueError``."""
        return self._root / artifact_key(sha256)

    def put_chunks(self, chunks: Iterable[bytes], *, sha256: str | None, size: int | None) -> StoredArtifact:
        """Verify and store the stream; see ``ArtifactStore.put_chunks``."""
        with spool_chunks(
            chunks,
            sha256=sha256,
            size=size,
            max_size=self._max_size,
            fsync=True,
            directory=self._incoming,
        ) as spooled:
            key = artifact_key(spooled.sha256)
            final = self._root / key
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                # Two writers racing on the same key both hold identical, verified bytes, so whichever
                # replace lands last changes nothing a reader could notice.
                os.replace(spooled.path, final)
                _fsync_dir(final.parent)
            return StoredArtifact(sha256=spooled.sha256, size=spooled.size, key=key)

    def deferred(self) -> DeferredPuts:
        """A scope whose puts are published and made durable together when it exits (see module doc)."""
        return DeferredPuts(self)

    def _publish(self, ready: Path, key: str, made: set[Path]) -> Path:
        """Move a verified, durable spool file under ``key`` (an existing object is kept).

        ``made``: the directories known to exist, shared by the calls of one scope (and added to).
        """
        final = self._root / key
        if final.exists():
            ready.unlink(missing_ok=True)
        else:
            if final.parent not in made:
                final.parent.mkdir(parents=True, exist_ok=True)
                made.add(final.parent)
            os.replace(ready, final)
        return final.parent

    def remove_spool(self, *, older_than: datetime) -> int:
        """Delete what writes left in ``.incoming`` before ``older_than`` (a process that crashed
        mid-write, or before its deferred puts were published); return how many files."""
        removed = 0
        cutoff = older_than.timestamp()
        for entry in os.scandir(self._incoming):
            try:
                old = entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff
            except FileNotFoundError:  # published or removed by its writer meanwhile
                continue
            if old:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    def stored_objects(self) -> Iterator[StoredObject]:
        """Yield every file under its key (``<root>/sha256/...``) with its modification time."""
        for directory, _dirs, files in os.walk(self._root / "sha256"):
            for name in files:
                if is_digest(name):
                    try:
                        modified = os.stat(os.path.join(directory, name)).st_mtime
                    except FileNotFoundError:  # deleted meanwhile
                        continue
                    yield StoredObject(name, datetime.fromtimestamp(modified, UTC))

    def exists(self, sha256: str) -> bool:
        """Return whether the artifact is stored."""
        return self.path_for(sha256).is_file()

    def open_chunks(self, sha256: str, *, chunk_size: int = 1 << 16) -> ChunkReader:
        """Stream the artifact's bytes (a closeable iterator); raises ``ArtifactNotFound`` at the call."""
        if chunk_size <= 0:
            raise ValueError(f"invalid chunk_size {chunk_size!r}: expected a positive number of bytes")
        path = self.path_for(sha256)
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None
        return ChunkReader(iter(lambda: file.read(chunk_size), b""), file.close)

    def stat(self, sha256: str) -> int:
        """Return the artifact's size in bytes; raises ``ArtifactNotFound``."""
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None

    def delete(self, sha256: str) -> None:
        """Remove the artifact if present. Empty fan-out directories are left in place."""
        self.path_for(sha256).unlink(missing_ok=True)

    def url_for(self, sha256: str, *, filename: str, expires: timedelta) -> str | None:
        """Return None: a directory has no presigned URLs; the server streams the file instead."""
        artifact_key(sha256)  # same validation as the other methods
        return None


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DeferredPuts:
    """Puts into a ``FileSystemStore`` whose durability is paid once, when the block exits.

    ``put_chunks`` verifies and writes into ``.incoming`` without ``fsync``. Every 32 MiB, a
    background step flushes the filesystem (``syncfs``), publishes the files spooled before it (moved
    under their keys) and flushes again, so that a killed sync leaves most of its downloads published
    (where ``syncfs`` is missing, only the exit publishes). Leaving the block normally does the same
    for the rest (``syncfs``, or an ``fsync`` per file where there is none); leaving it with an
    exception removes the files not yet published instead. Thread-safe: a batch's download threads
    share one scope.
    """

    def __init__(self, store: FileSystemStore) -> None:
        self._store = store
        self._ready: list[tuple[Path, str]] = []
        self._lock = threading.Lock()
        self._unflushed = 0  # bytes spooled since the last early flush was started
        self._flusher: threading.Thread | None = None

    def __enter__(self) -> DeferredPuts:
        return self

    def put_chunks(self, chunks: Iterable[bytes], *, sha256: str | None, size: int | None) -> StoredArtifact:
        """Verify and spool the stream; it is published when the block exits."""
        store = self._store
        with spool_chunks(
            chunks, sha256=sha256, size=size, max_size=store._max_size, fsync=False, directory=store._incoming
        ) as spooled:
            ready = spooled.path.with_name(f"ready-{spooled.path.name}")
            os.replace(spooled.path, ready)  # kept past the spool's own cleanup
        key = artifact_key(spooled.sha256)
        with self._lock:
            self._ready.append((ready, key))
            self._unflushed += spooled.size
            if self._unflushed >= _EARLY_FLUSH_BYTES and not (self._flusher and self._flusher.is_alive()):
                self._unflushed = 0
                self._flusher = threading.Thread(
                    target=self._flush_early, name="mirrorflow-flush", daemon=True
                )
                self._flusher.start()
        return StoredArtifact(sha256=spooled.sha256, size=spooled.size, key=key)

    def _flush_early(self) -> None:
        # A step: what was spooled before this flush is durable after it, and is published (and
        # the moves flushed) while the downloads go on. Errors are left to the flush at exit.
        with self._lock:
            step = list(self._ready)
        root = self._store.root
        with contextlib.suppress(OSError):
            if not step or not _syncfs(root):
                return
            made: set[Path] = set()
            for path, key in step:
                self._store._publish(path, key, made)
            _syncfs(root)
            with self._lock:
                published = {id(entry) for entry in step}
                self._ready = [entry for entry in self._ready if id(entry) not in published]

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        with self._lock:
            flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.join()  # before taking the list: a step may still be publishing from it
        with self._lock:
            ready, self._ready = self._ready, []
        if exc_type is not None:
            for path, _key in ready:
                path.unlink(missing_ok=True)
            return
        if not ready:
            return
        root = self._store.root
        try:
            if not _syncfs(root):
                for path, _key in ready:
                    _fsync_path(path)
            made: set[Path] = set()
            directories = {self._store._publish(path, key, made) for path, key in ready}
        except BaseException:
            for path, _key in ready:
                path.unlink(missing_ok=True)
            raise
        if not _syncfs(root):
            for directory in directories:
                _fsync_dir(directory)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)`` through ctypes, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return cast(Callable[[int], int], libc.syncfs)
    except (OSError, AttributeError):
        return None


def _syncfs(directory: Path) -> bool:
    """Flush the whole filesystem holding ``directory``; False where ``syncfs`` is unavailable."""
    syncfs = _libc_syncfs()
    if syncfs is None:
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs: {os.strerror(errno)}", str(directory))
    finally:
        os.close(fd)
    return True
