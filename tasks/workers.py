"""The fetch workers of a sync: one shared thread pool per concurrency, its items pulled one by one,
and a ``Pacer`` that decides how many of them may run at once.

Where the upstream is far (tens of milliseconds a request), the workers wait on the network and
``download_concurrency`` of them overlap those waits. Where it is near (a mirror on the same LAN,
loopback), the work is CPU-bound in one interpreter: more threads then only trade the GIL at every
socket call, and that costs CPU. Measured on 3,000 pages of the benchmark's index: a batch of
pages costs 2.7-3.5 ms of CPU per project with 2 workers and 3.8-4.4 ms with 10. The pacer
watches the process's CPU use and lets fewer workers run while it is near a core, and more again
(up to the remote's concurrency) when it falls; the decision itself is ``next_limit``, a pure
function.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar, cast

__all__ = ["Pacer", "next_limit", "pulled", "shared_pool"]

T = TypeVar("T")
R = TypeVar("R")

#: CPU use (in cores, this process) at or above which one fewer worker may run in the next window.
BUSY = 0.9
#: CPU use below which one more worker may run (up to the concurrency).
IDLE = 0.7
#: The fewest workers the pacer lowers to (or the concurrency, when that is smaller).
FLOOR = 2


def next_limit(limit: int, cores: float, *, ceiling: int, floor: int = FLOOR) -> int:
    """Return how many workers may run in the next window, given ``limit`` and the CPU the process
    used in this one (``cores``: CPU seconds per wall second).

    >>> next_limit(10, 0.97, ceiling=10), next_limit(2, 0.97, ceiling=10), next_limit(3, 0.4, ceiling=10)
    (9, 2, 4)
    >>> next_limit(10, 0.4, ceiling=10), next_limit(5, 0.8, ceiling=10), next_limit(1, 0.97, ceiling=1)
    (10, 5, 1)
    """
    floor = min(floor, ceiling)
    if cores >= BUSY:
        return max(floor, limit - 1)
    if cores < IDLE:
        return min(ceiling, limit + 1)
    return max(floor, min(limit, ceiling))


class Pacer:
    """Lets at most ``limit`` callers hold a slot at once; ``limit`` starts at ``ceiling`` and moves
    by ``next_limit`` once per ``window`` seconds (checked when a slot is released).

    ``clock`` and ``cpu`` are seams for tests (wall seconds, and this process's CPU seconds).
    """

    def __init__(
        self,
        ceiling: int,
        *,
        window: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        if ceiling < 1:
            raise ValueError(f"invalid ceiling {ceiling!r}: expected at least 1 worker")
        self.ceiling = self.limit = ceiling
        self._running = 0
        self._changed = threading.Condition()
        self._window, self._clock, self._cpu = window, clock, cpu
        self._since, self._cpu_since = clock(), cpu()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the ``limit`` slots for the block (waiting for one to be free)."""
        with self._changed:
            while self._running >= self.limit:
                self._changed.wait()
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._pace()
                # Wake only as many waiters as there are free slots: waking them all at every
                # release would have each take the GIL just to wait again.
                free = self.limit - self._running
                if free > 0:
                    self._changed.notify(free)

    def _pace(self) -> None:
        now = self._clock()
        elapsed = now - self._since
        if elapsed < self._window:
            return
        cpu = self._cpu()
        self.limit = next_limit(self.limit, (cpu - self._cpu_since) / elapsed, ceiling=self.ceiling)
        self._since, self._cpu_since = now, cpu


_pools: dict[int, tuple[ThreadPoolExecutor, Pacer]] = {}
_pools_lock = threading.Lock()
# A forked child inherits the dict but not the threads: it must build its own pools.
os.register_at_fork(after_in_child=_pools.clear)


def shared_pool(concurrency: int) -> tuple[ThreadPoolExecutor, Pacer]:
    """One fetch pool and its pacer per process and concurrency, shared by the batches that run at once.

    Batches run side by side (the flow's task runner); a pool each would multiply the threads
    that contend for the GIL by the number of task workers, while the HTTP pool lets only
    ``concurrency`` requests out at a time anyway. Its threads idle between syncs.
    """
    with _pools_lock:
        entry = _pools.get(concurrency)
        if entry is None:
            pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mirrorflow-fetch")
            entry = _pools[concurrency] = (pool, Pacer(concurrency))
        return entry


def pulled(
    pool: ThreadPoolExecutor,
    workers: int,
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    pacer: Pacer | None = None,
) -> list[R]:
    """``[fn(item) for item in items]`` run by ``workers`` tasks of ``pool`` that pull the next item,
    each item inside one of ``pacer``'s slots when a pacer is given.

    Like ``pool.map`` without a future (a lock and a condition) per item: a whole-index sync maps
    hundreds of thousands of projects, and that bookkeeping showed in its profile. An exception
    from ``fn`` stops the workers after their current items; once they all stopped, it propagates
    (so that nothing of the batch still runs when the caller moves on).
    """
    results: list[R | None] = [None] * len(items)
    pending = iter(range(len(items)))
    lock = threading.Lock()
    failed = threading.Event()

    def run(index: int) -> None:
        if pacer is None:
            results[index] = fn(items[index])
        else:
            with pacer.slot():
                results[index] = fn(items[index])

    def work() -> None:
        while not failed.is_set():
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                run(index)
            except BaseException:
                failed.set()
                raise

    # Each worker runs in a copy of the caller's context: the run the caller belongs to (Prefect's
    # run context) is what sends the steps' warnings to that run's logs (mirrorflow.flows.logs).
    futures = [
        pool.submit(contextvars.copy_context().run, work) for _ in range(max(1, min(workers, len(items))))
    ]
    wait(futures)
    for future in futures:
        future.result()  # raises the first worker's error
    return cast(list[R], results)
