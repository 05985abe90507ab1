"""``tasks.batch._pulled``: the batch's work list run by a few pulling workers of the shared pool."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.batch import _pulled


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


@pytest.mark.parametrize("count", [0, 1, 3, 4, 101])
def test_results_come_back_in_order_each_item_once(pool, count):
    seen, lock = [], threading.Lock()

    def square(n):
        with lock:
            seen.append(n)
        return n * n

    assert _pulled(pool, 4, square, list(range(count))) == [n * n for n in range(count)]
    assert sorted(seen) == list(range(count))


def test_at_most_workers_run_at_once(pool):
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(2)

    def item(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if n < 2:
            gate.wait(timeout=5)  # the first two overlap for sure
        with lock:
            running[0] -= 1
        return n

    assert _pulled(pool, 2, item, list(range(20))) == list(range(20))
    assert peak[0] == 2


def test_an_error_propagates_and_stops_the_rest(pool):
    done = []

    def item(n):
        if n == 3:
            raise RuntimeError("boom")
        done.append(n)
        return n

    with pytest.raises(RuntimeError, match="boom"):
        _pulled(pool, 1, item, list(range(100)))
    assert done == [0, 1, 2], "one worker: nothing after the failing item ran"
