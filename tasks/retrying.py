"""Retries with exponential backoff and full jitter, for transient I/O errors only.

A 404, a hash mismatch or a malformed page is never retried: retrying cannot fix it. An error
that carries a ``retry_after`` (an upstream's ``Retry-After`` on a 429 or 503, parsed by
``retry_after_seconds``) is retried no sooner than it asks, up to ``MAX_RETRY_AFTER``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = ["MAX_RETRY_AFTER", "backoff_delays", "call_with_retries", "retry_after_seconds"]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: The longest wait a ``Retry-After`` gets (seconds): a sync's worker does not sleep for an hour.
MAX_RETRY_AFTER = 120.0


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (RFC 9110: seconds or an HTTP date),
    or None when there is none or it cannot be read.

    >>> from datetime import UTC
    >>> now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    >>> retry_after_seconds("30", now=now), retry_after_seconds("Wed, 02 Dec 2026 12:01:00 GMT", now=now)
    (30.0, 60.0)
    >>> retry_after_seconds("soon", now=now), retry_after_seconds("-5", now=now), retry_after_seconds(None, now=now)
    (None, None, None)
    >>> retry_after_seconds("Wed, 02 Dec 2026 11:00:00 GMT", now=now)  # a date gone by: no wait
    0.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, (when - now).total_seconds())


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
    other error at once. A wait is at least the failed try's ``retry_after`` (capped at
    ``MAX_RETRY_AFTER``) when the error has one.
    """
    if attempts <= 1:
        return fn()
    try:
        return fn()  # the common case: no jittered delays to draw (a Random per call showed in profiles)
    except transient as exc:
        error: BaseException = exc
    for tried, delay in enumerate(backoff_delays(attempts, base=base_delay), start=1):
        asked = getattr(error, "retry_after", None)
        wait = delay if asked is None else max(delay, min(float(asked), MAX_RETRY_AFTER))
        # a warning: a user sees retries (and the status in the error) in the run's logs
        log.warning("retrying in %.1f s (try %d of %d failed): %s", wait, tried, attempts, error)
        sleep(wait)
        try:
            return fn()
        except transient as exc:
            error = exc
    raise error
