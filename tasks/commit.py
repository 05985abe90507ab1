"""The commit stage: whether a sync may commit, and the commit of its new repository version.

What the batches staged becomes the next version in one database transaction, or nothing does. A sync
in which some projects failed commits without them only as the remote's ``failure_policy`` allows
(``mirrorflow.tasks.outcome``, pure); otherwise it fails with ``SyncFailed`` and discards what it staged. A
version committed without failed projects or quarantined files is partial: the CLI then exits with
``SyncPartial``'s distinct code.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from mirrorflow.storage.catalog import VersionView
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import Scope, SyncConfig
from mirrorflow.tasks.outcome import commits_despite_failures
from mirrorflow.tasks.report import BUG, RERUN, BatchReport

__all__ = [
    "NoIncludedProjectFound",
    "SyncFailed",
    "SyncPartial",
    "commit_version",
    "found_none",
    "may_commit",
]


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


def found_none(config: SyncConfig, report: BatchReport) -> bool:
    """True when the index has none of the remote's included projects: a wrong URL or wrong names,
    not a sync to commit as an empty version."""
    return bool(config.spec.includes) and report.projects > 0 and len(report.not_found) == report.projects


def may_commit(config: SyncConfig, report: BatchReport, *, unchanged: int) -> bool:
    """True when the sync commits, its failed projects left out (``failure_policy``).

    ``unchanged``: the projects an incremental sync left alone count among those it covers: a run that
    refetches one broken project must not fail on "100% of what it fetched".
    """
    return commits_despite_failures(
        config.failure_policy,
        whole_index=config.whole_index,
        failed=len(report.failures),
        asked=report.projects + unchanged,
        max_failed_percent=config.max_failed_percent,
    )


def commit_version(
    config: SyncConfig,
    services: SyncServices,
    *,
    report: Mapping[str, object],
    scope: Scope,
    status_changes: Mapping[str, tuple[str, str | None] | None],
    withdrawn: Sequence[str],
    remove_packages: Collection[int] = (),
) -> VersionView | None:
    """Turn what the sync staged into the next repository version (one transaction); None when
    nothing changed. ``status_changes`` and ``withdrawn``: ``BatchReport``'s ``new_statuses`` and
    ``withdrawn`` (the files of quarantined projects leave in additive mode too). ``remove_packages``:
    held packages the version leaves out in either mode (advisories)."""
    return services.writer.commit_version(
        repository=config.repository,
        sync_id=config.sync_id,
        mirror=config.mirror,
        remote_name=config.remote,
        report=dict(report),
        scope=scope,
        fingerprint=config.fingerprint,
        remove_packages=remove_packages,
        status_changes=status_changes,
        withdrawn=withdrawn,
    )
