"""The sync's report: what each batch did (``BatchReport``, they add up), what a user can do about a
project's failure (``advice_for``), and what the flow returns (``SyncResult``).

``TRANSIENT`` is the one list of errors worth a retry with backoff, wherever a sync calls the index
or the store (``mirrorflow.tasks.retrying``); a rerun is the advice once they outlasted the retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mirrorflow.storage.artifacts import DigestMismatch, StoreUnavailable
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.core_metadata import WheelMetadataError
from mirrorflow.tasks.filenames import InvalidFilename
from mirrorflow.tasks.index_client import PageTooLarge, TransientError, UpstreamError
from mirrorflow.tasks.project_status import GoneUpstream
from mirrorflow.tasks.simple_fields import InvalidPage

__all__ = ["BUG", "RERUN", "TRANSIENT", "BatchReport", "SyncResult", "advice_for", "describe"]

#: The errors worth a retry with backoff, wherever a sync calls the index or the store (one list).
TRANSIENT = (TransientError, StoreUnavailable)

#: What to do after transient faults outlasted the retries: what was stored is kept and reused.
RERUN = "Rerun the sync to finish the job (what was downloaded is kept)"
_UNREADABLE = "The upstream serves something mirrorflow cannot read: leave the project out (--excludes)"
#: What to do about an error that is not one of ours.
BUG = "This is a bug in mirrorflow: rerun with --debug and report the traceback"


def advice_for(exc: BaseException) -> str:
    """What a user can do about ``exc``, one of a sync's per-project failures.

    >>> from mirrorflow.tasks.index_client import TransientError
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
    #: PEP 740 provenance (``tasks.provenance``): upstream URLs newly recorded or changed, objects
    #: fetched (``immediate``), and fetches that failed, by filename (the file is kept; retried next sync).
    provenance_recorded: int = 0
    provenance_fetched: int = 0
    provenance_failed: dict[str, str] = field(default_factory=dict)
    #: Files an imported advisory kept out (the ``advisory`` skips), by filename: the advisory's detail.
    advisories: dict[str, str] = field(default_factory=dict)
    #: Projects whose upstream status changed since the latest version: ``"active -> quarantined (why)"``.
    status_changes: dict[str, str] = field(default_factory=dict)
    #: Their new statuses, ``(status, reason)`` or None for active: what the commit records (not in ``as_dict``).
    new_statuses: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)
    #: Projects quarantined upstream whose files leave the next version, in additive mode too.
    withdrawn: list[str] = field(default_factory=list)
    #: Takedowns: files of the latest version that the upstream's pages no longer list, by project.
    gone_upstream_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Takedowns: projects of the latest version the upstream answered 404 for.
    gone_upstream_projects: list[str] = field(default_factory=list)

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
            provenance_recorded=self.provenance_recorded + other.provenance_recorded,
            provenance_fetched=self.provenance_fetched + other.provenance_fetched,
            provenance_failed={**self.provenance_failed, **other.provenance_failed},
            advisories={**self.advisories, **other.advisories},
            status_changes={**self.status_changes, **other.status_changes},
            new_statuses={**self.new_statuses, **other.new_statuses},
            withdrawn=sorted(self.withdrawn + other.withdrawn),
            gone_upstream_files={**self.gone_upstream_files, **other.gone_upstream_files},
            gone_upstream_projects=sorted(self.gone_upstream_projects + other.gone_upstream_projects),
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
            "provenance_recorded": self.provenance_recorded,
            "provenance_fetched": self.provenance_fetched,
            "provenance_failed": dict(sorted(self.provenance_failed.items())),
            "advisories": dict(sorted(self.advisories.items())),
            "status_changes": dict(sorted(self.status_changes.items())),
            "withdrawn": self.withdrawn,
            "gone_upstream": self.gone_upstream().as_dict(),
        }

    def gone_upstream(self, listed_gone: Sequence[str] = ()) -> GoneUpstream:
        """The takedowns the batches noticed, with the projects the listing stage found gone."""
        projects = tuple(sorted({*self.gone_upstream_projects, *listed_gone}))
        return GoneUpstream(projects, dict(sorted(self.gone_upstream_files.items())))


def describe(exc: BaseException) -> str:
    """One line for a project's failure in the report."""
    if isinstance(exc, DigestMismatch):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync returns: the repository, the version it made (None: nothing changed), and the
    report the CLI prints (``report`` is JSON-ready: plain dicts, lists, numbers and strings)."""

    repository: str
    version: int | None
    report: Mapping[str, Any]

    @property
    def partial(self) -> bool:
        """True when the version was committed without failed projects or quarantined files."""
        return bool(self.report.get("partial"))

    @property
    def stale(self) -> dict[str, str]:
        """What the version was made without, and why: failed projects and unverifiable files."""
        return {**(self.report.get("failures") or {}), **(self.report.get("unverifiable") or {})}
