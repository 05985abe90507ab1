"""PEP 792 project statuses and upstream takedowns: what changed since the repository's latest version.

Both are decisions over plain values, made where a sync knows the upstream's answer (the fetch stage
for a page, the listing stage for the index's projects) and the latest version's (read by
``mirrorflow.storage.project_statuses``):

- ``status_changes``: the projects whose status (and reason) differ from the version's;
- ``withdraws``: whether a project's files leave the next version, in additive mode too (quarantined,
  unless the remote sets ``keep_quarantined``);
- ``gone_projects`` / ``gone_files``: what the version holds that the upstream no longer lists
  (a takedown). An additive sync keeps it and reports it, every sync that notices it; a mirror
  sync removes it.

A status the spec does not define is carried as the index wrote it (lowercased): PEP 792 lets an
index define others, and only ``quarantined`` makes a mirror drop files.

Pure: imports only the standard library.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "GoneUpstream",
    "ProjectStatus",
    "StatusChange",
    "gone_files",
    "gone_projects",
    "status_changes",
    "withdraws",
]


class ProjectStatus(enum.StrEnum):
    """The statuses PEP 792 defines; a project with none given is ``active``."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"
    DEPRECATED = "deprecated"


#: A project's status as a sync holds it: (status, reason); ``None`` is active (the default).
Status = tuple[str, str | None] | None


def _normal(status: Status) -> Status:
    """``None`` for active (with or without a reason: an active project has nothing to say)."""
    if status is None or status[0] == ProjectStatus.ACTIVE:
        return None
    return status


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One project whose upstream status differs from the latest version's.

    >>> str(StatusChange("demo", None, ("quarantined", "malware")))
    'active -> quarantined (malware)'
    """

    project: str
    before: Status
    after: Status

    def __str__(self) -> str:
        old = self.before[0] if self.before else ProjectStatus.ACTIVE.value
        new = self.after[0] if self.after else ProjectStatus.ACTIVE.value
        reason = f" ({self.after[1]})" if self.after and self.after[1] else ""
        return f"{old} -> {new}{reason}"


def status_changes(previous: Mapping[str, Status], current: Mapping[str, Status]) -> list[StatusChange]:
    """The projects of ``current`` whose status or reason differs from ``previous``, sorted by name.

    ``current`` holds every project whose page the sync read (``None``: active); ``previous`` the
    latest version's statuses (a project missing from it is active).

    >>> [str(c) for c in status_changes({"a": ("archived", None)}, {"a": None, "b": ("deprecated", "use c")})]
    ['archived -> active', 'active -> deprecated (use c)']
    >>> status_changes({"a": ("archived", None)}, {"a": ("archived", None), "b": ("active", None)})
    []
    """
    changes = []
    for project in sorted(current):
        before, after = _normal(previous.get(project)), _normal(current[project])
        if before != after:
            changes.append(StatusChange(project, before, after))
    return changes


def withdraws(status: str | None, *, keep_quarantined: bool) -> bool:
    """True when a project with upstream ``status`` keeps no file in the next version.

    PEP 792: an index must not offer a quarantined project's files; a mirror follows, in additive
    mode too, unless its remote keeps them on purpose (an operator who investigates the malware).

    >>> withdraws("quarantined", keep_quarantined=False), withdraws("quarantined", keep_quarantined=True)
    (True, False)
    >>> withdraws("archived", keep_quarantined=False), withdraws(None, keep_quarantined=False)
    (False, False)
    """
    return status == ProjectStatus.QUARANTINED and not keep_quarantined


@dataclass(frozen=True, slots=True)
class GoneUpstream:
    """What the repository's latest version holds that the upstream no longer lists.

    >>> GoneUpstream(("a", "b", "c"), {"d": ("d-1.0.tar.gz", "d-1.1.tar.gz")}).summary()
    'gone upstream: 3 projects, 2 files'
    """

    projects: tuple[str, ...] = ()
    #: Files gone from pages the upstream still serves, by project (a project gone whole is in ``projects``).
    files: Mapping[str, tuple[str, ...]] | None = None

    @property
    def file_count(self) -> int:
        return sum(len(names) for names in (self.files or {}).values())

    def summary(self) -> str:
        return f"gone upstream: {len(self.projects)} projects, {self.file_count} files"

    def as_dict(self) -> dict[str, object]:
        files = self.files or {}
        return {"projects": list(self.projects), "files": {k: list(files[k]) for k in sorted(files)}}


def gone_projects(held: Iterable[str], listed: Collection[str]) -> tuple[str, ...]:
    """The projects of ``held`` (the version's) that ``listed`` (the upstream's listing) lacks, sorted.

    >>> gone_projects(["b", "a", "c"], {"a"})
    ('b', 'c')
    """
    return tuple(sorted(name for name in set(held) if name not in listed))


def gone_files(
    held: Mapping[str, Collection[str]], listed: Mapping[str, Collection[str]]
) -> dict[str, tuple[str, ...]]:
    """Per project of ``listed`` (the pages read), the version's files its page no longer lists.

    A file the filters leave out is still listed: only the upstream's removal counts.

    >>> gone_files({"a": {"a-1.tar.gz", "a-2.tar.gz"}, "b": {"b-1.tar.gz"}}, {"a": ["a-2.tar.gz"]})
    {'a': ('a-1.tar.gz',)}
    """
    gone = {}
    for project, files in listed.items():
        missing = tuple(sorted(set(held.get(project, ())) - set(files)))
        if missing:
            gone[project] = missing
    return gone
