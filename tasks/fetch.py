"""The fetch stage: download or record a batch's kept files, then stage what the batch contributes.

Policy ``immediate``: every kept file is downloaded over the shared fetch pool, file by file, one
download per digest; an object already whole in the store under its digest (a killed or failed sync
stored it) is reused, not fetched again (resume); bytes that fail their digest twice are left out and
the project retried next sync (quarantine). Policies ``on_demand`` and ``streamed``: the files are
recorded, to be fetched on first request (``server``). Then the batch's rows are written and staged
for the commit, with the serial memory of the projects it touched.

A batch is idempotent: packages and artifacts are content-addressed and written with
``ON CONFLICT DO NOTHING``, so a batch that is retried, or a sync that is rerun after a crash,
reuses what is already there. Write order (so that a crash at any point leaves nothing dangling):
objects into the artifact store -> package rows -> artifact rows (linking packages) -> staging rows.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from mirrorflow.storage.artifacts import (
    ArtifactStore,
    ArtifactStoreError,
    ArtifactTooLarge,
    DigestMismatch,
    Putter,
    StoredArtifact,
    artifact_key,
)
from mirrorflow.storage.content import NewPackage
from mirrorflow.storage.project_statuses import latest_filenames, latest_statuses
from mirrorflow.storage.schema import Policy
from mirrorflow.storage.serials import Touched
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import SyncConfig
from mirrorflow.tasks.distributions import DistFile, ProjectPage
from mirrorflow.tasks.filters import Candidate, SkipReason
from mirrorflow.tasks.index_client import IndexClient, IndexClientError
from mirrorflow.tasks.project_status import ProjectStatus, gone_files, status_changes, withdraws
from mirrorflow.tasks.provenance import sync_provenance
from mirrorflow.tasks.report import BUG, TRANSIENT, BatchReport, advice_for, describe
from mirrorflow.tasks.resolve import ResolvedBatch, ResolvedProject
from mirrorflow.tasks.retrying import call_with_retries
from mirrorflow.tasks.workers import Pacer, pulled, shared_pool

__all__ = ["fetch_batch", "package_record"]

log = logging.getLogger(__name__)
#: Progress lines of long downloads, at INFO (``mirrorflow.flows.logs`` sends them to the run's logs).
progress = logging.getLogger("mirrorflow.tasks.progress")


@dataclass(slots=True)
class _ProjectResult:
    """What the fetch stage makes of one resolved project."""

    name: str
    page: ProjectPage | None
    touched: Touched | None
    failure: str | None
    advice: str | None
    packages: list[NewPackage] = field(default_factory=list)
    stored: list[tuple[str, int, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    downloaded_bytes: int = 0
    legacy_filenames: int = 0
    resumed_files: int = 0
    unverifiable: dict[str, str] = field(default_factory=dict)
    advisories: dict[str, str] = field(default_factory=dict)
    #: Kept files to download (immediate policy): fetched for the whole batch at once.
    downloads: list[Candidate] = field(default_factory=list)


def fetch_batch(batch: ResolvedBatch, config: SyncConfig, services: SyncServices) -> BatchReport:
    """Download or record the kept files of ``batch`` (filtered), stage them; return the batch's report."""
    immediate = config.policy is Policy.IMMEDIATE
    results = [_planned(project, immediate=immediate) for project in batch.projects]
    pool, pacer = shared_pool(config.concurrency)
    stored_any, reused = _download_all(results, config, services, pool, pacer)
    report = BatchReport(projects=len(batch))
    packages: list[NewPackage] = []
    stored: list[tuple[str, int, str]] = []
    touched: list[Touched] = []
    provenance: dict[str, tuple[str, str]] = {}  # kept files' sha256 -> (upstream provenance URL, filename)
    for project, result in zip(batch.projects, results, strict=True):
        report.skipped += result.skipped
        report.advisories.update(result.advisories)
        report.not_modified += project.not_modified
        page = result.page
        if page is not None and page.status is not None and page.status != "active":
            reason = f": {page.status_reason}" if page.status_reason else ""
            report.project_status[result.name] = f"{page.status}{reason}"
        if project.not_found:
            report.not_found.append(result.name)
        if result.failure is not None:
            # A failed project keeps exactly its previous content and memory: nothing of it is
            # staged, and "stale" makes the commit keep it and the next sync retry it.
            report.failures[result.name] = result.failure
            report.advice[result.name] = result.advice or BUG
            touched.append(Touched(result.name, "stale"))
            report.stale.append(result.name)
            continue
        if result.unverifiable:
            # Its verified files commit; the project is retried next time for the quarantined ones.
            report.unverifiable.update(result.unverifiable)
            result.touched = Touched(result.name, "stale")
        if result.touched is not None:
            touched.append(result.touched)
            if result.touched.state == "stale":
                report.stale.append(result.name)
        packages.extend(result.packages)
        _provenance_of(project, result, into=provenance)
        stored.extend(result.stored)
        report.downloaded_bytes += result.downloaded_bytes
        report.legacy_filenames += result.legacy_filenames
        report.resumed_files += result.resumed_files
    report.files_kept = len(packages)
    report.downloaded_files = len(stored) - report.resumed_files
    _compare_with_latest(batch, config, services, report)
    # Staged even when some projects failed: whether the sync may commit without them is the
    # flow's decision (``tasks.outcome``); a sync that may not discards what was staged.
    ids = services.writer.upsert_packages(packages)
    services.writer.record_artifacts(stored_any)  # after the packages: it links them
    services.writer.link_artifacts(reused)  # a digest stored before, by a sync that failed, say
    # Before the staging rows: the version's pages offer a provenance from their commit on.
    found = sync_provenance(
        provenance,
        repository_id=config.repository_id,
        immediate=immediate,
        catalog=services.writer.catalog,
        index=services.index,
        pool=pool,
        concurrency=config.concurrency,
        pacer=pacer,
        attempts=config.attempts,
    )
    report.provenance_recorded, report.provenance_fetched = found.recorded, found.fetched
    report.provenance_failed = found.failed
    services.writer.stage(config.sync_id, config.repository_id, ids.values())
    services.memory.touch(config.sync_id, config.repository_id, touched)
    return report


def _provenance_of(
    project: ResolvedProject, result: _ProjectResult, *, into: dict[str, tuple[str, str]]
) -> None:
    """Add the kept files of ``project`` whose page names a PEP 740 provenance, by their package's sha256."""
    if project.selection is None or not result.packages:
        return
    digests: dict[str, str] | None = None  # built only for a project whose page names a provenance
    for candidate in project.selection.kept:
        file = candidate.file
        if file.provenance is None:
            continue
        if digests is None:
            digests = {package.filename: package.sha256 for package in result.packages}
        digest = digests.get(file.filename)
        if digest is not None:
            into.setdefault(digest, (file.provenance, file.filename))


def _compare_with_latest(
    batch: ResolvedBatch, config: SyncConfig, services: SyncServices, report: BatchReport
) -> None:
    """What the upstream changed since the latest version: statuses (PEP 792), quarantines, takedowns.

    Failed projects keep their content and their status; the next sync compares them again.
    """
    pages = {p.name: p.page for p in batch.projects if p.page is not None and p.name not in report.failures}
    not_found = [p.name for p in batch.projects if p.not_found]
    if not pages and not not_found:
        return
    catalog = services.writer.catalog
    current = {
        name: (page.status, page.status_reason) if page.status else None for name, page in pages.items()
    }
    for change in status_changes(latest_statuses(catalog, config.repository_id, pages), current):
        report.status_changes[change.project] = str(change)
        report.new_statuses[change.project] = change.after
    keep = config.spec.keep_quarantined
    report.withdrawn = sorted(n for n, page in pages.items() if withdraws(page.status, keep_quarantined=keep))
    held = latest_filenames(catalog, config.repository_id, {*pages, *not_found})
    # A quarantined page lists no file: that is its status, reported as such, not a takedown.
    listed = {
        name: [file.filename for file in page.files]
        for name, page in pages.items()
        if page.status != ProjectStatus.QUARANTINED
    }
    report.gone_upstream_files = gone_files(held, listed)
    report.gone_upstream_projects = sorted(name for name in not_found if name in held)


def _planned(project: ResolvedProject, *, immediate: bool) -> _ProjectResult:
    """What to do with one project's kept files: download them (immediate), or record them now."""
    result = _ProjectResult(project.name, project.page, project.touched, project.failure, project.advice)
    selection = project.selection
    if project.page is None or selection is None or project.failure is not None:
        return result
    result.skipped.update(skip.reason.value for skip in selection.skipped)
    result.advisories.update(
        (skip.file.filename, skip.detail) for skip in selection.skipped if skip.reason is SkipReason.ADVISORY
    )
    result.legacy_filenames = sum(candidate.parsed.by_project for candidate in selection.kept)
    for candidate in selection.kept:
        file = candidate.file
        if immediate:
            result.downloads.append(candidate)
        elif file.sha256 is None:  # the filter refuses these for the policies that record files now
            raise RuntimeError(f"{file.filename!r} has no sha256 yet was kept with require_sha256 off")
        else:
            result.packages.append(package_record(project.page, candidate, file.sha256, file.size))
    return result


def _download_all(
    results: list[_ProjectResult],
    config: SyncConfig,
    services: SyncServices,
    pool: ThreadPoolExecutor,
    pacer: Pacer,
) -> tuple[list[tuple[str, int, str]], set[str]]:
    """Download the batch's files (immediate policy) over the pool, file by file, and file them
    under their projects; return what was stored, and the digests reused (stored before).

    File by file, not project by project: one project's hundreds of files would otherwise
    download one after another in one thread. A digest already stored is reused (and touched), a
    digest listed twice is fetched once. The downloads are published and made durable together
    when the store's ``deferred()`` scope exits, before any row that names them is written.
    """
    # Only a project with a page has downloads (``_planned``): the page is named here for the type.
    wanted = [
        (r, r.page, c) for r in results if r.failure is None and r.page is not None for c in r.downloads
    ]
    if not wanted:
        return [], set()
    known = services.writer.known_artifacts(c.file.sha256 for _, _, c in wanted if c.file.sha256)
    fetch: dict[str, DistFile] = {}  # one download per digest (or per URL when none is listed)
    for _, _, candidate in wanted:
        file = candidate.file
        if file.sha256 not in known:
            fetch.setdefault(file.sha256 or file.url, file)
    with services.store.deferred() as putter:
        fetched = pulled(
            pool,
            config.concurrency,
            lambda file: _resume(file, services.store) or _fetch_file(file, config, services.index, putter),
            list(fetch.values()),
            pacer=pacer,
        )
        outcomes = dict(zip(fetch, fetched, strict=True))
    stored: dict[str, tuple[str, int, str]] = {}
    for result, page, candidate in wanted:
        file = candidate.file
        if file.sha256 in known:
            result.packages.append(package_record(page, candidate, file.sha256, file.size))
            continue
        outcome = outcomes[file.sha256 or file.url]
        if isinstance(outcome, StoredArtifact):
            first = outcome.sha256 not in stored
            stored[outcome.sha256] = (outcome.sha256, outcome.size, outcome.key)
            result.packages.append(package_record(page, candidate, outcome.sha256, outcome.size))
            if first:  # counted once, under the first project that listed it
                result.stored.append(stored[outcome.sha256])
                if isinstance(outcome, _Resumed):
                    result.resumed_files += 1
                else:
                    result.downloaded_bytes += outcome.size
        elif isinstance(outcome, DigestMismatch):  # twice: quarantined, the project's other files commit
            log.warning("%s: leaving out %r: %s", result.name, file.filename, outcome)
            result.skipped[SkipReason.UNVERIFIABLE.value] += 1
            result.unverifiable[file.filename] = str(outcome)
        elif isinstance(outcome, ArtifactTooLarge):  # no size was declared, or the store's limit is lower
            log.warning("%s: skipping %r (too-large while downloading)", result.name, file.filename)
            result.skipped[SkipReason.TOO_LARGE.value] += 1
        elif result.failure is None:
            # An index client error names the URL it failed on; others get the file's URL here.
            where = "" if isinstance(outcome, IndexClientError) else f" ({file.url})"
            result.failure = f"{file.filename}{where}: {describe(outcome)}"
            result.advice = advice_for(outcome)
    return list(stored.values()), known


@dataclass(frozen=True, slots=True)
class _Resumed(StoredArtifact):
    """An object a killed or failed sync stored but never recorded: reused, not downloaded again."""


def _resume(file: DistFile, store: ArtifactStore) -> StoredArtifact | None:
    """The object already stored under ``file``'s digest, if there is one of the listed size.

    The store publishes an object under its content-addressed key only whole and verified
    (``ArtifactStore.put_chunks``), so its key and size prove it complete: a rerun after a crash
    fetches only what is missing. One ``stat`` per file to download; none for files the catalog
    already knows.
    """
    if file.sha256 is None:
        return None
    try:
        size = store.stat(file.sha256)
    except ArtifactStoreError:  # not there (or the store is down: the download path says so)
        return None
    if file.size is not None and size != file.size:
        return None
    return _Resumed(file.sha256, size, artifact_key(file.sha256))


def _fetch_file(
    file: DistFile, config: SyncConfig, index: IndexClient, putter: Putter
) -> StoredArtifact | Exception:
    """Download and store one file, with retries: the stored artifact, or the error that ended it.

    Bytes that fail their digest are fetched once more (a flaky cache or proxy); a second
    ``DigestMismatch`` is returned, and the file is quarantined rather than failing its project.
    """
    download = partial(_download, file, index, putter, config.max_file_bytes, config.progress_every)
    retried = partial(
        call_with_retries,
        download,
        attempts=config.attempts,
        transient=TRANSIENT,
        connection_backoff=config.connection_backoff,
    )
    try:
        try:
            return retried()
        except DigestMismatch:
            return retried()
    except Exception as exc:  # filed under every project that lists the file
        return exc


def _download(
    file: DistFile, index: IndexClient, putter: Putter, max_file_bytes: int | None, progress_every: float
) -> StoredArtifact:
    with index.stream_file(file.url) as response:
        chunks = _reporting(response.iter_bytes(), file, every=progress_every)
        if max_file_bytes is not None:
            chunks = _at_most(chunks, max_file_bytes)
        return putter.put_chunks(chunks, sha256=file.sha256, size=file.size)


def _reporting(
    chunks: Iterator[bytes],
    file: DistFile,
    *,
    every: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """Pass ``chunks`` through, logging a progress line every ``every`` s while the download runs.

    A line is written as a chunk arrives: a download that stalls says nothing more until the read
    timeout ends it, and that is logged as a retry (``mirrorflow.tasks.retrying``).
    """
    started = last = clock()
    received = 0
    total = f"{file.size:,}" if file.size is not None else "an unknown number of"
    for chunk in chunks:
        received += len(chunk)
        now = clock()
        if now - last >= every:
            last = now
            progress.info(
                "downloading %s: %s of %s bytes after %.0f s",
                file.filename,
                f"{received:,}",
                total,
                now - started,
            )
        yield chunk


def _at_most(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Pass ``chunks`` through; raise ``ArtifactTooLarge`` once more than ``limit`` bytes came (every store)."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise ArtifactTooLarge(max_size=limit, received=received)
        yield chunk


def package_record(page: ProjectPage, candidate: Candidate, sha256: str, size: int | None) -> NewPackage:
    """The package row for a kept file of ``page`` (digest and size as verified or as listed)."""
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
