"""Real pages of the public index, recorded by ``scripts/record_pages.py``, read as a user would check them.

Each project has three recorded documents in ``tests/pages/recorded/``: its simple page as PEP 691 JSON
and as PEP 503 HTML, and the legacy JSON API (``/pypi/<name>/json``), all with every index host rewritten
to ``index.example``. The legacy JSON API is the index's own account of each file (type, version, digest,
yanked, upload time), written by other code than the simple pages: the parsed pages are checked
against it, and against each other.

The pages came through the caching front of these machines, which serves ``_last-serial`` as a string
and drops ``core-metadata``: what the recordings hold is what a mirror here really reads.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirrorflow.tasks.distributions import DistFile, ProjectPage
from mirrorflow.tasks.filters import FilterSpec, select_files
from mirrorflow.tasks.simple import parse_project_html, parse_project_json

RECORDED = Path(__file__).parent.parent / "pages" / "recorded"


class Expected(NamedTuple):
    """What each recording must hold, so that an emptied or truncated recording fails here."""

    display_name: str
    types: dict[str, int]
    yanked: int = 0


EXPECTED = {
    "shelf-reader": Expected("shelf-reader", {"sdist": 1, "bdist_wheel": 1}),
    "pip-tools": Expected("pip-tools", {"sdist": 5, "bdist_wheel": 5}),
    "django": Expected("Django", {"sdist": 5, "bdist_wheel": 5}),
    "scipy": Expected("scipy", {"sdist": 4, "bdist_wheel": 40}, yanked=19),
    "mysql-python": Expected("MySQL-python", {"sdist": 15, "bdist_egg": 8, "bdist_wininst": 8}),
    "pyreadline": Expected("pyreadline", {"sdist": 8, "bdist_wininst": 11}),
    "password-strength": Expected("password-strength", {"sdist": 6, "bdist_wheel": 5, "bdist_dumb": 1}),
}
PROJECTS = sorted(EXPECTED)


class Recording(NamedTuple):
    raw_json: dict[str, Any]
    json_page: ProjectPage
    html_page: ProjectPage
    legacy: dict[str, dict[str, Any]]  # filename -> the legacy API's entry, with its release as "_release"
    legacy_last_serial: int
    legacy_name: str


@cache
def _recording(project: str) -> Recording:
    page_url = f"https://index.example/simple/{project}/"
    raw_bytes = (RECORDED / f"{project}.v1.json").read_bytes()
    legacy_doc = json.loads((RECORDED / f"{project}.legacy.json").read_text(encoding="utf-8"))
    legacy = {
        entry["filename"]: dict(entry, _release=release)
        for release, entries in legacy_doc["releases"].items()
        for entry in entries
    }
    return Recording(
        raw_json=json.loads(raw_bytes),
        json_page=parse_project_json(raw_bytes, page_url=page_url),
        html_page=parse_project_html(
            (RECORDED / f"{project}.html").read_text(encoding="utf-8"), page_url=page_url
        ),
        legacy=legacy,
        legacy_last_serial=legacy_doc["last_serial"],
        legacy_name=legacy_doc["info"]["name"],
    )


def _by_name(page: ProjectPage) -> dict[str, DistFile]:
    files = {file.filename: file for file in page.files}
    assert len(files) == len(page.files), "a filename is listed twice"
    return files


def test_every_recording_is_here() -> None:
    recorded = {path.name.removesuffix(".v1.json") for path in RECORDED.glob("*.v1.json")}
    assert recorded == set(EXPECTED)


@pytest.mark.parametrize("project", PROJECTS)
def test_both_formats_name_the_project_as_the_index_displays_it(project: str) -> None:
    # PEP 691's "name" is normalized; the display spelling is the legacy API's (what Pulp shows).
    recording = _recording(project)
    assert recording.legacy_name == EXPECTED[project].display_name
    for page in (recording.json_page, recording.html_page):
        assert page.name == canonicalize_name(project)
        assert page.display_name == recording.legacy_name


@pytest.mark.parametrize("project", PROJECTS)
def test_json_html_and_legacy_api_list_the_same_files(project: str) -> None:
    recording = _recording(project)
    json_files, html_files = _by_name(recording.json_page), _by_name(recording.html_page)
    assert set(json_files) == set(html_files) == set(recording.legacy)
    types = Counter(entry["packagetype"] for entry in recording.legacy.values())
    assert types == Counter(EXPECTED[project].types)
    for name, file in json_files.items():
        other = html_files[name]
        assert (file.url, file.sha256, file.requires_python, file.yanked, file.yanked_reason) == (
            other.url,
            other.sha256,
            other.requires_python,
            other.yanked,
            other.yanked_reason,
        ), name
        assert file.core_metadata == other.core_metadata, name


@pytest.mark.parametrize("project", PROJECTS)
def test_every_file_has_the_sha256_and_url_the_index_reports(project: str) -> None:
    recording = _recording(project)
    for file in recording.json_page.files + recording.html_page.files:
        entry = recording.legacy[file.filename]
        assert file.sha256 is not None, file.filename
        assert file.sha256 == entry["digests"]["sha256"], file.filename
        # The file's storage path (``<2>/<2>/<60 hex>/<filename>``). Only the path's tail is compared:
        # through the caching front, some legacy API answers give it relative to the front's own root.
        assert file.url.split("/")[-4:] == entry["url"].split("/")[-4:], file.filename
        assert file.url.startswith("https://index.example/packages/"), file.url


@pytest.mark.parametrize("project", PROJECTS)
def test_yanked_files_are_flagged_with_their_reason(project: str) -> None:
    recording = _recording(project)
    for page in (recording.json_page, recording.html_page):
        for file in page.files:
            entry = recording.legacy[file.filename]
            assert file.yanked is entry["yanked"], file.filename
            assert file.yanked_reason == (entry["yanked_reason"] or None), file.filename
        assert sum(file.yanked for file in page.files) == EXPECTED[project].yanked


def test_scipy_1_11_0_is_yanked_for_its_license() -> None:
    page = _recording("scipy").json_page
    yanked = {file.filename for file in page.files if file.yanked}
    assert yanked == {file.filename for file in page.files if file.filename.startswith("scipy-1.11.0")}
    assert {file.yanked_reason for file in page.files if file.yanked} == {"License Violation"}


@pytest.mark.parametrize("project", PROJECTS)
def test_requires_python_size_and_upload_time_are_read(project: str) -> None:
    recording = _recording(project)
    for file in recording.json_page.files:
        entry = recording.legacy[file.filename]
        assert file.requires_python == (entry["requires_python"] or None), file.filename
        assert file.size == entry["size"], file.filename
        uploaded = datetime.fromisoformat(entry["upload_time_iso_8601"].replace("Z", "+00:00"))
        assert file.upload_time == uploaded.astimezone(UTC), file.filename


def test_requires_python_is_read_where_the_index_gives_it() -> None:
    # Django 2.0 says ">=3.4"; pip-tools 1.11.0 predates the field.
    files = _by_name(_recording("django").html_page) | _by_name(_recording("pip-tools").html_page)
    assert files["Django-2.0.tar.gz"].requires_python == ">=3.4"
    assert files["pip-tools-1.11.0.tar.gz"].requires_python is None


@pytest.mark.parametrize("project", PROJECTS)
def test_core_metadata_is_read_as_the_page_gives_it(project: str) -> None:
    recording = _recording(project)
    raw = {entry["filename"]: entry for entry in recording.raw_json["files"]}
    for file in recording.json_page.files:
        entry = raw[file.filename]
        given = entry.get("core-metadata", entry.get("dist-info-metadata", False))
        assert file.core_metadata is bool(given), file.filename


@pytest.mark.parametrize("project", PROJECTS)
def test_the_serial_is_read_from_the_page(project: str) -> None:
    recording = _recording(project)
    serial = recording.raw_json["meta"]["_last-serial"]
    assert recording.json_page.last_serial == int(serial) == recording.legacy_last_serial


def test_the_recordings_carry_the_serial_as_a_string() -> None:
    # What makes these recordings worth having: the caching front (as Pulp and bandersnatch do)
    # sends "_last-serial" as a string of digits, which an integer-only reader refuses.
    assert all(isinstance(_recording(p).raw_json["meta"]["_last-serial"], str) for p in PROJECTS)


@pytest.mark.parametrize("project", PROJECTS)
def test_every_listed_file_is_kept_with_the_type_and_version_the_index_reports(project: str) -> None:
    recording = _recording(project)
    spec = FilterSpec.build(includes=[project])
    for page in (recording.json_page, recording.html_page):
        selection = select_files(page.name, page.files, spec, now=datetime(2030, 1, 1, tzinfo=UTC))
        dropped = {skip.file.filename: f"{skip.reason}: {skip.detail}" for skip in selection.skipped}
        assert dropped == {}
        for candidate in selection.kept:
            entry = recording.legacy[candidate.file.filename]
            assert candidate.parsed.packagetype == entry["packagetype"], candidate.file.filename
            assert candidate.parsed.version == Version(entry["_release"]), candidate.file.filename
