"""Records for what an upstream index lists: projects and their distribution files.

These are the values that flow between the index client (``mirrorflow.tasks.simple``), the filters
(``mirrorflow.tasks.filters``) and the sync steps. They are frozen and slotted; names are canonicalized once,
when a record is built from the wire, and never again.

Pure: imports only the standard library and ``packaging``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import NewType

from packaging.utils import NormalizedName

__all__ = [
    "Sha256",
    "DistFile",
    "ProjectPage",
    "ProjectListing",
    "ListedProject",
    "is_sha256",
]

#: A lowercase hex sha256 digest, 64 characters.
Sha256 = NewType("Sha256", str)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: str) -> bool:
    """Return True when ``value`` is a lowercase hex sha256 digest.

    >>> is_sha256("0" * 64)
    True
    >>> is_sha256("0" * 63 + "G")
    False
    """
    return _SHA256_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class DistFile:
    """One distribution file as an upstream index lists it (PEP 503 / PEP 691 / PEP 700).

    ``url`` is absolute (resolved against the page it came from, fragment removed).
    ``sha256`` is None when the index gave no sha256 hash. ``core_metadata`` is True when the index
    says a PEP 658 ``.metadata`` file is available; ``core_metadata_sha256`` is its digest when given.
    ``packagetype`` is the JSON API's value when the index gave one (e.g. ``"bdist_wheel"``), else None:
    then the type is derived from the filename. ``provenance`` is the absolute URL of the file's PEP 740
    provenance object, when the index names one.
    """

    filename: str
    url: str
    sha256: Sha256 | None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: datetime | None = None
    core_metadata: bool = False
    core_metadata_sha256: Sha256 | None = None
    packagetype: str | None = None
    provenance: str | None = None


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project's simple page: its normalized name, display name and files.

    ``last_serial`` comes from PEP 691 ``meta._last-serial`` or the ``X-PyPI-Last-Serial`` header.
    ``versions`` is PEP 700's list, when the index gave one. ``status`` and ``status_reason`` are the
    project's PEP 792 status (``"active"``, ``"archived"``, ``"quarantined"``, ``"deprecated"``, or
    another the index defines) and its reason, when the index gave them (simple API 1.4).
    """

    name: NormalizedName
    display_name: str
    files: tuple[DistFile, ...]
    last_serial: int | None = None
    versions: tuple[str, ...] = ()
    status: str | None = None
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ListedProject:
    """One entry of the index's project listing (``/simple/``)."""

    name: NormalizedName
    display_name: str
    last_serial: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectListing:
    """The index's whole project listing."""

    projects: tuple[ListedProject, ...]
    last_serial: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
