"""Fuzzing the pure parsers that read what an upstream sends (hypothesis, seeded with recorded pages).

Whatever the bytes, a page parser returns a page or raises ``InvalidPage``; the filename parser returns
a ``ParsedFilename`` or raises ``InvalidFilename``, and never admits an unsafe name. Anything else
escaping (``ValueError`` from urllib, ``RecursionError``, ``KeyError``) would fail a whole project,
or a whole sync, on hostile input.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirrorflow.tasks.filenames import InvalidFilename, parse_filename
from mirrorflow.tasks.simple import (
    InvalidPage,
    parse_listing_html,
    parse_listing_json,
    parse_project_html,
    parse_project_json,
)

PAGES = Path(__file__).parent.parent / "pages"
RECORDED = sorted(p for p in PAGES.rglob("*") if p.is_file() and p.suffix in (".json", ".html"))
PAGE_URL = "https://index.example/simple/demo/"
# Derandomized: the same examples on every run, so the suite cannot flake; the examples still reach
# every branch the strategies describe. No example database is written into the checkout.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Threads other tests left running (servers, Prefect's) may draw from ``random`` while hypothesis
# generates; hypothesis would blame the strategy. Nothing here uses ``random``.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module")

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
)
_KEYS = [
    "filename",
    "url",
    "hashes",
    "yanked",
    "size",
    "upload-time",
    "requires-python",
    "core-metadata",
    "dist-info-metadata",
    "provenance",
]
_file_entries = st.dictionaries(st.sampled_from(_KEYS), _json | st.text(max_size=60), max_size=len(_KEYS))
_hostile_urls = st.sampled_from(
    ["http://[::1", "http://[::1]:99999/a", "file:///etc/passwd", "//x", "\x00", "http://a b/"]
)
_pages = st.fixed_dictionaries(
    {},
    optional={
        "meta": st.dictionaries(st.sampled_from(["api-version", "_last-serial"]), _json, max_size=2),
        "name": _json,
        "files": st.lists(_file_entries | _json, max_size=5),
        "versions": _json,
        "project-status": _json,
    },
)


def _mutated(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    for position, chunk in edits:
        at = position % (len(data) + 1)
        data = data[:at] + chunk + data[at + len(chunk) :]
    return data


_recorded = st.sampled_from([p.read_bytes() for p in RECORDED]) if RECORDED else st.just(b"")
_mutations = st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=8)), max_size=6)


def _parse_project(data: bytes) -> None:
    for parse in (parse_project_json, parse_listing_json):
        with contextlib.suppress(InvalidPage):
            parse(data, page_url=PAGE_URL)
    text = data.decode("utf-8", "replace")
    for parse_html in (parse_project_html, parse_listing_html):
        with contextlib.suppress(InvalidPage):
            parse_html(text, page_url=PAGE_URL)


def test_the_recorded_pages_are_there() -> None:
    assert len(RECORDED) >= 4


@FUZZ
@given(_pages)
@example({"name": "a", "files": [{"filename": "a-1.0.tar.gz", "url": "http://[::1"}]})
@example({"name": "a", "files": [], "meta": {"_last-serial": "2124101", "api-version": "1.4"}})
def test_json_pages_parse_or_are_refused(document) -> None:
    try:
        page = parse_project_json(json.dumps(document).encode(), page_url=PAGE_URL)
    except InvalidPage:
        return
    assert all(isinstance(file.url, str) and isinstance(file.filename, str) for file in page.files)


@FUZZ
@given(
    st.lists(st.tuples(_hostile_urls | st.text(max_size=30), st.text(max_size=30)), max_size=6),
    st.text(max_size=40),
)
def test_html_pages_parse_or_are_refused(anchors, head) -> None:
    body = head + "".join(f'<a href="{href}" data-provenance="{text}">{text}</a>' for href, text in anchors)
    _parse_project(body.encode())


@FUZZ
@given(_recorded, _mutations)
def test_mutated_recorded_pages_parse_or_are_refused(data, edits) -> None:
    _parse_project(_mutated(data, edits))


_filenames = st.builds(
    lambda stem, suffix: stem + suffix,
    st.text(alphabet=st.sampled_from(list("abcAB_.-019/\\\x00+!py")), max_size=30),
    st.sampled_from([".whl", ".tar.gz", ".egg", ".exe", ".dmg", ".zip", ".rpm", ".msi", ""]),
)


@FUZZ
@given(_filenames, st.sampled_from([None, "abc", "a-b", "py"]))
@example("Drift__Core-1.0.0-cp36-cp36m-win_amd64.whl", "drift-core")
@example("a-1.0/../../x.tar.gz", "a")
def test_filenames_parse_or_are_refused_and_never_unsafe(filename, project) -> None:
    try:
        parsed = parse_filename(filename, project=project)
    except InvalidFilename:
        return
    assert not any(char in filename for char in "/\\\x00")
    assert filename.strip(".")
    assert project is None or parsed.by_project is False or parsed.name == project
