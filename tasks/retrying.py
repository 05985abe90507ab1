"""Retries with exponential backoff and full jitter, for transient I/O errors only.

A 404, a hash mismatch or a malformed page is never retried: retrying cannot fix it. An error
that carries a ``retry_after`` (an upstream's ``Retry-After`` on a 429 or 503, parsed by
``retry_after_seconds``) is retried no sooner than it asks, up to ``MAX_RETRY_AFTER``.

An error whose ``connection_lost`` is true (a reset HTTP/2 stream, a connection closed mid-answer,
a timeout: ``mirrorflow.tasks.index_client.TransientError`` with no status) waits longer: seconds,
not the fraction of a second a 503 gets. A caching front that resets a stream is seldom back
within a second, and four tries in 1.4 s failed a sync. Those waits double from
``connection_backoff`` with equal jitter (never less than half the step), and all of a call's
waits together stay under ``MAX_CONNECTION_WAIT``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

__all__ = [
    "CONNECTION_BACKOFF",
    "MAX_CONNECTION_WAIT",
    "MAX_RETRY_AFTER",
    "backoff_delays",
    "call_with_retries",
    "connection_delay",
    "retry_after_seconds",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: The longest wait a ``Retry-After`` gets (seconds): a sync's worker does not sleep for an hour.
MAX_RETRY_AFTER = 120.0
#: The first wait after a lost connection (seconds; doubled at each further try, up to ``_CAP``).
CONNECTION_BACKOFF = 2.0
#: The most that one call's waits after lost connections add up to (seconds).
MAX_CONNECTION_WAIT = 60.0
_CAP = 30.0


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


def connection_delay(tried: int, *, base: float, rng: random.Random) -> float:
    """Return the wait after the ``tried``-th try lost its connection: equal jitter over
    ``base * 2**(tried - 1)`` (capped at 30 s), so between half and all of it.

    >>> rng = random.Random(7)
    >>> [1.0 <= connection_delay(1, base=2.0, rng=rng) <= 2.0, 2.0 <= connection_delay(2, base=2.0, rng=rng) <= 4.0]
    [True, True]
    >>> 15.0 <= connection_delay(10, base=2.0, rng=rng) <= 30.0
    True
    """
    step = min(_CAP, base * 2.0 ** (tried - 1))
    return step / 2 + rng.uniform(0, step / 2)


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    transient: tuple[type[BaseException], ...],
    base_delay: float = 0.5,
    connection_backoff: float = CONNECTION_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on an exception of a ``transient`` type, wait and try again, ``attempts`` times in all.

    Returns what ``fn`` returns; raises the last transient error when every try failed, and any
    other error at once. A wait is at least the failed try's ``retry_after`` (capped at
    ``MAX_RETRY_AFTER``) when the error has one; after an error whose ``connection_lost`` is true
    it is ``connection_delay`` from ``connection_backoff``, and once those waits would pass
    ``MAX_CONNECTION_WAIT`` in all, the error is raised.
    """
    if attempts <= 1:
        return fn()
    try:
        return fn()  # the common case: no jittered delays to draw (a Random per call showed in profiles)
    except transient as exc:
        error: BaseException = exc
    rng = random.Random()
    waited_for_connections = 0.0
    for tried in range(1, attempts):
        if getattr(error, "connection_lost", False):
            wait = connection_delay(tried, base=connection_backoff, rng=rng)
            if waited_for_connections + wait > MAX_CONNECTION_WAIT:
                break
            waited_for_connections += wait
        else:
            wait = rng.uniform(0, min(_CAP, base_delay * 2.0 ** (tried - 1)))
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            wait = max(wait, min(float(asked), MAX_RETRY_AFTER))
        # a warning: a user sees retries (and the status in the error) in the run's logs
        log.warning("retrying in %.1f s (try %d of %d failed): %s", wait, tried, attempts, error)
        sleep(wait)
        try:
            return fn()
        except transient as exc:
            error = exc
    raise error
