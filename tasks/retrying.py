"""Retries with exponential backoff and full jitter, for transient I/O errors only.

A 404, a hash mismatch or a malformed page is never retried: retrying cannot fix it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["backoff_delays", "call_with_retries"]

T = TypeVar("T")


def backoff_delays(
    attempts: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> list[float]:
    """Return the sleeps between ``attempts`` tries: full jitter over ``base * 2**n``, capped.

    >>> len(backoff_delays(4))
    3
    >>> all(0 <= d <= 0.5 * 2**n for n, d in enumerate(backoff_delays(4)))
    True
    """
    rng = rng or random.Random()
    return [rng.uniform(0, min(cap, base * 2**n)) for n in range(max(attempts - 1, 0))]


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    transient: tuple[type[BaseException], ...],
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on an exception of a ``transient`` type, wait and try again, ``attempts`` times in all.

    Returns what ``fn`` returns; raises the last transient error when every try failed, and any
    other error at once.
    """
    if attempts <= 1:
        return fn()
    try:
        return fn()  # the common case: no jittered delays to draw (a Random per call showed in profiles)
    except transient:
        pass
    delays = backoff_delays(attempts, base=base_delay)
    sleep(delays[0])
    for delay in delays[1:]:
        try:
            return fn()
        except transient:
            sleep(delay)
    return fn()
