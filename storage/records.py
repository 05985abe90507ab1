"""The package row and the records read back from the catalog: plain values, standard library only.

One package row (one distribution file of one project), seen three ways:

``NewPackage``   the row as a sync (or the pull-through cache) writes it: every column it sets
``ServedFile``   that row as stored: ``package_id``, the ``NewPackage``, then where its bytes are
                 (``artifact_sha256``, ``remote``, ``core_metadata_sha256``)
``PageFile``     the columns a project page renders, ``upload_time`` already as PEP 700 text

``ServedFile`` and the export's ``PackageRecord`` hold a ``NewPackage`` rather than repeat its
fields, so a column added to ``NewPackage`` reaches them both; ``tests/unit/test_records.py``
holds ``PageFile`` to ``ServedFile``'s names and order. Sync (``mirrorflow.storage.content``),
serving (``mirrorflow.storage.serving``) and pull-through (``server``) import them from here, and the page renderer (``mirrorflow.server.pages``) can stay free of SQLAlchemy.

Both tuples are ``NamedTuple`` rather than frozen dataclasses on purpose: a whole-index sync
builds one ``NewPackage`` per file and a page of 5,000 files builds 5,000 ``PageFile`` rows; a
tuple is built in one C call (``PageFile._make(row)``) where a frozen dataclass sets each field in
Python (3.9 times the cost for ``NewPackage``'s 15 fields, timed side by side). They are immutable
all the same and have no ``__dict__``. The records read once per request are frozen, slotted
dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "NewPackage",
    "PageFile",
    "ProjectEntry",
    "ProjectFiles",
    "RepositoryState",
    "ServedFile",
    "VersionView",
]


class NewPackage(NamedTuple):
    """A package row to record: one distribution file, as the sync selected it (a named tuple,
    not a frozen dataclass: one per file of a whole-index sync; see the module docstring)."""

    name: str
    normalized_name: str
    version: str
    filename: str
    packagetype: str
    python_version: str
    requires_python: str | None
    sha256: str
    size: int | None
    upload_time: datetime | None
    yanked: bool
    yanked_reason: str | None
    metadata_sha256: str | None
    has_metadata: bool
    url: str


@dataclass(frozen=True, slots=True)
class ServedFile:
    """A package as the server renders and serves it: the stored row and where its bytes are.

    ``package`` is the row as a sync wrote it; ``artifact_sha256`` is set once the file's bytes are
    stored; ``remote`` names the remote whose policy applies when they are not (None when unknown);
    ``core_metadata_sha256`` is the digest of stored core metadata, if any.
    """

    package_id: int
    package: NewPackage
    artifact_sha256: str | None
    remote: str | None
    core_metadata_sha256: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ServedFile:
        """Return the file of a row laid out as ``package_id``, every ``NewPackage`` column in its
        order, ``artifact_sha256``, ``remote``, ``core_metadata_sha256``."""
        end = 1 + len(NewPackage._fields)
        return cls(row[0], NewPackage._make(row[1:end]), *row[end:])


class PageFile(NamedTuple):
    """A file as a project page lists it: the columns rendering reads, nothing more.

    Named as ``ServedFile``'s fields, so ``mirrorflow.server.pages.page_file`` turns a pull-through file into
    one; ``upload_time`` is PEP 700 text, formatted by the query. A named tuple: built from a row
    in one C call, 5,000 to a page (see the module docstring).
    """

    package_id: int
    name: str
    version: str
    filename: str
    requires_python: str | None
    sha256: str
    size: int | None
    upload_time: str | None
    yanked: bool
    yanked_reason: str | None
    metadata_sha256: str | None
    has_metadata: bool
    artifact_sha256: str | None
    core_metadata_sha256: str | None


class ProjectFiles(NamedTuple):
    """A project's files in a repository version, as its page lists them, and its serial there
    (``ProjectEntry``: the same number its listing entry shows)."""

    files: list[PageFile]
    serial: int


@dataclass(frozen=True, slots=True)
class RepositoryState:
    """What the server needs of a repository: its id, latest version, pull-through remote and
    oldest version (retention deletes the versions below it; the ones between are all there)."""

    id: int
    name: str
    latest_version: int
    pull_through_remote: str | None
    oldest_version: int = 0
    #: The repository's blocklist entries, sorted (``mirrorflow.storage.blocklists``): every version's
    #: pages and files are served without what they block, and a change re-keys the cached pages.
    blocklist: tuple[str, ...] = ()
    #: The ``block_advisories`` prefixes of the remotes that sync it (its remote, its pull-through
    #: remote, every remote a version of it was synced from), sorted; ``("MAL",)`` when none.
    block_advisories: tuple[str, ...] = ("MAL",)
    #: A signal of the imported advisories (``""``: none imported); a change re-keys the cached pages.
    advisories: str = ""

    def has_version(self, number: int) -> bool:
        return self.oldest_version <= number <= self.latest_version


@dataclass(frozen=True, slots=True)
class ProjectEntry:
    """One project of a listing: normalized and display name, and its serial.

    The serial of a project of a repository version is the last version (up to that one) that added
    or removed one of its files (``mirrorflow.storage.serving``); of a project only pulled through,
    the largest id among its pulled files.
    """

    normalized_name: str
    display_name: str
    serial: int


@dataclass(frozen=True, slots=True)
class VersionView:
    """A repository version as the CLI and the server show it (``mirrorflow.storage.catalog`` and
    ``mirrorflow.storage.sqlite_reads`` read it; defined here so that the latter needs no SQLAlchemy)."""

    repository: str
    repository_uuid: str
    uuid: str
    number: int
    base_version: int | None
    created: Any
    added: int
    removed: int
    present: int
    report: dict[str, Any]
