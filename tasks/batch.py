"""One batch of a sync: fetch project pages, select files, download or record, stage.

This is the thin I/O shell around the pure decisions (``tasks.filters``). A batch is idempotent:
packages and artifacts are content-addressed and written with ``ON CONFLICT DO NOTHING``, so a
batch that is retried, or a sync that is rerun after a crash, reuses what is already there.

Write order (so that a crash at any point leaves nothing dangling): objects into the artifact
store -> package rows -> artifact rows (linking packages) -> staging rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from packaging.utils import NormalizedName, canonicalize_name

from storage.artifacts import ArtifactStore, DigestMismatch, StoreUnavailable
from storage.content import ContentWriter, NewPackage
from tasks.distributions import DistFile, ProjectPage
from tasks.filters import Candidate, FilterSpec, included_project_names, select_files, wanted_projects
from tasks.index_client import IndexClient, ProjectNotFound, TransientError
from tasks.retrying import call_with_retries

__all__ = ["SyncPlan", "SyncServices", "BatchReport", "list_projects", "sync_projects", "SyncFailed"]

log = logging.getLogger(__name__)

_TRANSIENT = (TransientError, StoreUnavailable)


class SyncFailed(Exception):
    """The sync could not complete; ``failures`` maps each failed project to why. No version was made."""

    def __init__(self, repository: str, failures: dict[str, str]) -> None:
        self.repository, self.failures = repository, failures
        shown = "; ".join(f"{name}: {why}" for name, why in sorted(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(
            f"sync of repository {repository!r} failed for {len(failures)} project(s), no new version: "
            f"{shown}{more}. Rerun the sync to finish the job."
        )


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What one sync does: the decisions' inputs, fixed when the sync starts."""

    sync_id: str
    repository: str
    repository_id: int
    remote: str
    policy: str
    spec: FilterSpec
    now: datetime
    concurrency: int
    attempts: int


@dataclass(slots=True)
class SyncServices:
    """The I/O collaborators of a sync, built once by the flow."""

    index: IndexClient
    store: ArtifactStore
    writer: ContentWriter
    on_progress: Callable[[int], None] | None = None


@dataclass(slots=True)
class BatchReport:
    """What a batch did; reports add up (``+``) into the sync's report."""

    projects: int = 0
    files_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    not_found: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    downloaded_files: int = 0
    downloaded_bytes: int = 0

    def __add__(self, other: BatchReport) -> BatchReport:
        return BatchReport(
            projects=self.projects + other.projects,
            files_kept=self.files_kept + other.files_kept,
            skipped=self.skipped + other.skipped,
            not_found=sorted(self.not_found + other.not_found),
            failures={**self.failures, **other.failures},
            downloaded_files=self.downloaded_files + other.downloaded_files,
            downloaded_bytes=self.downloaded_bytes + other.downloaded_bytes,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "projects": self.projects,
            "files_kept": self.files_kept,
            "skipped": dict(sorted(self.skipped.items())),
            "not_found": self.not_found,
            "failures": self.failures,
            "downloaded_files": self.downloaded_files,
            "downloaded_bytes": self.downloaded_bytes,
        }


def list_projects(spec: FilterSpec, index: IndexClient, *, attempts: int) -> list[NormalizedName]:
    """Return the projects to sync: the includes' names, or the whole listing minus name-only excludes."""
    if spec.includes:
        return included_project_names(spec)
    listing = call_with_retries(index.get_listing, attempts=attempts, transient=_TRANSIENT)
    return wanted_projects((p.name for p in listing.projects), spec)


@dataclass(slots=True)
class _ProjectResult:
    name: str
    packages: list[NewPackage] = field(default_factory=list)
    stored: list[tuple[str, int, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    not_found: bool = False
    failure: str | None = None
    downloaded_bytes: int = 0


def sync_projects(names: Sequence[str], plan: SyncPlan, services: SyncServices) -> BatchReport:
    """Sync one batch of projects and stage what they contribute. Returns the batch's report."""
    with ThreadPoolExecutor(max_workers=min(plan.concurrency, max(len(names), 1))) as pool:
        results = list(pool.map(lambda name: _sync_project(name, plan, services), names))
    report = BatchReport(projects=len(names))
    packages: list[NewPackage] = []
    stored: list[tuple[str, int, str]] = []
    for result in results:
        report.skipped += result.skipped
        if result.not_found:
            report.not_found.append(result.name)
        if result.failure is not None:
            report.failures[result.name] = result.failure
            continue
        packages.extend(result.packages)
        stored.extend(result.stored)
        report.downloaded_bytes += result.downloaded_bytes
    report.files_kept = len(packages)
    report.downloaded_files = len(stored)
    if report.failures:
        return report  # the sync will fail; nothing of this batch is staged
    ids = services.writer.upsert_packages(packages)
    services.writer.record_artifacts(stored)
    services.writer.stage(plan.sync_id, plan.repository_id, ids.values())
    if services.on_progress is not None:
        services.on_progress(len(names))
    return report


def _sync_project(name: str, plan: SyncPlan, services: SyncServices) -> _ProjectResult:
    result = _ProjectResult(name=name)
    try:
        page = call_with_retries(
            lambda: services.index.get_project(name), attempts=plan.attempts, transient=_TRANSIENT
        )
    except ProjectNotFound:
        result.not_found = True
        return result
    except Exception as exc:  # reported per project; the sync fails as a whole below
        result.failure = _describe(exc)
        return result
    selection = select_files(canonicalize_name(name), page.files, plan.spec, now=plan.now)
    result.skipped.update(skip.reason.value for skip in selection.skipped)
    immediate = plan.policy == "immediate"
    known = (
        services.writer.known_artifacts(c.file.sha256 for c in selection.kept if c.file.sha256)
        if immediate
        else set()
    )
    for candidate in selection.kept:
        file = candidate.file
        sha256, size = file.sha256, file.size
        if immediate and (sha256 is None or sha256 not in known):
            try:
                artifact = call_with_retries(
                    lambda f=file: _download(f, services), attempts=plan.attempts, transient=_TRANSIENT
                )
            except Exception as exc:
                result.failure = f"{file.filename}: {_describe(exc)}"
                return result
            result.stored.append((artifact.sha256, artifact.size, artifact.key))
            result.downloaded_bytes += artifact.size
            sha256, size = artifact.sha256, artifact.size
        elif sha256 is None:
            result.skipped["no-sha256"] += 1  # on_demand/streamed cannot verify later without it
            continue
        result.packages.append(_package(page, candidate, sha256, size))
    return result


def _download(file: DistFile, services: SyncServices):  # type: ignore[no-untyped-def]
    with services.index.stream_file(file.url) as response:
        return services.store.put_chunks(response.iter_bytes(), sha256=file.sha256, size=file.size)


def _package(page: ProjectPage, candidate: Candidate, sha256: str, size: int | None) -> NewPackage:
    file, parsed = candidate.file, candidate.parsed
    return NewPackage(
        name=page.display_name,
        normalized_name=page.name,
        version=str(parsed.version),
        filename=file.filename,
        packagetype=file.packagetype or parsed.packagetype,
        python_version=parsed.python_version,
        requires_python=file.requires_python,
        sha256=sha256,
        size=size,
        upload_time=file.upload_time,
        yanked=file.yanked,
        yanked_reason=file.yanked_reason,
        metadata_sha256=file.core_metadata_sha256,
        has_metadata=file.core_metadata,
        url=file.url,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DigestMismatch):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
