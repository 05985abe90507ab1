"""Tests for mirrorflow.tasks.advisories (OSV records, PEP 440 ranges) and mirrorflow.tasks.osv_export."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mirrorflow.tasks.advisories import (
    Advisories,
    AdvisoryBlock,
    InvalidAdvisory,
    advisory_from_stored,
    blocks,
    parse_advisory,
    stored_affected,
    validate_prefixes,
)
from mirrorflow.tasks.distributions import DistFile
from mirrorflow.tasks.filters import FilterSpec, SkipReason, select_files
from mirrorflow.tasks.osv_export import InvalidExport, read_export

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def record(
    advisory_id: str = "PYSEC-2024-1", *, affected: list[Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return {"id": advisory_id, "modified": "2024-05-01T10:00:00Z", "affected": affected or [], **fields}


def pypi(name: str, *, versions: list[str] | None = None, ranges: list[Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if versions is not None:
        entry["versions"] = versions
    if ranges is not None:
        entry["ranges"] = ranges
    return entry


def ecosystem(*events: tuple[str, str]) -> dict[str, Any]:
    return {"type": "ECOSYSTEM", "events": [{kind: version} for kind, version in events]}


def affected_versions(entry: dict[str, Any], versions: list[str]) -> list[str]:
    advisory = parse_advisory(record(affected=[entry]))
    return [v for v in versions if advisory.names(entry["package"]["name"], v)]


VERSIONS = [
    "0.1",
    "0.9",
    "1.0a1",
    "1.0",
    "1.0.1",
    "1.4",
    "1.5",
    "1.5.post1",
    "2.0rc1",
    "2.0",
    "2.5",
    "3.0",
    "3.1",
]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(pypi("p", ranges=[ecosystem(("introduced", "0"))]), VERSIONS, id="introduced-0-all"),
        pytest.param(
            pypi("p", ranges=[ecosystem(("introduced", "0"), ("fixed", "1.0"))]),
            ["0.1", "0.9", "1.0a1"],
            id="fixed-excludes-itself-prerelease-below",
        ),
        pytest.param(
            pypi("p", ranges=[ecosystem(("introduced", "1.0"), ("last_affected", "1.5"))]),
            ["1.0", "1.0.1", "1.4", "1.5"],
            id="last-affected-inclusive-post-after",
        ),
        pytest.param(
            pypi(
                "p",
                ranges=[
                    ecosystem(
                        ("introduced", "1.0"), ("fixed", "1.5"), ("introduced", "2.0"), ("fixed", "3.0")
                    )
                ],
            ),
            ["1.0", "1.0.1", "1.4", "2.0", "2.5"],
            id="two-stretches-one-range",
        ),
        pytest.param(
            pypi(
                "p",
                ranges=[
                    ecosystem(
                        ("fixed", "3.0"), ("introduced", "2.0"), ("fixed", "1.5"), ("introduced", "1.0")
                    )
                ],
            ),
            ["1.0", "1.0.1", "1.4", "2.0", "2.5"],
            id="unsorted-events",
        ),
        pytest.param(
            pypi(
                "p",
                ranges=[ecosystem(("introduced", "0"), ("fixed", "0.9")), ecosystem(("introduced", "3.0"))],
            ),
            ["0.1", "3.0", "3.1"],
            id="multiple-ranges",
        ),
        pytest.param(
            pypi("p", ranges=[ecosystem(("introduced", "1.0"), ("limit", "1.5"))]),
            ["1.0", "1.0.1", "1.4"],
            id="limit-upper-bound",
        ),
        pytest.param(
            pypi("p", ranges=[ecosystem(("introduced", "1.0"), ("limit", "*"))]),
            ["1.0", "1.0.1", "1.4", "1.5", "1.5.post1", "2.0rc1", "2.0", "2.5", "3.0", "3.1"],
            id="limit-star-infinity",
        ),
        pytest.param(pypi("p", versions=["1.0.0", "2.5"]), ["1.0", "2.5"], id="versions-list-pep440-equal"),
        pytest.param(
            pypi("p", versions=["3.1"], ranges=[ecosystem(("introduced", "0"), ("fixed", "0.9"))]),
            ["0.1", "3.1"],
            id="versions-or-ranges",
        ),
        pytest.param(
            {**pypi("p", ranges=[{"type": "GIT", "repo": "r", "events": [{"introduced": "abc"}]}])},
            [],
            id="git-range-not-evaluated",
        ),
        pytest.param(
            {"package": {"ecosystem": "npm", "name": "p"}, "versions": ["1.0"]},
            [],
            id="other-ecosystem-ignored",
        ),
    ],
)
def test_ranges_evaluate_as_the_schema_says(entry: dict[str, Any], expected: list[str]) -> None:
    assert affected_versions(entry, VERSIONS) == expected


def test_names_are_canonicalized_on_both_sides() -> None:
    advisory = parse_advisory(record(affected=[pypi("Evil_Pkg.Name", versions=["1.0"])]))
    assert advisory.projects == {"evil-pkg-name"}
    assert advisory.names("evil.pkg-NAME", "1.0")
    assert not advisory.names("evil-pkg", "1.0")


def test_invalid_versions_are_left_out_with_a_note() -> None:
    advisory = parse_advisory(
        record(
            affected=[
                pypi(
                    "p",
                    versions=["1.0", "not a version"],
                    ranges=[ecosystem(("introduced", "0"), ("fixed", "nope"))],
                )
            ]
        )
    )
    assert advisory.notes == (
        "affected[0].versions: 'not a version' is not a PEP 440 version (matched as exact text only)",
        "affected[0].ranges[0].events[1].fixed: 'nope' is not a PEP 440 version (left out)",
    )
    assert advisory.names("p", "1.0") and advisory.names("p", "9.9")  # the bad fixed left out: open range
    assert advisory.names("p", "not a version"), "a held version packaging refuses: exact text"
    assert not advisory.names("p", "not a version 2")


def test_withdrawn_advisories_name_nothing() -> None:
    advisory = parse_advisory(
        record("MAL-2024-2", affected=[pypi("p", versions=["1.0"])], withdrawn="2024-05-02T00:00:00Z")
    )
    assert advisory.withdrawn == datetime(2024, 5, 2, tzinfo=UTC)
    assert not advisory.names("p", "1.0")
    assert not Advisories([advisory])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param([], "record", id="not-object"),
        pytest.param({"modified": "2024-01-01T00:00:00Z"}, "id", id="no-id"),
        pytest.param({"id": "X-1", "modified": "yesterday"}, "modified", id="bad-modified"),
        pytest.param(record(affected={"x": 1}), "affected", id="affected-not-list"),
        pytest.param(record(aliases="GHSA-1"), "aliases", id="aliases-not-list"),
        pytest.param(
            record(affected=[{"package": {"ecosystem": "PyPI"}}]), "affected[0].package.name", id="no-name"
        ),
        pytest.param(
            record(
                affected=[
                    pypi("p", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}])
                ]
            ),
            "affected[0].ranges[0].events[0]",
            id="two-kinds-in-one-event",
        ),
    ],
)
def test_bad_records_name_the_field(data: object, field: str) -> None:
    with pytest.raises(InvalidAdvisory) as caught:
        parse_advisory(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("prefixes", "ids", "expected"),
    [
        pytest.param(["MAL"], ("MAL-2024-1",), True, id="prefix"),
        pytest.param(["MAL"], ("MALWARE-1",), False, id="prefix-stops-at-dash"),
        pytest.param(["MAL-"], ("MAL-2024-1",), True, id="prefix-with-dash"),
        pytest.param(["PYSEC-2024"], ("PYSEC-2024-12",), True, id="longer-prefix"),
        pytest.param(["GHSA-abcd-efgh-ijkl"], ("GHSA-abcd-efgh-ijkl",), True, id="whole-id"),
        pytest.param(["MAL"], ("GHSA-x", "MAL-2024-9"), True, id="alias"),
        pytest.param([], ("MAL-2024-1",), False, id="empty-blocks-none"),
        pytest.param(["mal"], ("MAL-2024-1",), True, id="case-ignored"),
        pytest.param(["ghsa-ABCD-efgh-ijkl"], ("GHSA-abcd-efgh-ijkl",), True, id="whole-id-case-ignored"),
    ],
)
def test_prefixes(prefixes: list[str], ids: tuple[str, ...], expected: bool) -> None:
    advisory = parse_advisory(record(ids[0], aliases=list(ids[1:])))
    assert blocks(prefixes, advisory) is expected


def test_prefixes_are_checked() -> None:
    assert validate_prefixes(["MAL", "MAL", "PYSEC"]) == ("MAL", "PYSEC")
    for bad in ("", "MAL 2024", 3):
        with pytest.raises(InvalidAdvisory, match="block_advisories"):
            validate_prefixes([bad])


def test_stored_form_round_trips() -> None:
    advisory = parse_advisory(
        record(
            affected=[
                pypi(
                    "p",
                    versions=["1.0"],
                    ranges=[
                        ecosystem(("introduced", "0"), ("fixed", "2.0")),
                        ecosystem(("introduced", "3"), ("limit", "*")),
                    ],
                ),
            ]
        )
    )
    back = advisory_from_stored(
        advisory.id,
        advisory.modified,
        advisory.summary,
        advisory.aliases,
        json.loads(json.dumps(stored_affected(advisory))),
    )
    assert back.affected == advisory.affected
    assert [v for v in VERSIONS if back.names("p", v)] == [v for v in VERSIONS if advisory.names("p", v)]


def test_the_filter_skips_what_a_blocking_advisory_names() -> None:
    advisories = Advisories(
        [
            parse_advisory(
                record("MAL-2024-7", summary="steals tokens", affected=[pypi("foo", versions=["2.0"])])
            ),
            parse_advisory(
                record("PYSEC-2024-3", affected=[pypi("foo", ranges=[ecosystem(("introduced", "0"))])])
            ),
        ]
    )
    files = [
        DistFile(filename=f, url=f"https://index.example/{f}", sha256=None)
        for f in ("foo-1.0.tar.gz", "foo-2.0.tar.gz", "foo-2.0-py3-none-any.whl")
    ]
    selection = select_files(
        "foo", files, FilterSpec.build(), now=NOW, advisories=AdvisoryBlock(("MAL",), advisories)
    )  # type: ignore[arg-type]
    assert [c.file.filename for c in selection.kept] == ["foo-1.0.tar.gz"]
    assert {(s.file.filename, s.reason, s.detail) for s in selection.skipped} == {
        ("foo-2.0.tar.gz", SkipReason.ADVISORY, "MAL-2024-7 names foo 2.0: steals tokens"),
        ("foo-2.0-py3-none-any.whl", SkipReason.ADVISORY, "MAL-2024-7 names foo 2.0: steals tokens"),
    }
    nothing = select_files(
        "foo", files, FilterSpec.build(), now=NOW, advisories=AdvisoryBlock((), advisories)
    )  # type: ignore[arg-type]
    assert len(nothing.kept) == 3


# --- reading an export ------------------------------------------------------------------------------


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_export_reads_a_zip_member_by_member_and_a_directory(tmp_path: Path) -> None:
    one = json.dumps(record("MAL-2024-1", affected=[pypi("a", versions=["1.0"])])).encode()
    two = json.dumps(record("PYSEC-2024-2", affected=[pypi("b", versions=["2.0"])])).encode()
    archive = _write_zip(
        tmp_path / "all.zip", {"MAL-2024-1.json": one, "PYSEC-2024-2.json": two, "README": b"x"}
    )
    assert [a.id for _, a in read_export(archive)] == ["MAL-2024-1", "PYSEC-2024-2"]
    folder = tmp_path / "osv"
    (folder / "sub").mkdir(parents=True)
    (folder / "MAL-2024-1.json").write_bytes(one)
    (folder / "sub" / "PYSEC-2024-2.json").write_bytes(two)
    assert [a.id for _, a in read_export(folder)] == ["MAL-2024-1", "PYSEC-2024-2"]
    assert [a.id for _, a in read_export(folder / "MAL-2024-1.json")] == ["MAL-2024-1"], "one record"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        pytest.param({"bad.json": b"{not json"}, "all.zip:bad.json: is not JSON", id="not-json"),
        pytest.param(
            {"bad.json": b'{"id": "X-1"}'},
            "all.zip:bad.json: is not an OSV record: modified: None",
            id="not-osv",
        ),
    ],
)
def test_a_bad_member_is_named(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    archive = _write_zip(tmp_path / "all.zip", members)
    with pytest.raises(InvalidExport) as caught:
        list(read_export(archive))
    assert message in str(caught.value) and str(caught.value).endswith("nothing was imported")
    assert "\n" not in str(caught.value)


def test_a_path_that_is_no_export_is_named(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("x")
    for path, why in ((tmp_path / "missing", "does not exist"), (tmp_path / "plain.txt", "is not a zip")):
        with pytest.raises(InvalidExport) as caught:
            list(read_export(path))
        assert str(caught.value).startswith(f"{path}: {why}")


def test_the_sync_report_names_each_advisory_event() -> None:
    from mirrorflow.flows.report import report_rows, summary_markdown

    summary = {
        "skipped": {"advisory": 1},
        "advisories": {"foo-2.0.tar.gz": "MAL-2024-7 names foo 2.0: steals tokens"},
        "advisories_removed": {"foo-2.0-py3-none-any.whl": "MAL-2024-7 names foo 2.0"},
    }
    rows = {row["metric"]: row["value"] for row in report_rows(summary, {"removed": 1})}
    assert rows["dropped by advisory"] == "1"
    assert rows["kept out by advisory: foo-2.0.tar.gz"] == "MAL-2024-7 names foo 2.0: steals tokens"
    assert rows["removed by advisory: foo-2.0-py3-none-any.whl"] == "MAL-2024-7 names foo 2.0"
    markdown = summary_markdown("r", 3, 2, summary, {"removed": 1})
    assert "- removed `foo-2.0-py3-none-any.whl`: MAL-2024-7 names foo 2.0" in markdown
    assert "Advisories" not in summary_markdown("r", None, 2, {}, None)
