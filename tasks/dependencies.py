"""The dependencies stage of a closure round: a batch's pages -> each selected release's Requires-Dist.

``mirrorflow.tasks.stages.dependencies_batch`` resolves a batch of projects (``mirrorflow.tasks.resolve``), filters each page
under the round's spec (``mirrorflow.tasks.stages.filter_batch``: every filter applies to
dependencies too), then reads the requirements of every selected release through a
``DependencyReader`` (one file per release: :func:`metadata_order`). What it returns is small
(``mirrorflow.tasks.closure.ProjectDependencies``): the pages are dropped with the batch, so a
closure round holds one batch of pages at a time, whatever the size of the closure.

The reader is the metadata source's (issue 19: PEP 658/714 ``.metadata``, wheel range requests,
sdist PKG-INFO, cached by sha256). Until that module is merged, :class:`MetadataFileReader` reads
the PEP 658 ``.metadata`` file only, and calls a release without one "dependencies unknown".
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirrorflow.tasks.closure import ProjectDependencies, ReleaseDependencies
from mirrorflow.tasks.filters import Candidate
from mirrorflow.tasks.index_client import IndexClient
from mirrorflow.tasks.report import TRANSIENT, describe
from mirrorflow.tasks.resolve import ResolvedProject
from mirrorflow.tasks.retrying import call_with_retries

__all__ = [
    "DependencyReader",
    "DistDependencies",
    "MetadataFileReader",
    "project_dependencies",
    "release_dependencies",
    "metadata_order",
    "requires_dist_of",
]

log = logging.getLogger(__name__)

#: Largest ``.metadata`` file read (core metadata is kilobytes; a bigger one is not metadata).
_MAX_METADATA_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DistDependencies:
    """What one file's metadata says a release requires (the metadata source's interface)."""

    requires_dist: tuple[str, ...] | None  # None: unknown
    source: str  # "cache" | "metadata-file" | "wheel-range" | "wheel-download" | "sdist-pkg-info" | "unknown"
    reason: str = ""


class DependencyReader(Protocol):
    """Reads one distribution file's Requires-Dist (``mirrorflow.tasks.dist_metadata`` on branch meta)."""

    def read(
        self, *, filename: str, url: str, sha256: str | None, metadata_url: str | None
    ) -> DistDependencies:
        """Return the file's requirements, or why they are unknown; never raises for the file's own fault."""
        ...


def requires_dist_of(metadata: bytes) -> tuple[str, ...]:
    """The Requires-Dist lines of core metadata (``packaging.metadata``'s lenient parse).

    >>> requires_dist_of(b"Metadata-Version: 2.1\\nName: a\\nRequires-Dist: b>=1\\nRequires-Dist: c; extra == 'x'\\n")
    ('b>=1', "c; extra == 'x'")
    """
    raw, _unparsed = parse_email(metadata)
    return tuple(raw.get("requires_dist", ()))


class MetadataFileReader:
    """The PEP 658/714 ``.metadata`` file only, cached by the file's sha256 for this process.

    A stand-in for the metadata source of branch ``meta`` (wheel range requests, sdist PKG-INFO and
    a catalog cache): a file without a ``.metadata`` is "dependencies unknown" here.
    """

    def __init__(self, index: IndexClient, *, attempts: int) -> None:
        self._index = index
        self._attempts = attempts
        self._cache: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def read(
        self, *, filename: str, url: str, sha256: str | None, metadata_url: str | None
    ) -> DistDependencies:
        if sha256 is not None:
            with self._lock:
                cached = self._cache.get(sha256)
            if cached is not None:
                return DistDependencies(cached, "cache")
        if metadata_url is None:
            return DistDependencies(
                None, "unknown", "no .metadata file (the metadata source is not merged yet)"
            )
        try:
            body = call_with_retries(
                lambda: self._get(metadata_url), attempts=self._attempts, transient=TRANSIENT
            )
            requires = requires_dist_of(body)
        except Exception as exc:  # the file's own fault: reported as unknown, never guessed
            return DistDependencies(None, "unknown", f"reading {filename}.metadata: {describe(exc)}")
        if sha256 is not None:
            with self._lock:
                self._cache[sha256] = requires
        return DistDependencies(requires, "metadata-file")

    def _get(self, url: str) -> bytes:
        with self._index.stream_file(url) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > _MAX_METADATA_BYTES:
                    raise ValueError(f"{url!r} is over {_MAX_METADATA_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)


def metadata_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    """One release's kept files in the order their metadata is tried: a ``.metadata`` file first,
    then wheels (a pure-Python one first: its requirements hold on every platform), then the rest."""

    def key(c: Candidate) -> tuple[bool, bool, bool, str]:
        wheel = c.file.filename.endswith(".whl")
        return (
            not c.file.core_metadata,
            not wheel,
            not c.file.filename.endswith("-any.whl"),
            c.file.filename,
        )

    return sorted(candidates, key=key)


def _metadata_url(candidate: Candidate) -> str | None:
    # PEP 658: the file's URL (without its fragment) with ".metadata" appended.
    return candidate.file.url.split("#", 1)[0] + ".metadata" if candidate.file.core_metadata else None


def release_dependencies(
    version: Version, candidates: Sequence[Candidate], reader: DependencyReader
) -> ReleaseDependencies:
    """Read one release's requirements: its files in ``metadata_order``, up to the first known answer."""
    reasons = []
    ordered = metadata_order(candidates)
    for candidate in ordered[:3]:  # three files are plenty: the rest say the same or nothing
        answer = reader.read(
            filename=candidate.file.filename,
            url=candidate.file.url,
            sha256=candidate.file.sha256,
            metadata_url=_metadata_url(candidate),
        )
        if answer.requires_dist is not None:
            return ReleaseDependencies(version, candidate.file.filename, answer.requires_dist, answer.source)
        reasons.append(answer.reason or answer.source)
    return ReleaseDependencies(version, ordered[0].file.filename, None, "unknown", "; ".join(reasons))


def project_dependencies(project: ResolvedProject, reader: DependencyReader) -> ProjectDependencies:
    """One filtered project's selected releases and their requirements."""
    name = canonicalize_name(project.name)
    if project.not_found:
        return ProjectDependencies(name, found=False)
    if project.selection is None:  # a failure (the sync's stages report it again) or a stale page
        why = project.failure or ("not modified" if project.not_modified else "a stale page")
        log.warning("%s: the dependency closure could not read its page: %s", project.name, why)
        return ProjectDependencies(name, found=True, failure=why)
    by_version: dict[Version, list[Candidate]] = defaultdict(list)
    for candidate in project.selection.kept:
        by_version[candidate.parsed.version].append(candidate)
    releases = tuple(release_dependencies(v, by_version[v], reader) for v in sorted(by_version))
    return ProjectDependencies(name, found=True, releases=releases)
