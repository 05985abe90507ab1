"""``mirrorflow.tasks.workers``: a batch's work list run by a few pulling workers of the shared pool, paced."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mirrorflow.tasks.workers import Pacer, next_limit, pulled


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

    assert pulled(pool, 4, square, list(range(count))) == [n * n for n in range(count)]
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

    assert pulled(pool, 2, item, list(range(20))) == list(range(20))
    assert peak[0] == 2


def test_an_error_propagates_and_stops_the_rest(pool):
    done = []

    def item(n):
        if n == 3:
            raise RuntimeError("boom")
        done.append(n)
        return n

    with pytest.raises(RuntimeError, match="boom"):
        pulled(pool, 1, item, list(range(100)))
    assert done == [0, 1, 2], "one worker: nothing after the failing item ran"


@pytest.mark.parametrize(
    ("limit", "cores", "ceiling", "expected"),
    [
        pytest.param(10, 0.95, 10, 9, id="busy-lowers"),
        pytest.param(2, 1.4, 10, 2, id="busy-stops-at-the-floor"),
        pytest.param(1, 1.0, 1, 1, id="a-concurrency-of-one-stays-one"),
        pytest.param(4, 0.3, 10, 5, id="idle-raises"),
        pytest.param(10, 0.3, 10, 10, id="idle-stops-at-the-concurrency"),
        pytest.param(6, 0.8, 10, 6, id="between-keeps"),
        pytest.param(12, 0.8, 10, 10, id="never-above-the-concurrency"),
    ],
)
def test_next_limit(limit, cores, ceiling, expected):
    assert next_limit(limit, cores, ceiling=ceiling) == expected


class FakeClock:
    def __init__(self):
        self.wall = self.cpu = 0.0


def test_the_pacer_lowers_its_limit_while_the_process_is_busy_and_raises_it_when_idle():
    clock = FakeClock()
    pacer = Pacer(4, window=1.0, clock=lambda: clock.wall, cpu=lambda: clock.cpu)
    limits = []
    for cores in [1.0, 1.0, 1.0, 0.2, 0.2, 0.2, 0.2]:
        clock.wall += 1.0
        clock.cpu += cores
        with pacer.slot():
            pass
        limits.append(pacer.limit)
    assert limits == [3, 2, 2, 3, 4, 4, 4]
    clock.wall += 0.5  # within the window: no change
    clock.cpu += 0.5
    with pacer.slot():
        pass
    assert pacer.limit == 4


def test_a_paced_pool_runs_no_more_items_at_once_than_the_pacer_allows(pool):
    clock = FakeClock()
    pacer = Pacer(4, window=1.0, clock=lambda: clock.wall, cpu=lambda: clock.cpu)
    pacer.limit = 2  # as if the process had been busy
    running, peak, lock = [0], [0], threading.Lock()

    def item(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.002)
        with lock:
            running[0] -= 1
        return n

    assert pulled(pool, 4, item, list(range(40)), pacer=pacer) == list(range(40))
    assert peak[0] <= 2


def test_a_paced_pool_still_propagates_an_error(pool):
    pacer = Pacer(2)

    def item(n):
        if n == 5:
            raise RuntimeError("boom")
        return n

    with pytest.raises(RuntimeError, match="boom"):
        pulled(pool, 4, item, list(range(50)), pacer=pacer)
    assert pacer._running == 0  # every slot was given back


def test_the_limit_can_fall_while_slots_are_held_and_they_are_all_given_back():
    clock = FakeClock()
    pacer = Pacer(3, window=1.0, clock=lambda: clock.wall, cpu=lambda: clock.cpu)
    with pacer.slot(), pacer.slot(), pacer.slot():
        clock.wall += 1.0
        clock.cpu += 1.0  # busy: the first release lowers the limit to 2 while 2 slots stay held
    assert pacer.limit == 2
    assert pacer._running == 0
