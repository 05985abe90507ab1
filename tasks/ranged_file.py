"""A read-only, seekable file over a remote one, whose reads become range requests.

``zipfile.ZipFile(RangedFile(fetch, size, tail))`` reads a wheel's central directory and one member
without the rest of the file: ``zipfile`` seeks to the end records (zip64 included), then to the
directory, then to the member's local header, and each read outside what was fetched before becomes
one ``fetch(start, end)``. The caller's ``fetch`` does the HTTP (``mirrorflow.tasks.dist_metadata``).

Pure: imports only the standard library.
"""

from __future__ import annotations

import io
from collections.abc import Callable

__all__ = ["MIN_RANGE_BYTES", "RangedFile"]

#: Reads smaller than this are widened to it: ``zipfile``'s small reads of one header (and usually
#: the member after it) cost one range request, not one each.
MIN_RANGE_BYTES = 64 * 1024


class RangedFile(io.RawIOBase):
    """A read-only, seekable view of a remote file of ``size`` bytes whose reads become range requests.

    ``tail`` is the end of the file, already fetched. Fetched ranges are kept (for a wheel: its end
    records, directory and one member, about 75 bytes a member plus the METADATA), and a read outside
    them fetches at least ``MIN_RANGE_BYTES``, so ``zipfile``'s small reads of one header cost one request.

    >>> data = bytes(range(256)) * 1024
    >>> asked = []
    >>> def fetch(start, end):
    ...     asked.append((start, end))
    ...     return data[start:end]
    >>> remote = RangedFile(fetch, len(data), data[-16:])
    >>> _ = remote.seek(-16, io.SEEK_END)
    >>> remote.read() == data[-16:], asked  # the tail: no request
    (True, [])
    >>> _ = remote.seek(10)
    >>> remote.read(5) == data[10:15], remote.read(5) == data[15:20], asked
    (True, True, [(10, 65546)])
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, tail: bytes) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self._segments: list[tuple[int, bytes]] = [(size - len(tail), tail)] if tail else []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset} before the start of the file")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._get(self._pos, end)
        self._pos = end
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _get(self, start: int, end: int) -> bytes:
        for first, data in self._segments:
            if first <= start and end <= first + len(data):
                return data[start - first : end - first]
        fetch_end = min(self._size, max(end, start + MIN_RANGE_BYTES))
        data = self._fetch(start, fetch_end)
        self._segments.append((start, data))
        return data[: end - start]
