"""``mirrorflow.tasks.retrying.call_with_retries``: how many tries and waits, and what is never retried."""

from __future__ import annotations

import doctest

import httpx
import pytest

import mirrorflow.tasks.retrying
from mirrorflow.tasks.retrying import MAX_RETRY_AFTER, call_with_retries


@pytest.mark.parametrize("attempts", [1, 2, 3, 5])
def test_a_transient_error_is_tried_attempts_times_with_a_wait_between(attempts):
    calls, waits = [], []

    def always_fails():
        calls.append(1)
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        call_with_retries(always_fails, attempts=attempts, transient=(ConnectionError,), sleep=waits.append)
    assert (len(calls), len(waits)) == (attempts, attempts - 1)
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(waits))


def test_a_success_after_a_failure_returns_and_waits_once():
    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return "page"

    assert call_with_retries(flaky, attempts=3, transient=(ConnectionError,), sleep=waits.append) == "page"
    assert (len(calls), len(waits)) == (2, 1)


def test_other_errors_are_raised_at_once():
    calls = []

    def not_found():
        calls.append(1)
        raise LookupError("404")

    with pytest.raises(LookupError):
        call_with_retries(not_found, attempts=4, transient=(ConnectionError,), sleep=lambda _: None)
    assert len(calls) == 1


class Throttled(ConnectionError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("429")
        self.retry_after = retry_after


@pytest.mark.parametrize(
    ("asked", "at_least"), [(None, 0.0), (7.0, 7.0), (0.0, 0.0), (10_000.0, MAX_RETRY_AFTER)]
)
def test_a_retry_waits_at_least_what_retry_after_asked_up_to_the_cap(asked, at_least):
    waits: list[float] = []

    def throttled():
        raise Throttled(asked)

    with pytest.raises(Throttled):
        call_with_retries(throttled, attempts=3, transient=(ConnectionError,), sleep=waits.append)
    assert len(waits) == 2
    assert all(at_least <= wait <= max(at_least, 0.5 * 2**n) for n, wait in enumerate(waits)), waits


def test_retry_after_seconds_doctests():
    assert doctest.testmod(mirrorflow.tasks.retrying, raise_on_error=True).attempted > 0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"Retry-After": "later"}, None), ({}, None)],
)
def test_the_index_client_carries_retry_after_on_a_429(headers, expected):
    from mirrorflow.tasks.index_client import IndexClient, TransientError, build_http_client

    transport = httpx.MockTransport(lambda request: httpx.Response(429, headers=headers))
    index = IndexClient("https://index.example/simple/", client=build_http_client(transport=transport))
    with pytest.raises(TransientError) as raised:
        index.get_project("foo")
    assert (raised.value.status, raised.value.retry_after) == (429, expected)
