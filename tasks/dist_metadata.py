"""The metadata source of the dependency closure (issue 19): a distribution file's ``Requires-Dist``,
read the cheapest way the upstream allows, and never guessed by running a build.

In order, for one file:

1. the cache (``mirrorflow.storage.dependency_cache``), by the file's sha256: no request at all;
2. the index's PEP 658 / 714 ``<file>.metadata``, checked against its sha256 when the page gave one;
3. a wheel's ``METADATA`` read with HTTP range requests: the zip's end records and central directory
   (one request for the last ``tail_bytes``, a second when the directory is longer) and the member
   itself; ``zipfile`` does the reading (zip64 included) over a file object whose reads become ranges;
4. the whole wheel, when the server ignores ``Range`` (answers 200: that body is the download) or a
   ranged read fails; streamed to a spooled temporary file, at most ``max_download_bytes``, and
   checked against the file's sha256;
5. an sdist's ``<name>-<version>/PKG-INFO`` (``.tar.gz`` or ``.zip``, downloaded the same way), when its
   ``Metadata-Version`` is 2.2 or later and ``Requires-Dist`` is not ``Dynamic``;

else "dependencies unknown" with a one-line reason. Parsing is pure (``mirrorflow.tasks.requires_dist``).

What is cached: every answer that the file's bytes settle (known dependencies; an sdist whose
metadata is dynamic or too old; a verified file that holds no metadata). Not cached, so that a
resync tries again: answers caused by the network or the upstream (an error status, a transient
failure after ``attempts`` tries, a digest mismatch, a file over the size cap).

Errors: ``read`` raises none of its own for a file; every failure becomes an unknown answer with its
reason. Errors of the cache (the catalog) propagate.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Protocol

import httpx
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from mirrorflow.storage.dependency_cache import CachedDependencies
from mirrorflow.tasks.core_metadata import MAX_METADATA_BYTES, WheelMetadataError, metadata_from_zip
from mirrorflow.tasks.distributions import DistFile, is_sha256
from mirrorflow.tasks.index_client import IndexClient, IndexClientError, TransientError, UpstreamError
from mirrorflow.tasks.ranged_file import RangedFile
from mirrorflow.tasks.requires_dist import (
    DependencySource,
    DistDependencies,
    dependencies_from_metadata,
    dependencies_from_pkg_info,
    unknown,
)
from mirrorflow.tasks.retrying import call_with_retries

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_TAIL_BYTES",
    "DependencyCache",
    "DependencyReader",
    "DependencySource",
    "DistDependencies",
    "ReadStats",
    "metadata_url_of",
]

#: The largest file downloaded whole to read its metadata (a wheel without range support, an sdist).
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
#: The first ranged read: the end of the wheel, where the end records and (usually) the directory are.
DEFAULT_TAIL_BYTES = 64 * 1024
#: Spooled downloads stay in memory up to this size, then go to a temporary file.
_SPOOL_MEMORY = 8 * 1024 * 1024


class DependencyCache(Protocol):
    """Where answers are kept by file sha256 (``mirrorflow.storage.dependency_cache.DependencyStore``)."""

    def get_many(self, digests: Iterable[str]) -> Mapping[str, CachedDependencies]: ...

    def put_many(self, answers: Mapping[str, CachedDependencies]) -> None: ...


class ReadStats:
    """What a reader fetched: requests sent and body bytes received (the benchmark prints them).
    Counted under a lock: one reader serves a stage's worker threads."""

    __slots__ = ("requests", "bytes_received", "_lock")

    def __init__(self) -> None:
        self.requests = 0
        self.bytes_received = 0
        self._lock = threading.Lock()

    def count(self, *, requests: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_received += received


def metadata_url_of(dist: DistFile) -> str | None:
    """The URL of ``dist``'s PEP 658 metadata file, or None when the index did not offer one.

    >>> metadata_url_of(DistFile("a-1-py3-none-any.whl", "https://index.example/f/a-1-py3-none-any.whl", None))
    >>> metadata_url_of(DistFile("a.whl", "https://index.example/f/a.whl", None, core_metadata=True))
    'https://index.example/f/a.whl.metadata'
    """
    return f"{dist.url}.metadata" if dist.core_metadata else None


class _Unsettled(Exception):
    """An answer the file's bytes did not settle (network, upstream, digest, size): not cached."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _NoRanges(Exception):
    """The server did not answer a range request with the range: read the whole file instead."""


#: Builds a reader's client and cache in the process that received it (``DependencyReader.received``).
Connect = Callable[[], tuple[httpx.Client, "DependencyCache | None"]]


class DependencyReader:
    """Reads distribution files' dependencies through ``client`` (the caller owns and closes it).

    ``cache`` keeps answers by file sha256 (None: nothing kept). ``index_url``: the index whose
    origin may receive the client's credentials (as ``IndexClient``); files elsewhere are fetched
    without them, and with no ``index_url`` no file request carries them. ``attempts``: tries per
    request on transient errors. ``stats`` counts what it fetched. One reader may be shared by
    threads (as the client is).

    ``connect``: how another process gets a client and a cache of its own (a picklable callable,
    such as ``mirrorflow.tasks.clients.reader_connection`` bound to a sync's key). With it, the reader
    pickles as ``connect`` and its settings, and the copy a process receives (a Dask worker) calls
    ``connect`` on its first read, in that process: a live client never crosses processes. Without
    it, pickling raises ``TypeError``.
    """

    def __init__(
        self,
        client: httpx.Client | None,
        cache: DependencyCache | None = None,
        *,
        index_url: str | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        attempts: int = 3,
        use_ranges: bool = True,
        connect: Connect | None = None,
    ) -> None:
        if client is None and connect is None:
            raise TypeError("DependencyReader: give a client, or connect to build one on first use")
        self._index_url = index_url
        self._files = IndexClient(index_url or "", client=client) if client is not None else None
        self._cache = cache
        self._connect = connect
        self._connect_lock = threading.Lock()
        self.max_download_bytes = max_download_bytes
        self.tail_bytes = tail_bytes
        self.attempts = attempts
        self.use_ranges = use_ranges
        self.stats = ReadStats()

    def __reduce__(self) -> tuple[Callable[..., DependencyReader], tuple[object, ...]]:
        if self._connect is None:
            raise TypeError("a DependencyReader without connect cannot be sent to another process")
        settings = (self._index_url, self.max_download_bytes, self.tail_bytes, self.attempts, self.use_ranges)
        return (_received_reader, (self._connect, *settings))

    def _ready(self) -> IndexClient:
        """The file client; a received reader builds it (and its cache) with ``connect`` on first use."""
        if self._files is None:
            with self._connect_lock:
                if self._files is None:
                    if self._connect is None:  # __init__ holds a client or connect: a bug
                        raise TypeError("a DependencyReader needs a client or connect")
                    client, self._cache = self._connect()
                    self._files = IndexClient(self._index_url or "", client=client)
        return self._files

    def read(
        self,
        *,
        filename: str,
        url: str,
        sha256: str | None,
        metadata_url: str | None,
        metadata_sha256: str | None = None,
    ) -> DistDependencies:
        """Return the dependencies of the file ``filename`` at ``url`` (see the module docstring).

        ``sha256``: the file's digest (the cache key, and checked on a whole download); None (or not a
        hex sha256): nothing cached.
        ``metadata_url`` / ``metadata_sha256``: its PEP 658 metadata file and that file's digest.
        """
        self._ready()
        sha256 = sha256.lower() if sha256 is not None else None
        metadata_sha256 = metadata_sha256.lower() if metadata_sha256 is not None else None
        key = sha256 if sha256 is not None and is_sha256(sha256) and self._cache is not None else None
        if key is not None and self._cache is not None:
            hit = self._cache.get_many([key]).get(key)
            if hit is not None:
                return _from_cache(hit)
        answer, settled = self._read_upstream(filename, url, sha256, metadata_url, metadata_sha256)
        if settled and key is not None and self._cache is not None:
            self._cache.put_many({key: _to_cache(answer)})
        return answer

    def read_many(self, files: Sequence[DistFile]) -> list[DistDependencies]:
        """Return the dependencies of each of ``files``, in order: one cache read for all of them,
        then the upstream for the others, then one cache write."""
        self._ready()
        digests = [f.sha256 for f in files if f.sha256 is not None]
        hits = dict(self._cache.get_many(digests)) if self._cache is not None and digests else {}
        answers: list[DistDependencies] = []
        fresh: dict[str, CachedDependencies] = {}
        for dist in files:
            if dist.sha256 is not None and dist.sha256 in hits:
                answers.append(_from_cache(hits[dist.sha256]))
                continue
            if dist.sha256 is not None and dist.sha256 in fresh:  # the same file listed twice
                answers.append(_from_cache(fresh[dist.sha256]))
                continue
            answer, settled = self._read_upstream(
                dist.filename, dist.url, dist.sha256, metadata_url_of(dist), dist.core_metadata_sha256
            )
            answers.append(answer)
            if settled and dist.sha256 is not None:
                fresh[dist.sha256] = _to_cache(answer)
        if fresh and self._cache is not None:
            self._cache.put_many(fresh)
        return answers

    # -- the upstream, cheapest first -------------------------------------------------------------

    def _read_upstream(
        self,
        filename: str,
        url: str,
        sha256: str | None,
        metadata_url: str | None,
        metadata_sha256: str | None,
    ) -> tuple[DistDependencies, bool]:
        """Return the answer and whether the file's bytes settle it (then it is cached)."""
        kind = _kind(filename)
        if kind is None:
            return unknown(f"{filename!r} is neither a wheel nor a .tar.gz / .zip sdist"), False
        tried = ""
        if metadata_url is not None:
            try:
                data = self._fetch_small(metadata_url)
            except _Unsettled as exc:
                tried = f"metadata file: {exc.reason}; "  # a listed but missing .metadata: the file itself
            else:
                if metadata_sha256 is not None and hashlib.sha256(data).hexdigest() != metadata_sha256:
                    return unknown(f"metadata file {metadata_url!r} does not match its sha256"), False
                if kind == "sdist":
                    return dependencies_from_pkg_info(data), True
                return dependencies_from_metadata(data, source=DependencySource.METADATA_FILE), True
        try:
            if kind == "wheel":
                return self._read_wheel(filename, url, sha256), True
            return self._read_sdist(filename, url, sha256), True
        except _Unsettled as exc:
            return unknown(f"{tried}{exc.reason}"), False

    def _read_wheel(self, filename: str, url: str, sha256: str | None) -> DistDependencies:
        if self.use_ranges:
            try:
                return self._with_retries(lambda: self._read_wheel_ranges(filename, url, sha256))
            except _NoRanges:
                pass
        with self._download(url, sha256) as spool:
            return _wheel_dependencies(spool, filename, DependencySource.WHEEL_DOWNLOAD)

    def _read_wheel_ranges(self, filename: str, url: str, sha256: str | None) -> DistDependencies:
        """Read METADATA by ranges; the whole wheel instead when the server answers 200 (it ignored
        ``Range``: that body is the download). Raises ``_NoRanges`` when a ranged read goes wrong."""
        with self._stream(url, {"Range": f"bytes=-{self.tail_bytes}"}) as response:
            total = _content_range_total(response) if response.status_code == 206 else None
            if response.status_code != 206:
                with _spool_file() as spool:
                    self._fill(spool, response, url, sha256)
                    return _wheel_dependencies(spool, filename, DependencySource.WHEEL_DOWNLOAD)
            if total is None:
                raise _NoRanges
            tail = self._body(response, limit=self.tail_bytes, url=url)
        ranged = RangedFile(lambda start, end: self._range(url, start, end), total, tail)
        try:
            with zipfile.ZipFile(ranged) as wheel:
                member = next((i for i in wheel.infolist() if _is_metadata(i.filename)), None)
                if member is not None and member.compress_size > MAX_METADATA_BYTES:
                    return unknown(f"{filename!r}: METADATA larger than {MAX_METADATA_BYTES} bytes")
                data = metadata_from_zip(wheel, filename=filename)
        except (zipfile.BadZipFile, WheelMetadataError, zlib.error, EOFError) as exc:
            # Unverified bytes: a broken wheel is judged on the whole, checked download instead.
            raise _NoRanges from exc
        return dependencies_from_metadata(data, source=DependencySource.WHEEL_RANGE)

    def _range(self, url: str, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of ``url``; raises ``_NoRanges`` unless the server sends exactly them."""
        with self._stream(url, {"Range": f"bytes={start}-{end - 1}"}) as response:
            if response.status_code != 206 or not response.headers.get("Content-Range", "").startswith(
                f"bytes {start}-{end - 1}/"
            ):
                raise _NoRanges
            data = self._body(response, limit=end - start, url=url)
        if len(data) != end - start:
            raise _NoRanges
        return data

    def _read_sdist(self, filename: str, url: str, sha256: str | None) -> DistDependencies:
        with self._download(url, sha256) as spool:
            try:
                data = _pkg_info(spool, filename)
            except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                return unknown(f"{filename!r} cannot be read as an sdist ({type(exc).__name__}: {exc})")
        if data is None:
            return unknown(f"{filename!r} has no single <name>-<version>/PKG-INFO")
        return dependencies_from_pkg_info(data)

    # -- HTTP -------------------------------------------------------------------------------------

    @contextmanager
    def _stream(self, url: str, headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
        """One request; an error status or a network failure becomes ``_Unsettled`` (transient ones
        are retried by ``_with_retries`` around the whole read first)."""
        self.stats.count(requests=1)
        try:
            with self._ready().stream_file(url, headers=headers) as response:
                yield response
        except TransientError:
            raise
        except UpstreamError as exc:
            if exc.status == 416 and headers and "Range" in headers:  # a server refusing this range form
                raise _NoRanges from exc
            raise _Unsettled(str(exc)) from exc
        except IndexClientError as exc:
            raise _Unsettled(str(exc)) from exc

    def _with_retries(self, read: Callable[[], DistDependencies]) -> DistDependencies:
        try:
            return call_with_retries(read, attempts=self.attempts, transient=(TransientError,))
        except TransientError as exc:
            raise _Unsettled(str(exc)) from exc

    def _fetch_small(self, url: str) -> bytes:
        def fetch() -> bytes:
            with self._stream(url) as response:
                return self._body(response, limit=MAX_METADATA_BYTES, url=url, refuse_longer=True)

        try:
            return call_with_retries(fetch, attempts=self.attempts, transient=(TransientError,))
        except TransientError as exc:
            raise _Unsettled(str(exc)) from exc

    def _body(self, response: httpx.Response, *, limit: int, url: str, refuse_longer: bool = False) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            self.stats.count(received=len(chunk))
            if size > limit:
                if refuse_longer:
                    raise _Unsettled(f"{url!r} is larger than {limit} bytes")
                raise _NoRanges  # a server sending more than the range asked for
            chunks.append(chunk)
        return b"".join(chunks)

    @contextmanager
    def _download(self, url: str, sha256: str | None) -> Iterator[IO[bytes]]:
        """The whole file at ``url``, spooled and checked against ``sha256``; retried when transient."""
        with _spool_file() as spool:

            def fetch() -> None:
                spool.seek(0)
                spool.truncate()
                with self._stream(url) as response:
                    self._fill(spool, response, url, sha256)

            try:
                call_with_retries(fetch, attempts=self.attempts, transient=(TransientError,))
            except TransientError as exc:
                raise _Unsettled(str(exc)) from exc
            yield spool

    def _fill(self, spool: IO[bytes], response: httpx.Response, url: str, sha256: str | None) -> None:
        """Write ``response``'s body (at most ``max_download_bytes``) to ``spool``, check its sha256,
        and rewind ``spool``. Raises ``_Unsettled`` over the cap or on a digest mismatch."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_download_bytes:
            raise _Unsettled(f"{url!r} is larger than the {self.max_download_bytes}-byte download cap")
        digest = hashlib.sha256()
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            self.stats.count(received=len(chunk))
            if size > self.max_download_bytes:
                raise _Unsettled(f"{url!r} is larger than the {self.max_download_bytes}-byte download cap")
            digest.update(chunk)
            spool.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise _Unsettled(f"{url!r} does not match its sha256 (got {digest.hexdigest()!r})")
        spool.seek(0)


def _received_reader(
    connect: Connect,
    index_url: str | None,
    max_download_bytes: int,
    tail_bytes: int,
    attempts: int,
    use_ranges: bool,
) -> DependencyReader:
    """Unpickling: a reader that builds nothing until its first read (``DependencyReader.__reduce__``)."""
    return DependencyReader(
        None,
        index_url=index_url,
        max_download_bytes=max_download_bytes,
        tail_bytes=tail_bytes,
        attempts=attempts,
        use_ranges=use_ranges,
        connect=connect,
    )


def _spool_file() -> IO[bytes]:
    """A temporary file that stays in memory up to ``_SPOOL_MEMORY`` bytes."""
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY, prefix="mirrorflow-dist-")


def _kind(filename: str) -> str | None:
    """``"wheel"``, ``"sdist"`` (``.tar.gz`` or ``.zip``), or None for any other file."""
    try:
        parse_wheel_filename(filename)
        return "wheel"
    except InvalidWheelFilename:
        pass
    try:
        parse_sdist_filename(filename)
        return "sdist"
    except InvalidSdistFilename:
        return None


def _is_metadata(name: str) -> bool:
    return name.count("/") == 1 and name.endswith(".dist-info/METADATA")


def _content_range_total(response: httpx.Response) -> int | None:
    """The file's size from ``Content-Range: bytes a-b/total``, or None when not given."""
    value = response.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    total = rest.rpartition("/")[2]
    return int(total) if unit == "bytes" and total.isdigit() else None


def _wheel_dependencies(spool: IO[bytes], filename: str, source: DependencySource) -> DistDependencies:
    try:
        with zipfile.ZipFile(spool) as wheel:
            data = metadata_from_zip(wheel, filename=filename)
    except WheelMetadataError as exc:
        return unknown(str(exc))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return unknown(f"{filename!r} is not a readable zip file ({exc})")
    return dependencies_from_metadata(data, source=source)


def _pkg_info(spool: IO[bytes], filename: str) -> bytes | None:
    """The sdist's top-level ``<dir>/PKG-INFO`` (nothing else is read), or None when it has no single one."""
    if filename.lower().endswith(".zip"):
        with zipfile.ZipFile(spool) as archive:
            names = [n for n in archive.namelist() if _is_pkg_info(n)]
            if len(names) != 1:
                return None
            with archive.open(names[0]) as member:
                return member.read(MAX_METADATA_BYTES)
    with tarfile.open(fileobj=spool, mode="r:gz") as archive:
        # Members one by one, stopping at PKG-INFO (near the start): never the whole listing.
        for entry in iter(archive.next, None):
            if _is_pkg_info(entry.name):
                if not entry.isfile():
                    return None
                extracted = archive.extractfile(entry)
                return None if extracted is None else extracted.read(MAX_METADATA_BYTES)
    return None


def _is_pkg_info(name: str) -> bool:
    name = name.removeprefix("./")
    return name.count("/") == 1 and name.endswith("/PKG-INFO") and not name.startswith("/")


def _from_cache(hit: CachedDependencies) -> DistDependencies:
    return DistDependencies(hit.requires_dist, DependencySource.CACHE.value, hit.reason)


def _to_cache(answer: DistDependencies) -> CachedDependencies:
    return CachedDependencies(answer.requires_dist, answer.source, answer.reason)
