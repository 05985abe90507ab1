"""A distribution's declared dependencies, read out of its core metadata: the pure half of issue 19's
metadata source (``mirrorflow.tasks.dist_metadata`` fetches the bytes).

Which metadata can be trusted to state the dependencies (the core metadata specification):

- a wheel's ``METADATA``, or the index's PEP 658 ``.metadata`` file (a copy of it): always; its
  ``Requires-Dist`` is what the wheel installs;
- an sdist's ``PKG-INFO``: only at ``Metadata-Version`` 2.2 or later (PEP 643) and when ``Requires-Dist``
  is not listed in ``Dynamic``; otherwise a build could produce other dependencies, and mirrorflow never
  runs a build to find out: the release is reported as "dependencies unknown", with the reason.

Parsing is ``packaging.metadata.parse_email`` (the email header format, leniently); each ``Requires-Dist``
is checked with ``packaging.requirements.Requirement``: an invalid one is left out and named in the
reason, the others are kept.

Pure: imports only the standard library and ``packaging``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from packaging.metadata import RawMetadata, parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

__all__ = [
    "DependencySource",
    "DistDependencies",
    "MIN_STATIC_SDIST_METADATA",
    "dependencies_from_metadata",
    "dependencies_from_pkg_info",
    "unknown",
]

#: The first ``Metadata-Version`` whose sdist ``PKG-INFO`` can be trusted (PEP 643: ``Dynamic``).
MIN_STATIC_SDIST_METADATA = Version("2.2")


class DependencySource(enum.StrEnum):
    """Where a ``DistDependencies`` came from, cheapest first (issue 19)."""

    CACHE = "cache"  # read before, kept in the catalog by file sha256
    METADATA_FILE = "metadata-file"  # the index's PEP 658 / 714 ``<file>.metadata``
    WHEEL_RANGE = "wheel-range"  # the wheel's METADATA, read with HTTP range requests
    WHEEL_DOWNLOAD = "wheel-download"  # the wheel's METADATA, out of the whole downloaded wheel
    SDIST_PKG_INFO = "sdist-pkg-info"  # a static (Metadata-Version >= 2.2) sdist PKG-INFO
    UNKNOWN = "unknown"  # none of the above could say; ``reason`` tells why


@dataclass(frozen=True, slots=True)
class DistDependencies:
    """A distribution file's ``Requires-Dist`` entries, or None when they are unknown.

    ``requires_dist`` holds each entry as written in the metadata (each one parses as a
    ``packaging.requirements.Requirement``); ``()`` means "no dependencies", None "unknown".
    ``source`` is a ``DependencySource`` value. ``reason`` says, in one line, why they are unknown, or
    which invalid entries were left out of known ones; empty otherwise.
    """

    requires_dist: tuple[str, ...] | None
    source: str
    reason: str = ""

    @property
    def known(self) -> bool:
        """True when the dependencies are known (possibly none)."""
        return self.requires_dist is not None


def unknown(reason: str) -> DistDependencies:
    """Return "dependencies unknown" for ``reason`` (one line: newlines are folded).

    >>> unknown("sdist PKG-INFO is Metadata-Version 2.1")
    DistDependencies(requires_dist=None, source='unknown', reason='sdist PKG-INFO is Metadata-Version 2.1')
    """
    return DistDependencies(None, DependencySource.UNKNOWN.value, " ".join(reason.split()))


def dependencies_from_metadata(data: bytes, *, source: DependencySource) -> DistDependencies:
    """Return the dependencies a wheel's ``METADATA`` (or its PEP 658 copy) ``data`` declares.

    A wheel's metadata is static whatever its ``Metadata-Version``, so the answer is known unless the
    bytes are not core metadata at all (no ``Name``/``Version``: unknown, with the reason).

    >>> deps = dependencies_from_metadata(
    ...     b"Metadata-Version: 2.1\\nName: a\\nVersion: 1\\nRequires-Dist: b>=1\\nRequires-Dist: c; extra == 'x'\\n",
    ...     source=DependencySource.METADATA_FILE,
    ... )
    >>> deps.requires_dist, deps.source
    (('b>=1', "c; extra == 'x'"), 'metadata-file')
    """
    raw, problem = _parse(data)
    if problem:
        return unknown(problem)
    return _requirements(raw.get("requires_dist", []), source=source)


def dependencies_from_pkg_info(data: bytes) -> DistDependencies:
    """Return the dependencies an sdist's ``PKG-INFO`` ``data`` declares, when it can be trusted.

    Known (``()`` when it lists none) at ``Metadata-Version`` 2.2 or later with ``Requires-Dist`` not
    ``Dynamic``; otherwise unknown, with the reason.

    >>> dependencies_from_pkg_info(b"Metadata-Version: 2.1\\nName: a\\nVersion: 1\\n").reason
    "sdist PKG-INFO is Metadata-Version '2.1' (before 2.2): its dependencies may be computed by a build"
    >>> dependencies_from_pkg_info(b"Metadata-Version: 2.2\\nName: a\\nVersion: 1\\n").requires_dist
    ()
    """
    raw, problem = _parse(data)
    if problem:
        return unknown(problem)
    declared = raw.get("metadata_version", "")
    try:
        metadata_version = Version(declared)
    except InvalidVersion:
        return unknown(f"sdist PKG-INFO has an invalid Metadata-Version {declared!r}")
    if metadata_version < MIN_STATIC_SDIST_METADATA:
        return unknown(
            f"sdist PKG-INFO is Metadata-Version {declared!r} (before 2.2): "
            "its dependencies may be computed by a build"
        )
    if any(field.strip().lower() == "requires-dist" for field in raw.get("dynamic", [])):
        return unknown("sdist PKG-INFO marks Requires-Dist as Dynamic: only a build can tell")
    return _requirements(raw.get("requires_dist", []), source=DependencySource.SDIST_PKG_INFO)


def _parse(data: bytes) -> tuple[RawMetadata, str]:
    """Parse core metadata leniently; return the raw fields and a problem ("" when usable)."""
    raw, unparsed = parse_email(data)
    if "name" not in raw or "version" not in raw:
        return raw, "the metadata has no Name or Version: not core metadata"
    # parse_email puts a field it cannot read (a bad encoding, a repeated single field) in
    # ``unparsed``: a Requires-Dist there is unreadable, not absent.
    if any(key.lower() == "requires-dist" for key in unparsed):
        return raw, "the metadata's Requires-Dist cannot be read (encoding)"
    return raw, ""


def _requirements(entries: list[str], *, source: DependencySource) -> DistDependencies:
    """Keep the entries that parse as requirements; name the others in the reason."""
    kept: list[str] = []
    invalid: list[str] = []
    for entry in entries:
        try:
            Requirement(entry)
        except InvalidRequirement:
            invalid.append(entry)
        else:
            kept.append(entry.strip())
    reason = f"invalid Requires-Dist left out: {', '.join(repr(e) for e in invalid)}" if invalid else ""
    return DistDependencies(tuple(kept), source.value, reason)
