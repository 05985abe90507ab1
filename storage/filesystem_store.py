"""``FileSystemStore``: the artifact store port on a local directory.

Layout under ``root``::

    <root>/.incoming/spool-<random>     streams being written (never read by anyone else)
    <root>/sha256/ab/cd/<sha256>        published artifacts, see ``artifacts.artifact_key``

A write is spooled into ``.incoming`` (same filesystem as the final key), verified, fsynced and then
moved with ``os.replace``, which is atomic on POSIX: a reader sees the whole file under its key or
nothing, never a partial file. Errors are those of ``storage.artifacts``; a missing file becomes
``ArtifactNotFound``. Other ``OSError``s (disk full, permissions) propagate unchanged: they are not
transient and need an operator.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from storage.artifacts import (
    ArtifactNotFound,
    ChunkReader,
    StoredArtifact,
    artifact_key,
    spool_chunks,
)

__all__ = ["FileSystemStore"]

_INCOMING = ".incoming"


class FileSystemStore:
    """Artifacts stored as files under ``root``; implements ``storage.artifacts.ArtifactStore``.

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
