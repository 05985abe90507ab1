"""The pure planning step: which projects a sync fetches, from listing serials and the memory."""

from __future__ import annotations

import pytest

from mirrorflow.flows.remote_spec import RemoteFields
from mirrorflow.tasks.listing import (
    Wanted,
    batched,
    filter_fingerprint,
    is_stale,
    plan_projects,
    stale_delays,
)

FP = "f" * 64


def _plan(wanted, remembered, *, previous=FP, serials=True, accepted=(FP,)):
    return plan_projects(
        wanted, remembered, accepted=accepted, remembered_fingerprint=previous, listing_has_serials=serials
    )


@pytest.mark.parametrize(
    ("wanted", "remembered", "fetch", "gone", "unchanged"),
    [
        pytest.param(
            [("a", 1), ("b", 2)], {"a": (1, None, None), "b": (2, None, None)}, [], [], 2, id="unchanged"
        ),
        pytest.param(
            [("a", 1), ("b", 3)], {"a": (1, None, None), "b": (2, None, None)}, ["b"], [], 1, id="bumped"
        ),
        pytest.param([("a", 1), ("c", 5)], {"a": (1, None, None)}, ["c"], [], 1, id="new-project"),
        pytest.param([("a", 1)], {"a": (1, None, None), "b": (2, None, None)}, [], ["b"], 1, id="gone"),
        pytest.param([("a", 1)], {"a": (None, None, None)}, ["a"], [], 0, id="no-remembered-serial"),
        pytest.param([("a", 1)], {"a": (4, None, None)}, ["a"], [], 0, id="serial-went-down"),
    ],
)
def test_serial_mode(wanted, remembered, fetch, gone, unchanged):
    work = _plan(wanted, remembered)
    assert work.mode == "serial" and work.scope == "touched"
    assert [w.name for w in work.fetch] == fetch
    assert list(work.gone) == gone
    assert work.unchanged == unchanged


def test_fetch_carries_the_listing_serial():
    work = _plan([("a", 7)], {"a": (6, '"x"', None)})
    assert work.fetch == (Wanted("a", 7),)


@pytest.mark.parametrize(
    ("previous", "accepted", "mode", "reason"),
    [
        pytest.param(None, (FP,), "full", "first sync", id="first-sync"),
        pytest.param("0" * 64, (FP,), "full", "filters changed", id="filters-changed"),
        pytest.param("0" * 64, (FP, "0" * 64), "serial", "serials compared", id="accepted-other"),
    ],
)
def test_full_when_fingerprint_not_accepted(previous, accepted, mode, reason):
    work = _plan(
        [("a", 1), ("b", 2)],
        {"a": (1, None, None), "z": (9, None, None)},
        previous=previous,
        accepted=accepted,
    )
    assert (work.mode, work.reason) == (mode, reason)
    if mode == "full":
        assert work.scope == "all"
        assert [w.name for w in work.fetch] == ["a", "b"]  # everything, serials or not
    assert work.gone == ("z",)


@pytest.mark.parametrize(
    ("wanted", "serials"),
    [
        pytest.param([("a", None), ("b", 2)], True, id="a-serial-missing"),
        pytest.param([("a", 1), ("b", 2)], False, id="no-listing"),
    ],
)
def test_conditional_mode_sends_remembered_validators(wanted, serials):
    work = _plan(wanted, {"a": (1, '"etag-a"', "Mon, 01 Jan 2024 00:00:00 GMT")}, serials=serials)
    assert work.mode == "conditional" and work.scope == "touched"
    by_name = {w.name: w for w in work.fetch}
    assert by_name["a"].etag == '"etag-a"'
    assert by_name["a"].last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert by_name["b"].etag is None and by_name["b"].last_modified is None


def test_fingerprint_ignores_order_and_other_fields_but_not_filters_or_mode():
    base = {"url": "https://index.example/simple/", "includes": ["a", "b"], "policy": "on_demand"}
    same = filter_fingerprint(base, mirror=False)
    assert filter_fingerprint({**base, "includes": ["b", "a"], "name": "x"}, mirror=False) == same
    assert filter_fingerprint({**base, "excludes": ["c"]}, mirror=False) != same
    assert filter_fingerprint({**base, "policy": "immediate"}, mirror=False) != same
    assert filter_fingerprint({**base, "url": "http://127.0.0.1/simple/"}, mirror=False) != same
    assert filter_fingerprint(base, mirror=True) != same


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("python_versions", ["3.12"]),
        ("skip_yanked", True),
        ("exclude_newer_than", "7d"),
        ("missing_upload_time", "skip"),
    ],
)
def test_fingerprint_covers_every_remote_field_that_selects(field, value):
    """Each filter of ``RemoteFields`` beyond Pulp's, as ``model_dump`` gives it, forces a re-evaluation."""
    base = RemoteFields(url="https://index.example/simple/").model_dump()
    assert filter_fingerprint({**base, field: value}, mirror=False) != filter_fingerprint(base, mirror=False)


@pytest.mark.parametrize(
    ("page", "expected", "stale"),
    [
        pytest.param(4, 5, True, id="older"),
        pytest.param(5, 5, False, id="equal"),
        pytest.param(6, 5, False, id="newer"),
        pytest.param(None, 5, False, id="page-without-serial"),
        pytest.param(4, None, False, id="listing-without-serial"),
    ],
)
def test_is_stale(page, expected, stale):
    assert is_stale(page, expected) is stale


def test_stale_delays_and_batches():
    assert stale_delays(1, 1.0) == []
    assert stale_delays(3, 0.25) == [0.25, 0.5]
    assert batched(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="batch size 0"):
        batched([1], 0)
