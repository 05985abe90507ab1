"""A remote's ``rate_limit``: the requests of one HTTP client start at least ``1 / rate`` seconds apart.

Pulp's remotes carry the same field ("limits requests per second"); 0 or unset means no limit.
Spacing the starts evenly (rather than letting ``rate`` requests out at once at the top of each
second) keeps an upstream from ever seeing more than ``rate`` requests in any one-second window.
The decision is ``next_start`` (pure); ``Throttle`` keeps the schedule for the threads that share
one client and sleeps until each request's turn. It is an httpx request hook
(``event_hooks={"request": [throttle]}``), so every request of the client waits its turn: project
pages, the listing, files, each retry and each redirect. The schedule is per client, hence per
process: a sync spread over several Dask worker processes lets each process ``rate`` requests a
second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Throttle", "next_start"]


def next_start(now: float, free_at: float, interval: float) -> tuple[float, float]:
    """Return when a request asked for at ``now`` may start, and when the request after it may.

    ``free_at`` is the earliest start the schedule allows; ``interval`` the spacing (``1 / rate``).

    >>> next_start(10.0, 0.0, 0.5)  # the schedule is free: start now
    (10.0, 10.5)
    >>> next_start(10.0, 10.5, 0.5)  # the previous request took the slot until 10.5
    (10.5, 11.0)
    """
    start = max(now, free_at)
    return start, start + interval


class Throttle:
    """At most ``rate`` request starts per second, evenly spaced, for every thread that calls it.

    ``clock`` and ``sleep`` are seams for tests.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"invalid rate_limit {rate!r}: expected requests per second above 0")
        self.rate = rate
        self.interval = 1.0 / rate
        self._free_at = float("-inf")
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def __repr__(self) -> str:
        return f"Throttle({self.rate!r})"

    def wait(self) -> float:
        """Take the next start in the schedule and sleep until it; return the seconds slept."""
        with self._lock:
            now = self._clock()
            start, self._free_at = next_start(now, self._free_at, self.interval)
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay

    def __call__(self, request: object) -> None:
        """The httpx request hook: wait for this request's turn."""
        self.wait()
