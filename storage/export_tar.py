"""Tar chunks written and read in large blocks, hashed as they stream (``mirrorflow.storage.export_format``).

Why not ``tarfile`` for the artifacts: it copies through 16 KiB buffers when writing and reads a
stream in 10 KiB records, and profiling an export of 200 MB spent most of its time there
(``docs/airgap.md``). The format is plain ustar all the same: ``tarfile`` builds and checks each
512-byte header (``TarInfo.tobuf`` / ``TarInfo.frombuf``), this module moves the data in 1 MiB
blocks, and any tar reads the result.

Every block goes through two sha256s (the chunk's, and the artifact's own verification). Hashing
the chunk on a helper thread was tried: on the shared two-core machine the benchmark ran on it
was no faster (and sometimes slower) than hashing in line, so it is in line.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol

from mirrorflow.storage.export_format import CorruptChunk, InvalidExport

__all__ = ["BLOCK", "ChunkWriter", "member_header", "read_members"]

#: Bytes moved per read and write: large enough that per-call costs vanish, small enough to bound memory.
BLOCK = 1 << 20
_HEADER = tarfile.BLOCKSIZE  # 512
_RECORD = tarfile.RECORDSIZE  # 10240: tar pads the archive's end to a whole record


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def member_header(name: str, size: int) -> bytes:
    """The ustar header of a regular file: fixed mode, owner and time, so a chunk's bytes depend
    only on its content (which is what lets a rerun of an export find its chunks unchanged)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


class ChunkWriter:
    """Writes one tar chunk to ``raw``, hashing and counting every byte (``sha256``, ``size``)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._digest = raw, hashlib.sha256()
        self.size = 0

    def _write(self, data: bytes) -> None:
        self._raw.write(data)
        self._digest.update(data)
        self.size += len(data)

    def add(self, name: str, size: int, blocks: Iterable[bytes]) -> None:
        """Add a member of ``size`` bytes. ``blocks`` must yield exactly that many: the caller
        checks (and raises) before yielding more, and ``ValueError`` here catches a short one."""
        self._write(member_header(name, size))
        written = 0
        for block in blocks:
            written += len(block)
            if written > size:
                raise ValueError(f"member {name!r} is longer than its header's {size} bytes")
            self._write(block)
        if written != size:
            raise ValueError(f"member {name!r} has {written} bytes, its header says {size}")
        if size % _HEADER:
            self._write(bytes(_HEADER - size % _HEADER))

    def close(self) -> None:
        """End the archive: two zero blocks, then zeros to a whole record (as ``tarfile`` does)."""
        end = 2 * _HEADER
        self._write(bytes(end + (-(self.size + end) % _RECORD)))

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def read_members(
    handle: IO[bytes], chunk: str, digest: Hash, progress: Callable[[int], None] | None = None
) -> Iterator[tuple[str, int, Iterator[bytes]]]:
    """The members of the chunk read from ``handle``: ``(name, size, blocks)``, every byte hashed.

    Each ``blocks`` must be consumed before the next member is asked for (what is left of it is
    read and hashed then). After the last member, the rest of the file (the end-of-archive
    blocks) is read and hashed too, so ``digest`` then covers the whole chunk, for the caller to
    compare with the TOC. Raises ``CorruptChunk`` for a damaged header or a truncated member, and
    ``InvalidExport`` for a member that is not a regular file.
    """

    def read(n: int) -> bytes:
        data = handle.read(n)
        if data:
            digest.update(data)
            if progress is not None:
                progress(len(data))
        return data

    while True:
        header = read(_HEADER)
        if len(header) < _HEADER:
            raise CorruptChunk(chunk, "ends inside a tar header (truncated)")
        if header == bytes(_HEADER):
            break  # the end-of-archive marker
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
        except tarfile.HeaderError as exc:
            raise CorruptChunk(chunk, f"has a damaged tar header ({exc})") from None
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise InvalidExport(chunk, "member", info.name, "is not a regular file")
        left = [info.size]

        def blocks(left: list[int] = left, name: str = info.name) -> Iterator[bytes]:
            while left[0] > 0:
                block = read(min(BLOCK, left[0]))
                if not block:
                    raise CorruptChunk(chunk, f"ends inside member {name!r} (truncated)")
                left[0] -= len(block)
                yield block

        yield info.name, info.size, blocks()
        for _ in blocks():  # whatever the caller did not read
            pass
        padding = -info.size % _HEADER
        if padding and len(read(padding)) != padding:
            raise CorruptChunk(chunk, "ends inside a member's padding (truncated)")
    while read(BLOCK):  # the rest of the end-of-archive record, hashed with the rest
        pass
