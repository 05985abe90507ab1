"""``mirrorflow.tasks.retrying.call_with_retries``: how many tries and waits, and what is never retried."""

from __future__ import annotations

import doctest

import httpx
import pytest

import mirrorflow.tasks.retrying
from mirrorflow.tasks.retrying import MAX_CONNECTION_WAIT, MAX_RETRY_AFTER, call_with_retries


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


class ConnectionLost(ConnectionError):
    connection_lost = True  # as mirrorflow.tasks.index_client.TransientError without a status


def test_a_lost_connection_waits_seconds_doubling_with_jitter():
    """Four tries after a reset stream once took 1.4 s in all: now the waits alone take 7 s or more."""
    waits: list[float] = []

    def reset():
        raise ConnectionLost("stream reset")

    with pytest.raises(ConnectionLost):
        call_with_retries(reset, attempts=4, transient=(ConnectionError,), sleep=waits.append)
    assert len(waits) == 3
    assert all(2.0 * 2**n / 2 <= wait <= 2.0 * 2**n for n, wait in enumerate(waits)), waits
    assert sum(waits) >= 7.0


def test_the_waits_after_lost_connections_stay_under_their_total():
    calls, waits = [], []

    def reset():
        calls.append(1)
        raise ConnectionLost("stream reset")

    with pytest.raises(ConnectionLost):
        call_with_retries(reset, attempts=50, transient=(ConnectionError,), sleep=waits.append)
    assert sum(waits) <= MAX_CONNECTION_WAIT and len(calls) == len(waits) + 1 < 50
    assert sum(waits) >= MAX_CONNECTION_WAIT - 30.0  # it did wait, up to one capped step short


def test_a_status_error_after_a_lost_connection_waits_as_a_status_error():
    errors = [ConnectionLost("reset"), Throttled(None), ConnectionLost("reset")]
    waits: list[float] = []

    def flaky():
        if errors:
            raise errors.pop(0)
        return "page"

    assert call_with_retries(flaky, attempts=4, transient=(ConnectionError,), sleep=waits.append) == "page"
    assert 1.0 <= waits[0] <= 2.0 and waits[1] <= 1.0 and 4.0 <= waits[2] <= 8.0, waits


def test_the_index_client_marks_network_errors_as_lost_connections():
    from mirrorflow.tasks.index_client import IndexClient, TransientError, build_http_client

    def reset(request):
        raise httpx.RemoteProtocolError("stream reset", request=request)

    answers = {
        503: httpx.MockTransport(lambda request: httpx.Response(503)),
        None: httpx.MockTransport(reset),
    }
    for status, transport in answers.items():
        index = IndexClient("https://index.example/simple/", client=build_http_client(transport=transport))
        with pytest.raises(TransientError) as raised:
            index.get_project("foo")
        assert (raised.value.status, raised.value.connection_lost) == (status, status is None)
