"""``tasks.retrying.call_with_retries``: how many tries and waits, and what is never retried."""

from __future__ import annotations

import pytest

from tasks.retrying import call_with_retries


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
