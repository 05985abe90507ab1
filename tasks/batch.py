"""One batch of a sync: fetch project pages, select files, download or record, stage.

This is the thin I/O shell around the pure decisions (``tasks.filters``, ``tasks.planning``).
``plan_work`` (``tasks.incremental``) reads the listing and the serial memory
once and decides which pages to fetch; ``sync_projects`` fetches one batch of them (conditionally
where the index gives no serials, retrying pages older than the listing promised) and stages what
they contribute, plus the projects it touched, so that the commit needs no staging of untouched
projects. A batch is idempotent:
packages and artifacts are content-addressed and written with ``ON CONFLICT DO NOTHING``, so a
batch that is retried, or a sync that is rerun after a crash, reuses what is already there.

Write order (so that a crash at any point leaves nothing dangling): objects into the artifact
store -> package rows -> artifact rows (linking packages) -> staging rows.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from storage.artifacts import (
    ArtifactStore,
    ArtifactStoreError,
    ArtifactTooLarge,
    DigestMismatch,
    Putter,
    StoredArtifact,
    artifact_key,
)
from storage.content import ContentWriter, NewPackage
from storage.errors import MirrorflowError
from storage.serials import SerialMemory, Touched
from tasks.core_metadata import WheelMetadataError
from tasks.distributions import DistFile, ProjectPage
from tasks.filenames import InvalidFilename
from tasks.filters import Candidate, FilterSpec, select_files
from tasks.incremental import TRANSIENT, fetch_page
from tasks.index_client import (
    IndexClient,
    IndexClientError,
    PageTooLarge,
    ProjectNotFound,
    UpstreamError,
)
from tasks.planning import Wanted, is_stale
from tasks.retrying import call_with_retries
from tasks.simple_fields import InvalidPage
from tasks.workers import Pacer, pulled, shared_pool

__all__ = [
    "package_record",
    "SyncPlan",
    "SyncServices",
    "BatchReport",
    "sync_projects",
    "SyncFailed",
    "advice_for",
    "RERUN",
]

log = logging.getLogger(__name__)


class SyncFailed(MirrorflowError):
    """The sync could not complete; ``failures`` maps each failed project to why. No version was made.

    The message is one line: the repository, the first failed project (its error names the URL),
    how many more failed, and what to do (``advice``; "rerun" only when every failure was
    transient, since a rerun cannot fix a wrong digest, a refused credential or an unreadable page).
    """

    def __init__(self, repository: str, failures: dict[str, str], advice: dict[str, str]) -> None:
        self.repository, self.failures, self.advice = repository, failures, advice
        # Shown: the first failure a rerun cannot fix, if any (its advice is what to do), else the first.
        lasting = sorted(name for name in failures if advice.get(name) != RERUN)
        first = lasting[0] if lasting else min(failures)
        why, todo = failures[first].rstrip(". "), advice.get(first) or BUG
        more = (
            f" (and {len(failures) - 1} more project(s), listed in the sync report)"
            if len(failures) > 1
            else ""
        )
        super().__init__(
            f"sync of repository {repository!r} failed, no new version: project {first!r}: {why}{more}. {todo}."
        )


#: What to do after transient faults outlasted the retries: what was stored is kept and reused.
RERUN = "Rerun the sync to finish the job (what was downloaded is kept)"
_UNREADABLE = "The upstream serves something mirrorflow cannot read: leave the project out (--excludes)"
#: What to do about an error that is not one of ours.
BUG = "This is a bug in mirrorflow: rerun with --debug and report the traceback"


def advice_for(exc: BaseException) -> str:
    """What a user can do about ``exc``, one of a sync's per-project failures.

    >>> from tasks.index_client import TransientError
    >>> advice_for(TransientError("http://i.test/simple/a/", 503, "Service Unavailable")) == RERUN
    True
    >>> advice_for(KeyError("x")) == BUG
    True
    """
    if isinstance(exc, TRANSIENT):
        return RERUN
    if isinstance(exc, DigestMismatch):
        return "The upstream's file does not match its index: leave that release out (--excludes) or ask the upstream to fix it"
    if isinstance(exc, PageTooLarge):
        return "Raise MIRRORFLOW_MAX_PAGE_BYTES, or leave the project out (--excludes)"
    if isinstance(exc, UpstreamError):
        if exc.status in (401, 403):
            return "Check the remote's username and password, or its headers (mirrorflow remote update)"
        if exc.status == 407:
            return "Check the remote's proxy_username and proxy_password (mirrorflow remote update)"
        if exc.status is None and "ca_cert" in exc.reason:
            return "Set the remote's ca_cert, or tls_validation false (mirrorflow remote update)"
        if exc.status is not None and 200 <= exc.status < 300:
            return _UNREADABLE  # it answered, with something that is not a simple page
        return "Check the remote's url and the upstream (mirrorflow remote update --url)"
    if isinstance(exc, InvalidPage | InvalidFilename | WheelMetadataError):
        return _UNREADABLE
    if isinstance(exc, MirrorflowError):
        return "See the sync report for each project's error"
    return BUG


class SyncPartial(MirrorflowError):
    """A version was committed without some projects (``failure_policy`` partial) or files
    (quarantined): ``stale`` maps each to why. Raised after the commit, for a distinct exit code."""

    def __init__(self, repository: str, version: int | None, stale: dict[str, str]) -> None:
        self.repository, self.version, self.stale = repository, version, stale
        shown = "; ".join(f"{name}: {why}" for name, why in sorted(stale.items())[:3])
        more = f" (and {len(stale) - 3} more)" if len(stale) > 3 else ""
        at = f"version {version}" if version is not None else "its current version (nothing else changed)"
        super().__init__(
            f"sync of repository {repository!r} committed {at} without {len(stale)} project(s) or file(s) "
            f"that failed: {shown}{more}. They keep their previous content; the next sync retries them"
        )


class NoIncludedProjectFound(SyncFailed):
    """The index has none of the remote's included projects: a wrong URL or wrong names, not a sync to
    commit as an empty version. ``url`` is the simple root asked."""

    def __init__(self, repository: str, url: str, names: Sequence[str]) -> None:
        self.repository, self.url = repository, url
        self.failures = {name: "not found on the index" for name in names}
        self.advice = dict.fromkeys(names, "check the remote's url and includes")
        shown = ", ".join(repr(name) for name in sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
        Exception.__init__(
            self,
            f"sync of repository {repository!r} found none of its included projects ({shown}) under "
            f"{url!r}, no new version: check the remote's url and includes",
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
    #: First wait before refetching a page older than the listing promised (doubles each time).
    stale_backoff: float = 1.0
    #: Largest file accepted (settings.max_file_bytes): a larger declared size is skipped unfetched.
    max_file_bytes: int | None = None


@dataclass(slots=True)
class SyncServices:
    """The I/O collaborators of a sync, built once by the flow."""

    index: IndexClient
    store: ArtifactStore
    writer: ContentWriter
    on_progress: Callable[[int], None] | None = None

    @property
    def memory(self) -> SerialMemory:
        """The serial memory, in the writer's catalog."""
        return SerialMemory(self.writer.catalog)


@dataclass(slots=True)
class BatchReport:
    """What a batch did; reports add up (``+``) into the sync's report."""

    projects: int = 0
    files_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    not_found: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    #: What to do about each failure (``advice_for``): not in ``as_dict``, the sync report.
    advice: dict[str, str] = field(default_factory=dict)
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    not_modified: int = 0
    stale: list[str] = field(default_factory=list)
    #: Kept files whose names packaging refuses, read knowing their project (``tasks.filenames``).
    legacy_filenames: int = 0
    #: Files found whole in the store (a killed or failed sync stored them) and reused, not downloaded.
    resumed_files: int = 0
    #: Files whose bytes failed their digest twice, by filename: left out, retried next sync.
    unverifiable: dict[str, str] = field(default_factory=dict)
    #: Projects whose upstream status (PEP 792) is not "active": status, and the reason when given.
    project_status: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: BatchReport) -> BatchReport:
        return BatchReport(
            projects=self.projects + other.projects,
            files_kept=self.files_kept + other.files_kept,
            skipped=self.skipped + other.skipped,
            not_found=sorted(self.not_found + other.not_found),
            failures={**self.failures, **other.failures},
            advice={**self.advice, **other.advice},
            downloaded_files=self.downloaded_files + other.downloaded_files,
            downloaded_bytes=self.downloaded_bytes + other.downloaded_bytes,
            not_modified=self.not_modified + other.not_modified,
            stale=sorted(self.stale + other.stale),
            legacy_filenames=self.legacy_filenames + other.legacy_filenames,
            resumed_files=self.resumed_files + other.resumed_files,
            unverifiable={**self.unverifiable, **other.unverifiable},
            project_status={**self.project_status, **other.project_status},
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
            "not_modified": self.not_modified,
            "stale": self.stale,
            "legacy_filenames": self.legacy_filenames,
            "resumed_files": self.resumed_files,
            "unverifiable": dict(sorted(self.unverifiable.items())),
            "project_status": dict(sorted(self.project_status.items())),
        }


@dataclass(slots=True)
class _ProjectResult:
    name: str
    touched: Touched | None = None
    not_modified: bool = False
    packages: list[NewPackage] = field(default_factory=list)
    stored: list[tuple[str, int, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    not_found: bool = False
    failure: str | None = None
    advice: str | None = None
    downloaded_bytes: int = 0
    legacy_filenames: int = 0
    resumed_files: int = 0
    unverifiable: dict[str, str] = field(default_factory=dict)
    page: ProjectPage | None = None
    #: Kept files to download (immediate policy): fetched for the whole batch at once.
    downloads: list[Candidate] = field(default_factory=list)


def sync_projects(names: Sequence[str | Wanted], plan: SyncPlan, services: SyncServices) -> BatchReport:
    """Sync one batch of projects and stage what they contribute. Returns the batch's report.

    ``names`` are project names (fetched unconditionally) or ``Wanted`` entries from the plan.
    """
    items = [n if isinstance(n, Wanted) else Wanted(n) for n in names]
    pool, pacer = shared_pool(plan.concurrency)
    results = pulled(
        pool, plan.concurrency, lambda item: _sync_project(item, plan, services), items, pacer=pacer
    )
    stored_any, reused = _download_all(results, plan, services, pool, pacer)
    report = BatchReport(projects=len(names))
    packages: list[NewPackage] = []
    stored: list[tuple[str, int, str]] = []
    touched: list[Touched] = []
    for result in results:
        report.skipped += result.skipped
        report.not_modified += result.not_modified
        page = result.page
        if page is not None and page.status is not None and page.status != "active":
            reason = f": {page.status_reason}" if page.status_reason else ""
            report.project_status[result.name] = f"{page.status}{reason}"
        if result.not_found:
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
        stored.extend(result.stored)
        report.downloaded_bytes += result.downloaded_bytes
        report.legacy_filenames += result.legacy_filenames
        report.resumed_files += result.resumed_files
    report.files_kept = len(packages)
    report.downloaded_files = len(stored) - report.resumed_files
    # Staged even when some projects failed: whether the sync may commit without them is the
    # flow's decision (``tasks.outcome``); a sync that may not discards what was staged.
    ids = services.writer.upsert_packages(packages)
    services.writer.record_artifacts(stored_any)  # after the packages: it links them
    services.writer.link_artifacts(reused)  # a digest stored before, by a sync that failed, say
    services.writer.stage(plan.sync_id, plan.repository_id, ids.values())
    services.memory.touch(plan.sync_id, plan.repository_id, touched)
    if services.on_progress is not None:
        services.on_progress(len(names))
    return report


def _sync_project(item: Wanted, plan: SyncPlan, services: SyncServices) -> _ProjectResult:
    name = item.name
    result = _ProjectResult(name=name)
    try:
        answer = fetch_page(item, plan, services)
    except ProjectNotFound:
        result.not_found = True
        result.touched = Touched(name, "gone")
        return result
    except Exception as exc:  # reported per project; the failure_policy decides for the sync (tasks.outcome)
        result.failure, result.advice = _describe(exc), advice_for(exc)
        return result
    page = answer.page
    if page is None:
        result.not_modified = True  # 304: untouched, keeps its content and its memory
        return result
    if is_stale(page.last_serial, item.expected_serial):
        result.touched = Touched(name, "stale")  # left as it was; the next sync retries it
        return result
    if page.name != canonicalize_name(name):
        # A page that names another project (or garbage): file it under the project we asked for.
        page = replace(page, name=canonicalize_name(name), display_name=name)
    result.page = page
    serial = page.last_serial if page.last_serial is not None else item.expected_serial
    result.touched = Touched(name, "fetched", serial, answer.etag, answer.last_modified)
    selection = select_files(canonicalize_name(name), page.files, plan.spec, now=plan.now)
    result.skipped.update(skip.reason.value for skip in selection.skipped)
    result.legacy_filenames = sum(candidate.parsed.by_project for candidate in selection.kept)
    immediate = plan.policy == "immediate"
    for candidate in selection.kept:
        file = candidate.file
        refused = _refuse(file, plan.max_file_bytes)
        if refused is not None:
            log.warning("%s: skipping %r (%s): %s", name, file.filename, refused, file.url[:200])
            result.skipped[refused] += 1
        elif immediate:
            result.downloads.append(candidate)
        elif file.sha256 is None:
            result.skipped["no-sha256"] += 1  # on_demand/streamed cannot verify later without it
        else:
            result.packages.append(package_record(page, candidate, file.sha256, file.size))
    return result


def _download_all(
    results: list[_ProjectResult],
    plan: SyncPlan,
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
    wanted = [(r, c) for r in results if r.failure is None for c in r.downloads]
    if not wanted:
        return [], set()
    known = services.writer.known_artifacts(c.file.sha256 for _, c in wanted if c.file.sha256)
    fetch: dict[str, DistFile] = {}  # one download per digest (or per URL when none is listed)
    for _, candidate in wanted:
        file = candidate.file
        if file.sha256 not in known:
            fetch.setdefault(file.sha256 or file.url, file)
    with services.store.deferred() as putter:
        fetched = pulled(
            pool,
            plan.concurrency,
            lambda file: _resume(file, services.store) or _fetch_file(file, plan, services.index, putter),
            list(fetch.values()),
            pacer=pacer,
        )
        outcomes = dict(zip(fetch, fetched, strict=True))
    stored: dict[str, tuple[str, int, str]] = {}
    for result, candidate in wanted:
        file = candidate.file
        assert result.page is not None
        if file.sha256 in known:
            result.packages.append(package_record(result.page, candidate, file.sha256, file.size))
            continue
        outcome = outcomes[file.sha256 or file.url]
        if isinstance(outcome, StoredArtifact):
            first = outcome.sha256 not in stored
            stored[outcome.sha256] = (outcome.sha256, outcome.size, outcome.key)
            result.packages.append(package_record(result.page, candidate, outcome.sha256, outcome.size))
            if first:  # counted once, under the first project that listed it
                result.stored.append(stored[outcome.sha256])
                if isinstance(outcome, _Resumed):
                    result.resumed_files += 1
                else:
                    result.downloaded_bytes += outcome.size
        elif isinstance(outcome, DigestMismatch):  # twice: quarantined, the project's other files commit
            log.warning("%s: leaving out %r: %s", result.name, file.filename, outcome)
            result.skipped["unverifiable"] += 1
            result.unverifiable[file.filename] = str(outcome)
        elif isinstance(outcome, ArtifactTooLarge):  # no size was declared, or the store's limit is lower
            log.warning("%s: skipping %r (too-large while downloading)", result.name, file.filename)
            result.skipped["too-large"] += 1
        elif result.failure is None:
            # An index client error names the URL it failed on; others get the file's URL here.
            where = "" if isinstance(outcome, IndexClientError) else f" ({file.url})"
            result.failure = f"{file.filename}{where}: {_describe(outcome)}"
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
    file: DistFile, plan: SyncPlan, index: IndexClient, putter: Putter
) -> StoredArtifact | Exception:
    """Download and store one file, with retries: the stored artifact, or the error that ended it.

    Bytes that fail their digest are fetched once more (a flaky cache or proxy); a second
    ``DigestMismatch`` is returned, and the file is quarantined rather than failing its project.
    """
    download = partial(_download, file, index, putter, plan.max_file_bytes)
    try:
        try:
            return call_with_retries(download, attempts=plan.attempts, transient=TRANSIENT)
        except DigestMismatch:
            return call_with_retries(download, attempts=plan.attempts, transient=TRANSIENT)
    except Exception as exc:  # filed under every project that lists the file
        return exc


def _download(
    file: DistFile, index: IndexClient, putter: Putter, max_file_bytes: int | None
) -> StoredArtifact:
    with index.stream_file(file.url) as response:
        chunks = response.iter_bytes()
        if max_file_bytes is not None:
            chunks = _at_most(chunks, max_file_bytes)
        return putter.put_chunks(chunks, sha256=file.sha256, size=file.size)


def _at_most(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Pass ``chunks`` through; raise ``ArtifactTooLarge`` once more than ``limit`` bytes came (every store)."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise ArtifactTooLarge(max_size=limit, received=received)
        yield chunk


def _refuse(file: DistFile, max_file_bytes: int | None) -> str | None:
    """Return the skip reason for a file no index may make us fetch or record, else None.

    ``unsafe-url``: not http(s) with a host (``file://`` would read the mirror's own disk; other
    hosts are fine: indexes often serve files from a separate host). ``too-large``: a declared size
    above ``max_file_bytes``, refused before any byte is fetched. ``invalid-field``: text holding
    NUL, which no catalog column may store.
    """
    if _unsafe_url(_origin(file.url)):
        return "unsafe-url"
    if max_file_bytes is not None and file.size is not None and file.size > max_file_bytes:
        return "too-large"
    if "\x00" in f"{file.url}{file.requires_python or ''}{file.yanked_reason or ''}":
        return "invalid-field"
    return None


#: Characters that ``urlsplit`` strips or removes: a URL holding one takes the uncached check.
_SPACE_OR_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


def _origin(url: str) -> str:
    """Return the part of ``url`` that decides ``_unsafe_url``: ``scheme://netloc`` of a plain http(s)
    URL (its netloc ends at the first "/" after it), else the whole URL."""
    start = 8 if url.startswith("https://") else 7 if url.startswith("http://") else 0
    if not start or _SPACE_OR_CONTROL_RE.search(url) is not None:
        return url
    end = url.find("/", start)
    return url if end < 0 else url[:end]


@functools.lru_cache(maxsize=1024)
def _unsafe_url(url: str) -> bool:
    # The files of a sync share a few origins: ``urlsplit`` each once (bounded cache) instead of per file.
    try:
        parts = urlsplit(url)
        return parts.scheme not in ("http", "https") or not parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host or port
        return True


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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DigestMismatch):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
