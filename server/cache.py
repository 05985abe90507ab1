"""What the server keeps in memory so that a cached page costs no catalog query.

- ``RepositoryStates``: every repository's id, latest and oldest version, pull-through remote,
  blocklist and advisory prefixes and signal, read at most once per ``interval`` (the change
  signal; the app parses the blocking advisories again with it when their signal changed,
  ``mirrorflow.server.advisories``). A commit moves
  ``latest_version``; a request learns of it within the interval, without a restart.
- ``PageCache``: rendered responses keyed by ``(repository id, version, project, media type)``. A
  repository version never changes, so neither do its pages: entries never expire, and the latest
  version's pages are found under the new version's key once a commit moves it. The cache is an
  LRU bounded by bytes.
- ``CachedPage``: a response with its ETag and headers computed once, when it was rendered.

Not cached, because they change without a commit: a pull-through repository's latest listing and
the pages of projects pulled through. Also not re-rendered, on purpose: a page of a cached version
does not start advertising the core metadata of a wheel fetched on demand after it was rendered
(pip then reads the wheel itself); the next version's pages do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from mirrorflow.storage.records import RepositoryState

__all__ = ["CachedPage", "Lookups", "PageCache", "RepositoryStates"]

log = logging.getLogger("mirrorflow.server")

# What an entry costs besides its body: the key, the header list, the bookkeeping (measured
# roughly with tracemalloc; it only has to keep many tiny 404 entries from being free).
_OVERHEAD = 600


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A response as it is sent: status, body, the raw ASGI headers and the ETag (None: no 304s)."""

    status: int
    body: bytes
    raw_headers: list[tuple[bytes, bytes]]
    etag: str | None

    @property
    def cost(self) -> int:
        return len(self.body) + _OVERHEAD


class PageCache:
    """An LRU of ``CachedPage``s bounded by the bytes of their bodies (plus a small overhead each).

    Used from the event loop only (no lock). A page larger than the whole budget is not kept.

    >>> cache = PageCache(max_bytes=3000)
    >>> cache.put("a", CachedPage(200, b"x" * 500, [], None))
    >>> cache.put("b", CachedPage(200, b"y" * 500, [], None))
    >>> cache.get("a") is not None  # "a" is now the most recently used
    True
    >>> cache.put("c", CachedPage(200, b"z" * 500, [], None))  # evicts "b", the least recently used
    >>> sorted(cache.keys()), cache.size
    (['a', 'c'], 2200)
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()

    def get(self, key: Hashable) -> CachedPage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: Hashable, page: CachedPage) -> None:
        if page.cost > self.max_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self.size -= old.cost
        self._pages[key] = page
        self.size += page.cost
        while self.size > self.max_bytes:
            _, evicted = self._pages.popitem(last=False)
            self.size -= evicted.cost

    def keys(self) -> list[Hashable]:
        return list(self._pages)

    def __len__(self) -> int:
        return len(self._pages)


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Lookups(Generic[_K, _V]):
    """An LRU of small answers (None included) bounded by their number; ``get`` raises ``KeyError``.

    >>> found = Lookups[str, int | None](max_entries=2)
    >>> found.put("a", None); found.put("b", 2); found.put("c", 3)
    >>> found.get("c"), "a" in found.keys()
    (3, False)
    """

    def __init__(self, *, max_entries: int) -> None:
        self.max_entries = max_entries
        self._found: OrderedDict[_K, _V] = OrderedDict()

    def get(self, key: _K) -> _V:
        value = self._found[key]
        self._found.move_to_end(key)
        return value

    def put(self, key: _K, value: _V) -> None:
        self._found[key] = value
        self._found.move_to_end(key)
        if len(self._found) > self.max_entries:
            self._found.popitem(last=False)

    def pop(self, key: _K) -> None:
        self._found.pop(key, None)

    def keys(self) -> list[_K]:
        return list(self._found)


class RepositoryStates:
    """Every repository's state by name, re-read at most once per ``interval`` seconds.

    ``load`` reads all of them (one query; it runs in a worker thread through ``run``). Concurrent
    requests that find the snapshot stale wait for one read, not one each. When a re-read fails,
    the last snapshot is kept (pages keep being served while the catalog is down) and the failure is
    logged; the first read's failure is raised.
    """

    def __init__(
        self,
        load: Callable[[], Iterable[RepositoryState]],
        *,
        run: Callable[[Callable[[], list[RepositoryState]]], Awaitable[list[RepositoryState]]],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._run, self.interval, self._clock = load, run, interval, clock
        self._states: dict[str, RepositoryState] | None = None
        self._read_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.reads = 0

    async def get(self, name: str) -> RepositoryState | None:
        """The repository named ``name``, or None when there is none."""
        states = self._states
        if states is None or self._clock() - self._read_at >= self.interval:
            states = await self._refresh()
        return states.get(name)

    async def _refresh(self) -> dict[str, RepositoryState]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._states is not None and self._clock() - self._read_at < self.interval:
                return self._states  # another request read it while this one waited
            started = self._clock()
            try:
                rows = await self._run(lambda: list(self._load()))
            except Exception as exc:
                if self._states is None:
                    raise
                log.warning("re-reading the repositories failed; serving what was read before: %s", exc)
                self._read_at = started
                return self._states
            self.reads += 1
            self._states = {state.name: state for state in rows}
            self._read_at = started
            return self._states
