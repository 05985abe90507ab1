"""PEP 792 statuses and takedowns: the pure decisions (``mirrorflow.tasks.project_status``), the pages
that carry a status (the server's and the fixture index's, read back by our own parser), and the
report rows they make."""

from __future__ import annotations

import json

import pytest

from mirrorflow.fixtureindex.builder import FixtureFile
from mirrorflow.fixtureindex.pages import render_project as fixture_page
from mirrorflow.flows.report import gone_line, report_rows, summary_markdown
from mirrorflow.server.pages import API_VERSION, HTML_V1, JSON_V1, render_project
from mirrorflow.tasks.project_status import (
    GoneUpstream,
    gone_files,
    gone_projects,
    status_changes,
    withdraws,
)
from mirrorflow.tasks.report import BatchReport
from mirrorflow.tasks.simple import parse_project_html, parse_project_json

PAGE = "https://index.example/simple/demo/"


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        pytest.param(
            {}, {"a": ("quarantined", "malware")}, {"a": "active -> quarantined (malware)"}, id="quarantined"
        ),
        pytest.param(
            {"a": ("archived", None)}, {"a": None}, {"a": "archived -> active"}, id="back-to-active"
        ),
        pytest.param({"a": ("archived", None)}, {"a": ("archived", None)}, {}, id="unchanged"),
        pytest.param(
            {"a": ("deprecated", "use b")},
            {"a": ("deprecated", "use c")},
            {"a": "deprecated -> deprecated (use c)"},
            id="reason-changed",
        ),
        pytest.param({}, {"a": ("active", "fine")}, {}, id="explicit-active-is-active"),
        pytest.param({"b": ("archived", None)}, {"a": None}, {}, id="not-read-not-changed"),
    ],
)
def test_status_changes(previous, current, expected) -> None:
    assert {c.project: str(c) for c in status_changes(previous, current)} == expected


@pytest.mark.parametrize(
    ("status", "keep", "expected"),
    [
        pytest.param("quarantined", False, True, id="quarantined"),
        pytest.param("quarantined", True, False, id="keep-quarantined"),
        pytest.param("archived", False, False, id="archived"),
        pytest.param("deprecated", False, False, id="deprecated"),
        pytest.param("someday-status", False, False, id="index-defined"),
        pytest.param(None, False, False, id="active"),
    ],
)
def test_withdraws_only_quarantined(status, keep, expected) -> None:
    assert withdraws(status, keep_quarantined=keep) is expected


def test_gone_upstream_projects_and_files() -> None:
    assert gone_projects({"a", "b", "c"}, {"a", "d"}) == ("b", "c")
    held = {"a": {"a-1.tar.gz", "a-2.tar.gz"}, "b": {"b-1.tar.gz"}}
    assert gone_files(
        held, {"a": ["a-2.tar.gz", "a-3.tar.gz"], "b": ["b-1.tar.gz"], "new": ["new-1.tar.gz"]}
    ) == {"a": ("a-1.tar.gz",)}
    gone = GoneUpstream(("b", "c"), {"a": ("a-1.tar.gz",)})
    assert gone.summary() == "gone upstream: 2 projects, 1 files"
    assert gone_line(gone.as_dict()) == "gone upstream: 2 projects, 1 files"
    assert gone_line(GoneUpstream().as_dict()) is None


def test_batch_reports_add_up_status_changes_and_takedowns() -> None:
    one = BatchReport(
        status_changes={"a": "active -> quarantined"},
        new_statuses={"a": ("quarantined", None)},
        withdrawn=["a"],
        gone_upstream_files={"b": ("b-1.tar.gz",)},
    )
    two = BatchReport(gone_upstream_projects=["c"], status_changes={"d": "active -> archived"})
    total = (one + two).as_dict()
    assert total["status_changes"] == {"a": "active -> quarantined", "d": "active -> archived"}
    assert total["withdrawn"] == ["a"]
    assert total["gone_upstream"] == {"projects": ["c"], "files": {"b": ["b-1.tar.gz"]}}
    assert (one + two).gone_upstream(["e"]).summary() == "gone upstream: 2 projects, 1 files"
    rows = report_rows(total, None)
    assert {"metric": "status change: a", "value": "active -> quarantined"} in rows
    assert {"metric": "removed, quarantined upstream", "value": "a"} in rows
    assert {"metric": "gone upstream", "value": "1 projects, 1 files"} in rows
    text = summary_markdown("foo", 2, 1, total, {"added": 0, "removed": 1, "present": 3})
    assert "`a`: active -> quarantined" in text and "gone upstream: 1 projects, 1 files" in text


@pytest.mark.parametrize("status", [("archived", "moved to demo2"), ("quarantined", None), None])
@pytest.mark.parametrize("media_type", [JSON_V1, HTML_V1])
def test_served_pages_carry_the_status_at_api_1_4(status, media_type) -> None:
    body = render_project(
        "Demo", "demo", [], serial=0, media_type=media_type, files_prefix="/r/files/", status=status
    )
    if media_type == JSON_V1:
        document = json.loads(body)
        assert document["meta"]["api-version"] == (API_VERSION if status is None else "1.4")
        page = parse_project_json(body, page_url=PAGE)
    else:
        assert (b'content="1.4"' in body) is (status is not None)
        page = parse_project_html(body.decode(), page_url=PAGE)
    assert ((page.status, page.status_reason) if page.status else None) == status


def test_the_fixture_index_serves_a_quarantined_project_without_files() -> None:
    entry = (FixtureFile("demo-1.0.tar.gz", b"x"), "00" * 32, None)
    html, json_page = fixture_page("demo", [entry], last_serial=3, status="quarantined", reason="malware")
    for page in (
        parse_project_json(json_page.encode(), page_url=PAGE),
        parse_project_html(html, page_url=PAGE),
    ):
        assert (page.status, page.status_reason, page.files) == ("quarantined", "malware", ())
    html, json_page = fixture_page("demo", [entry], last_serial=3, status="archived")
    assert json.loads(json_page)["meta"]["api-version"] == "1.4"
    archived = parse_project_html(html, page_url=PAGE)
    assert (archived.status, archived.status_reason, len(archived.files)) == ("archived", None, 1)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            {"project-status": {"status": "quarantined", "reason": "malware"}},
            ("quarantined", "malware"),
            id="pep-792",
        ),
        pytest.param(
            {"meta": {"api-version": "1.4", "project-status": "Archived", "project-status-reason": "done"}},
            ("archived", "done"),
            id="misplaced-under-meta",
        ),
        pytest.param(
            {"meta": {"api-version": "1.4", "project-status": {"status": "deprecated"}}},
            ("deprecated", None),
            id="object-under-meta",
        ),
        pytest.param(
            {"meta": {"api-version": "1.4", "project-status": 3}}, (None, None), id="garbled-ignored"
        ),
    ],
)
def test_json_status_read_where_indexes_put_it(document, expected) -> None:
    body = {"meta": {"api-version": "1.4"}, "name": "demo", "files": [], **document}
    page = parse_project_json(json.dumps(body).encode(), page_url=PAGE)
    assert (page.status, page.status_reason) == expected
