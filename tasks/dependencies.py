"""The dependencies stage of a closure round: a batch's pages -> each selected release's Requires-Dist.

``mirrorflow.tasks.stages.dependencies_batch`` resolves a batch of projects (``mirrorflow.tasks.resolve``), filters each page
under the round's spec (``mirrorflow.tasks.stages.filter_batch``: every filter applies to
dependencies too), then reads the requirements of every selected release through a
``DependencyReader`` (one file per release: :func:`metadata_order`). What it returns is small
(``mirrorflow.tasks.closure.ProjectDependencies``): the pages are dropped with the batch, so a
closure round holds one batch of pages at a time, whatever the size of the closure.

The reader is the metadata source's (``mirrorflow.tasks.dist_metadata``: PEP 658/714 ``.metadata``,
wheel range requests, static sdist PKG-INFO, cached by sha256 in the catalog).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirrorflow.tasks.closure import ProjectDependencies, ReleaseDependencies
from mirrorflow.tasks.dist_metadata import DependencyReader, metadata_url_of
from mirrorflow.tasks.filters import Candidate
from mirrorflow.tasks.resolve import ResolvedProject

__all__ = [
    "project_dependencies",
    "release_dependencies",
    "metadata_order",
]

log = logging.getLogger(__name__)


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
            metadata_url=metadata_url_of(candidate.file),
            metadata_sha256=candidate.file.core_metadata_sha256,
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
