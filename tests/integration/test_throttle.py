"""A remote's rate_limit: the schedule (``mirrorflow.tasks.throttle``, with a fake clock) and a real sync."""

from __future__ import annotations

import threading

import httpx
import pytest

from mirrorflow.tasks.index_client import build_http_client
from mirrorflow.tasks.throttle import Throttle


class FakeTime:
    """A clock that moves only when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_requests_asked_for_at_once_start_one_interval_apart():
    time = FakeTime()
    throttle = Throttle(10, clock=time.clock, sleep=time.sleep)
    delays = [throttle.wait() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert time.slept == pytest.approx([0.1, 0.2, 0.3, 0.4])  # the first one did not sleep


def test_an_idle_client_starts_at_once_and_saves_no_burst():
    time = FakeTime()
    throttle = Throttle(4, clock=time.clock, sleep=time.sleep)
    throttle.wait()
    time.now += 60  # a minute of silence
    assert throttle.wait() == 0.0
    assert throttle.wait() == pytest.approx(0.25)  # the silence is not credited: no burst of 240


def test_threads_sharing_a_throttle_each_get_their_own_start():
    time = FakeTime()
    throttle = Throttle(10, clock=time.clock, sleep=time.sleep)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            delay = throttle.wait()
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == pytest.approx([i / 10 for i in range(40)])


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_a_rate_that_is_not_positive_is_refused_naming_the_field(rate):
    with pytest.raises(ValueError, match="rate_limit"):
        Throttle(rate)


def test_the_client_waits_its_turn_for_every_request():
    time = FakeTime()
    client = build_http_client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    throttled = build_http_client(
        rate_limit=5, transport=httpx.MockTransport(lambda request: httpx.Response(200))
    )
    assert not client.event_hooks["request"], "no rate_limit: no hook, no cost"
    (hook,) = throttled.event_hooks["request"]
    assert isinstance(hook, Throttle) and hook.rate == 5
    hook._clock, hook._sleep = time.clock, time.sleep  # the seams, on the client's own throttle
    for _ in range(3):
        throttled.get("https://index.example/simple/")
    assert time.slept == pytest.approx([0.2, 0.4])


def test_a_sync_of_a_rate_limited_remote_spaces_its_requests(cli, seed_index):
    """Every request of the sync (page and files) reaches the upstream at least 1/rate apart."""
    rate = 8
    assert cli("repository", "create", "--name", "slow").exit_code == 0
    created = cli(
        "remote", "create", "--name", "slow", "--url", seed_index.url,
        "--includes", '["shelf-reader"]', "--policy", "immediate", "--rate-limit", str(rate),
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert created.json()["rate_limit"] == rate
    before = len(seed_index.arrivals)
    synced = cli("repository", "sync", "--name", "slow", "--remote", "slow")
    assert synced.exit_code == 0, synced.stderr
    arrivals = seed_index.arrivals[before:]
    assert len(arrivals) >= 3, "the page and the files"
    # Starts are 1/rate apart on our side; the way to the server (threads of this process) adds
    # jitter to each arrival, so: the span, and the typical gap (unthrottled, gaps are ~1 ms).
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / rate - 0.05
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.8 / rate, gaps
