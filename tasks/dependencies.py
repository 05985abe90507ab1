"""The dependencies stage of a closure round: a batch's pages -> each selected release's Requires-Dist.

``mirrorflow.tasks.stages.dependencies_batch`` resolves a batch of projects (``mirrorflow.tasks.resolve``), filters each page
under the round's spec (``mirrorflow.tasks.stages.filter_batch``: every filter applies to
dependencies too), then reads the requirements of every selected release through a
``DependencyReader`` (one file per release: :func:`metadata_order`). What it returns is small
(``mirrorflow.tasks.closure.ProjectDependencies``): the pages are dropped with the batch, so a
closure round holds one batch of pages at a time, whatever the size of the closure.

The reader is the metadata source's (``mirrorflow.tasks.dist_metadata``: PEP 658/714 ``.metadata``,
wheel range requests, static sdist PKG-INFO, cached by sha256 in the catalog).

The page memory (``mirrorflow.storage.closure_pages``) makes a resync cheap: a project's outcome is
remembered with its page's validators under :func:`closure_page_key` (what else the outcome depended
on), the next evaluation under the same key asks for the page conditionally, and a 304 gives the
remembered outcome back (:func:`remembered_outcome`) without the page or a metadata read. Only
outcomes that every later sync would repeat are remembered (:func:`page_to_remember`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirrorflow.storage.closure_pages import RememberedPage
from mirrorflow.storage.serials import Touched
from mirrorflow.tasks.closure import ProjectDependencies, ReleaseDependencies
from mirrorflow.tasks.config import Policy, SyncConfig
from mirrorflow.tasks.dist_metadata import DependencyReader, metadata_url_of
from mirrorflow.tasks.filters import Candidate
from mirrorflow.tasks.resolve import ResolvedProject

__all__ = [
    "closure_page_key",
    "page_to_remember",
    "project_dependencies",
    "remembered_outcome",
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


def closure_page_key(name: str, config: SyncConfig) -> str:
    """A sha256 of what evaluating project ``name`` depends on besides its page: the index, every
    filter of ``config`` (the round's), the includes naming ``name``, the blocklist; and the sync's
    time when an upload-age quarantine (``min_upload_age``) makes the selection move with the clock
    (such a remote's pages are then never reused). Equal keys and an unchanged page: equal outcomes."""
    spec = config.spec
    project = canonicalize_name(name)
    fields = {
        "v": 1,
        "index": config.http.index_url,
        "project": project,
        "includes": sorted(str(r) for r in spec.includes if canonicalize_name(r.name) == project),
        "excludes": sorted(str(r) for r in spec.excludes),
        "prereleases": spec.prereleases,
        "package_types": sorted(spec.package_types),
        "exclude_platforms": sorted(spec.exclude_platforms),
        "keep_latest_packages": spec.keep_latest_packages,
        "min_upload_age": None if spec.min_upload_age is None else spec.min_upload_age.total_seconds(),
        "now": None if spec.min_upload_age is None else config.now.isoformat(),
        "missing_upload_time": spec.missing_upload_time,
        "python_versions": [str(v) for v in spec.python_versions],
        "skip_yanked": spec.skip_yanked,
        "keep_quarantined": spec.keep_quarantined,
        "require_sha256": config.policy is not Policy.IMMEDIATE,
        "max_file_bytes": config.max_file_bytes,
        "blocklist": sorted(config.blocklist),
        "block_advisories": sorted(config.block_advisories),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def page_to_remember(outcome: ProjectDependencies, touched: Touched | None) -> RememberedPage | None:
    """What to remember of a freshly fetched page's ``outcome``, or None: nothing when the page gave
    no validator to ask with next time, or when the outcome may differ next time (a failure, or a
    release whose dependencies are unknown: the reason may be a network error a resync would retry)."""
    if touched is None or not (touched.etag or touched.last_modified) or outcome.failure or not outcome.found:
        return None
    if any(r.requires_dist is None for r in outcome.releases):
        return None
    releases = tuple(
        (str(r.version), r.filename, r.requires_dist, r.source, r.reason) for r in outcome.releases
    )
    return RememberedPage(touched.etag, touched.last_modified, releases)


def remembered_outcome(name: str, page: RememberedPage) -> ProjectDependencies:
    """The outcome a remembered page gave (its page answered 304 under the same key)."""
    releases = tuple(
        ReleaseDependencies(Version(v), filename, requires, source, reason)
        for v, filename, requires, source, reason in page.releases
    )
    return ProjectDependencies(canonicalize_name(name), found=True, releases=releases)
