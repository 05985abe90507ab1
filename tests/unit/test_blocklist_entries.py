"""The repository blocklist (issue 20), pure half: entries parse to their kind, the ``blocklisted``
rule, and where ``select_files`` applies it. The CLI, the version ``add`` makes, syncs and ``serve``
are in ``tests/integration/test_blocklist.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from packaging.utils import NormalizedName

from mirrorflow.tasks.blocklist import Blocklist, EntryKind, InvalidBlocklistEntry, parse_entry
from mirrorflow.tasks.distributions import DistFile
from mirrorflow.tasks.filters import FilterSpec, select_files

# -- entries (pure) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "canonical"),
    [
        pytest.param("Shelf_Reader", EntryKind.PROJECT, "shelf-reader", id="name-normalized"),
        pytest.param(" zope.interface ", EntryKind.PROJECT, "zope-interface", id="dotted-name"),
        pytest.param("shelf-reader==0.1", EntryKind.REQUIREMENT, "shelf-reader==0.1", id="pinned"),
        pytest.param("Foo < 2, >=1", EntryKind.REQUIREMENT, "foo<2,>=1", id="range"),
        pytest.param("foo-1.0.tar.gz", EntryKind.FILENAME, "foo-1.0.tar.gz", id="sdist"),
        pytest.param("foo-1.0-py3-none-any.whl", EntryKind.FILENAME, "foo-1.0-py3-none-any.whl", id="wheel"),
    ],
)
def test_entries_parse_to_their_kind_and_canonical_text(text: str, kind: EntryKind, canonical: str) -> None:
    entry = parse_entry(text)
    assert (entry.kind, entry.canonical) == (kind, canonical)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("foo; python_version < '3'", "environment markers", id="marker"),
        pytest.param("foo @ https://index.example/foo-1.0.tar.gz", "may not hold a URL", id="url"),
        pytest.param("foo[bar]==1.0", "extras", id="extras"),
        pytest.param("foo==", "is not a project name, a requirement", id="bad-specifier"),
        pytest.param("foo-bar.whl", "is not a valid distribution filename", id="bad-wheel"),
        pytest.param("-foo", "is not a project name, a requirement", id="bad-name"),
    ],
)
def test_bad_entries_name_the_field_and_value(text: str, says: str) -> None:
    with pytest.raises(InvalidBlocklistEntry) as caught:
        parse_entry(text)
    assert str(caught.value).startswith(f"entry: {text!r} ") and says in str(caught.value)


@pytest.mark.parametrize(
    ("entries", "project", "filename", "version", "blocked"),
    [
        pytest.param(["foo"], "Foo", "Foo-2.0.tar.gz", "2.0", "foo", id="name-blocks-all"),
        pytest.param(["foo<2"], "foo", "foo-2.0.tar.gz", "2.0", None, id="outside-range"),
        pytest.param(["foo<2"], "foo", "foo-1.5rc1.tar.gz", "1.5rc1", "foo<2", id="prerelease-in-range"),
        pytest.param(["foo==1.0"], "bar", "bar-1.0.tar.gz", "1.0", None, id="other-project"),
        pytest.param(["foo-1.0.tar.gz"], "foo", "foo-1.0.zip", "1.0", None, id="filename-is-exact"),
        pytest.param(["foo-1.0.zip"], "foo", "foo-1.0.zip", "1.0", "foo-1.0.zip", id="filename"),
        pytest.param(["foo<2"], "foo", "foo-x.tar.gz", "not pep 440", None, id="legacy-version"),
    ],
)
def test_blocklist_blocks(
    entries: list[str], project: str, filename: str, version: str, blocked: str | None
) -> None:
    assert Blocklist.parse(entries).blocks(project, filename, version) == blocked


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _dist(filename: str) -> DistFile:
    return DistFile(filename=filename, url=f"https://index.example/{filename}", sha256="0" * 64)


def test_the_blocklisted_rule_skips_with_its_entry_before_keep_latest() -> None:
    files = [
        _dist(n) for n in ("foo-1.0.tar.gz", "foo-2.0.tar.gz", "foo-2.0-py3-none-any.whl", "bar-1.0.zip")
    ]
    spec = FilterSpec.build(keep_latest_packages=1)
    selection = select_files(
        NormalizedName("foo"), files, spec, now=NOW, blocklist=Blocklist.parse(["foo==2.0", "foo-1.0.tar.gz"])
    )
    assert [c.file.filename for c in selection.kept] == []
    assert {s.file.filename: (s.reason.value, s.detail) for s in selection.skipped} == {
        "bar-1.0.zip": ("wrong-project", "filename names project 'bar', not 'foo'"),
        "foo-1.0.tar.gz": ("blocklisted", "blocked by the repository's blocklist entry 'foo-1.0.tar.gz'"),
        "foo-2.0.tar.gz": ("blocklisted", "blocked by the repository's blocklist entry 'foo==2.0'"),
        "foo-2.0-py3-none-any.whl": ("blocklisted", "blocked by the repository's blocklist entry 'foo==2.0'"),
    }
    assert list(selection.counts()) == ["wrong-project", "blocklisted"]
