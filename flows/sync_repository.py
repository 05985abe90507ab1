"""The sync flow: lock -> list projects -> fetch and resolve -> filter -> download or record -> commit.

Run it from Python (``sync_repository(repository="foo", remote="bar")``), from the CLI
(``mirrorflow repository sync --name foo --remote bar``) or from a Prefect deployment (a schedule,
or the Prefect UI's form: the parameters are typed in ``flows.params``). One sync per repository
runs at a time, whoever started it (``storage.locks``). Projects are mapped in batches (a flow run
must not hold tens of thousands of task runs); the new version is committed in one database
transaction, or not at all. The tasks receive plain values only, so any task runner works,
Dask included (``flows.runners``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from flows.allocator import tune_allocator
from flows.logs import route_to_prefect
from flows.params import (
    DEFAULT_LOCK_WAIT,
    InvalidParameters,
    OptionalRemote,
    RepositoryName,
    validate_sync_parameters,
)
from flows.remote_spec import RemoteFields, filter_spec_of
from flows.report import SyncProgress, end_progress, publish_end, publish_failure, publish_report
from flows.runners import RunnerSettings, task_runner_for
from flows.runtime import catalog_for, http_spec_for, store_spec_for
from flows.settings import Settings
from storage.catalog import Catalog
from storage.content import ContentWriter
from storage.errors import MirrorflowError
from storage.locks import holding
from storage.maintenance import apply_retention
from tasks.batch import BatchReport, NoIncludedProjectFound, SyncFailed, SyncPlan, SyncServices
from tasks.filters import included_project_names
from tasks.index_client import IndexClient, TransientError, locate_simple_root
from tasks.index_url import simple_root_candidates
from tasks.outcome import commits_despite_failures
from tasks.planning import Wanted, batched, filter_fingerprint
from tasks.retrying import call_with_retries
from tasks.services import ServicesSpec, hosting, http_client_from, store_from
from tasks.steps import commit_version_task, plan_work_task, sync_batch_task

__all__ = [
    "sync_repository",
    "run_sync",
    "run_name",
    "run_tags",
    "Progress",
    "PROGRESS",
    "NoRemote",
    "INLINE_REMOTE",
]

DEFAULT_CONCURRENCY = 10
DEFAULT_RETRIES = 3
#: The remote name recorded on versions made from an inline remote (a flow parameter).
INLINE_REMOTE = "(inline)"


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, count: int) -> None: ...


#: Set by the CLI to draw a progress bar; flows started elsewhere report through Prefect only.
PROGRESS: ContextVar[Progress | None] = ContextVar("mirrorflow_progress", default=None)


class NoRemote(MirrorflowError, ValueError):
    def __init__(self, repository: str) -> None:
        super().__init__(f"repository {repository!r} has no remote: pass one (--remote NAME)")


# The default runner is read from the environment when the module loads: a served deployment's
# runs load the flow from its entrypoint, so this is where MIRRORFLOW_TASK_RUNNER takes effect.
def run_name() -> str:
    """A run's name, for finding it in the UI: ``foo <- bar`` (``foo <- (inline)``, ``foo <- (default)``)."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    remote = parameters.get("remote")
    source = remote if isinstance(remote, str) else "(inline)" if remote else "(default)"
    return f"{parameters.get('repository')} <- {source}"


def run_tags(repository: str, remote: object) -> list[str]:
    """Tags that let a user filter the runs of one repository or remote (CLI and deployments alike).

    >>> run_tags("foo", "bar"), run_tags("foo", None)
    (['mirrorflow', 'repository:foo', 'remote:bar'], ['mirrorflow', 'repository:foo'])
    """
    tags = ["mirrorflow", f"repository:{repository}"]
    if isinstance(remote, str) and remote:
        tags.append(f"remote:{remote}")
    return tags


@flow(
    name="sync-repository",
    flow_run_name=run_name,
    task_runner=task_runner_for(RunnerSettings()),
    # The flow validates its parameters itself (flows.params): a bad one then ends the run Failed
    # with one line naming the field, not Prefect's multi-line ParameterTypeError. Types and enums
    # are still refused by the server's schema check before a deployment's run exists.
    validate_parameters=False,
    # A run that crashed or was cancelled ends outside this code: the runner's hooks say so.
    on_crashed=[publish_end],
    on_cancellation=[publish_end],
)
def sync_repository(
    repository: RepositoryName,
    remote: OptionalRemote = None,
    mirror: bool = False,
    lock_wait_s: float = DEFAULT_LOCK_WAIT,
) -> Any:
    """Sync ``repository`` from ``remote`` (a remote's name or an inline remote; default: the repository's).

    Args:
        repository: The repository to sync ('mirrorflow repository list').
        remote: A remote's name, or an inline remote (url, includes, excludes, filters); empty: the
            repository's own remote.
        mirror: Remove what the remote no longer selects (default: only add).
        lock_wait_s: Seconds to wait while another sync of this repository runs, then give up.

    Waits up to ``lock_wait_s`` seconds while another sync of the repository runs. Returns
    ``{"repository", "version", "report"}``; ``version`` is None when nothing changed. Raises
    ``SyncFailed`` (no new version) when any project could not be synced, ``RepositoryBusy`` when
    the other sync did not finish in time. Bad parameters end the run in a ``Failed`` state whose
    message is one line naming the field (``invalid sync parameters: remote.includes: ...``).
    """
    tune_allocator()  # memory that does not grow with the index (flows.allocator), however the run started
    route_to_prefect()  # the steps' warnings (retries, skipped files) in the run's logs
    try:
        params = validate_sync_parameters(
            repository=repository, remote=remote, mirror=mirror, lock_wait_s=lock_wait_s
        )
    except InvalidParameters as exc:
        from prefect.states import Failed

        get_run_logger().error("%s", exc)
        with contextlib.suppress(Exception):
            publish_failure(str(repository), exc)
        return Failed(message=str(exc))  # no traceback: the message is the whole story
    repository = params.repository
    try:
        _check_deployment_repository(repository)
        return _locked_sync(repository, params.remote, params.mirror, params.lock_wait_s)
    except BaseException as exc:
        # Every run leaves a current summary: one that failed early (unknown remote, no simple
        # index, busy repository, cancelled) would otherwise leave an older run's summary standing.
        with contextlib.suppress(Exception):  # never hide the failure behind the artifact's
            end_progress(exc)  # the real figure, not 100% of projects tried
        with contextlib.suppress(Exception):
            if not (isinstance(exc, SyncFailed) and not isinstance(exc, NoIncludedProjectFound)):
                publish_failure(repository, exc)
        raise


def _check_deployment_repository(repository: str) -> None:
    """A repository's deployment syncs that repository only: its form cannot be pointed at another."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import deployment

    if deployment.id is None:
        return  # a CLI or Python run: any repository
    with get_client(sync_client=True) as client:  # the deployment's own parameters, not this run's
        own = (client.read_deployment(deployment.id).parameters or {}).get("repository")
    if own is not None and own != repository:
        raise InvalidParameters(
            f"repository: {repository!r} is not this deployment's; {deployment.name!r} syncs {own!r} only "
            f"(start sync-repository/{repository} for that one)"
        )


def _locked_sync(
    repository: str, remote: str | RemoteFields | None, mirror: bool, lock_wait_s: float
) -> dict[str, Any]:
    logger = get_run_logger()
    settings = Settings()
    catalog = catalog_for(settings)
    repo = catalog.get_repository(repository)
    remote_name, fields = _resolve_remote(catalog, repository, repo, remote)
    started = time.monotonic()
    lease_time = timedelta(seconds=settings.sync_lock_lease)
    with holding(catalog, repository, holder=_holder(), wait=lock_wait_s, lease=lease_time) as lease:
        if lease.waited >= 1:
            logger.info("waited %.1fs for another sync of %r to finish", lease.waited, repository)
        return _sync(settings, catalog, repository, remote_name, fields, mirror, started, lease.waited)


def _resolve_remote(
    catalog: Catalog, repository: str, repo: Any, remote: str | RemoteFields | None
) -> tuple[str, RemoteFields]:
    if isinstance(remote, RemoteFields):
        return INLINE_REMOTE, remote
    remote_name = remote or catalog.remote_name_of(repo)
    if remote_name is None:
        raise NoRemote(repository)
    return remote_name, RemoteFields.from_row(catalog.get_remote(remote_name))


def _sync(
    settings: Settings,
    catalog: Catalog,
    repository: str,
    remote_name: str,
    fields: RemoteFields,
    mirror: bool,
    started: float,
    lock_wait: float,
) -> dict[str, Any]:
    logger = get_run_logger()
    repo = catalog.get_repository(repository)  # read again under the lock: another sync may have committed
    concurrency = fields.download_concurrency or DEFAULT_CONCURRENCY
    plan = SyncPlan(
        sync_id=str(uuid.uuid4()),
        repository=repository,
        repository_id=repo.id,
        remote=remote_name,
        policy=fields.policy,
        spec=filter_spec_of(fields.model_dump()),
        now=datetime.now(UTC),
        concurrency=concurrency,
        attempts=1 + (fields.max_retries if fields.max_retries is not None else DEFAULT_RETRIES),
        max_file_bytes=settings.max_file_bytes,
    )
    progress = PROGRESS.get()
    writer = ContentWriter(catalog)
    spec = services_spec(settings, fields, concurrency=concurrency, token=plan.sync_id)
    with http_client_from(spec.http) as http:
        root = call_with_retries(
            lambda: locate_simple_root(
                fields.url,
                simple_root_candidates(fields.url),
                client=http,
                projects=included_project_names(plan.spec),
                max_page_bytes=settings.max_page_bytes,
            ),
            attempts=plan.attempts,
            transient=(TransientError,),
        )
        if root != fields.url:
            logger.info("remote %r: the simple index is at %s", remote_name, root)
        spec = replace(spec, http=replace(spec.http, index_url=root))
        index = IndexClient(root, client=http, max_page_bytes=settings.max_page_bytes)
        services = SyncServices(index=index, store=store_from(spec.store), writer=writer)
        with hosting(spec, services):
            fingerprint = filter_fingerprint(fields.model_dump(), mirror=mirror)
            accepted = [fingerprint, filter_fingerprint(fields.model_dump(), mirror=True)]
            work = plan_work_task(plan, spec, accepted)  # serials: fetch only what changed
            names = work.fetch
            logger.info(
                "%s sync (%s): %d unchanged, %d gone", work.mode, work.reason, work.unchanged, len(work.gone)
            )
            logger.info(
                "syncing %d project(s) of %s into %r (policy %s)",
                len(names),
                fields.url,
                repository,
                plan.policy,
            )
            if progress:
                progress.start(len(names))
            artifact = SyncProgress(repository, len(names))
            report = BatchReport()
            try:
                for batch in _run_batches(names, plan, spec, settings):
                    report = report + batch
                    artifact.advance(batch.projects)
                    if progress:
                        progress.advance(batch.projects)
            except BaseException:
                writer.discard(plan.sync_id)
                raise
            summary = report.as_dict() | {
                "duration_s": round(time.monotonic() - started, 3),
                "lock_wait_s": round(lock_wait, 3),
                "mirror": mirror,
                "incremental": {"mode": work.mode, "unchanged": work.unchanged, "gone": len(work.gone)},
            }
            for name in report.not_found:
                logger.warning("project %r is not on the index (%s)", name, index.project_url(name))
            if plan.spec.includes and report.projects and len(report.not_found) == report.projects:
                writer.discard(plan.sync_id)
                raise NoIncludedProjectFound(repository, root, report.not_found)
            commits = commits_despite_failures(
                fields.failure_policy,
                whole_index=not plan.spec.includes,
                failed=len(report.failures),
                # Of every project the sync covers, the unchanged ones included: an incremental run
                # that refetches one broken project must not fail on "100% of what it fetched".
                asked=report.projects + work.unchanged,
                max_failed_percent=fields.max_failed_percent,
            )
            if not commits:
                writer.discard(plan.sync_id)
                publish_report(
                    repository, version=None, previous=repo.latest_version, summary=summary, counts=None
                )
                raise SyncFailed(repository, report.failures, report.advice)
            summary["partial"] = bool(report.failures or report.unverifiable)
            if summary["partial"]:
                logger.warning(
                    "committing without %d failed project(s) and %d unverifiable file(s); they keep their "
                    "previous content and the next sync retries them: %s",
                    len(report.failures),
                    len(report.unverifiable),
                    "; ".join(
                        f"{k}: {v}" for k, v in sorted({**report.failures, **report.unverifiable}.items())[:5]
                    ),
                )
            version = commit_version_task(
                plan,
                spec,
                mirror=mirror,
                report=summary,
                scope=work.scope,
                fingerprint=fingerprint,
            )
            apply_retention(catalog, repository)  # retain_repo_versions: drop versions beyond the newest N
    counts = (
        None
        if version is None
        else {"added": version.added, "removed": version.removed, "present": version.present}
    )
    publish_report(
        repository,
        version=None if version is None else version.number,
        previous=repo.latest_version,
        summary=summary,
        counts=counts,
    )
    if version is None:
        logger.info("nothing changed: %r stays at version %d", repository, repo.latest_version)
    else:
        logger.info(
            "%r version %d: %d added, %d removed, %d present",
            repository,
            version.number,
            version.added,
            version.removed,
            version.present,
        )
    return {
        "repository": repository,
        "version": None if version is None else version.number,
        "report": summary,
    }


def _run_batches(
    names: Sequence[Wanted], plan: SyncPlan, spec: ServicesSpec, settings: Settings
) -> Iterator[BatchReport]:
    """Run the batches as mapped task runs, a bounded window of them submitted at a time.

    Submitting every batch at once keeps a future, a task run and a copy of the run's context
    per batch alive until the end: memory that grows with the index. A window of twice the task
    workers keeps every worker busy.
    """
    window: deque[PrefectFuture[BatchReport]] = deque()
    for batch in batched(names, settings.batch_size):
        if len(window) >= 2 * settings.task_workers:
            yield window.popleft().result()
        window.append(sync_batch_task.submit(batch, plan, spec))
    while window:
        yield window.popleft().result()


def services_spec(settings: Settings, fields: RemoteFields, *, concurrency: int, token: str) -> ServicesSpec:
    """The picklable description of a sync's services, from the settings and the remote."""
    http = http_spec_for(fields, concurrency=concurrency, max_page_bytes=settings.max_page_bytes)
    return ServicesSpec(
        catalog_url=settings.catalog_url, store=store_spec_for(settings), http=http, token=token
    )


def _holder() -> str:
    """Who holds the lock, for the message a second sync shows: flow run, host and pid."""
    from prefect.runtime import flow_run

    return f"flow run {flow_run.name} ({flow_run.id}) on {socket.gethostname()} pid {os.getpid()}"[:255]


def run_sync(
    repository: str,
    remote: str | None,
    *,
    mirror: bool,
    settings: Settings,
    task_runner: Any = None,
    lock_wait_s: float = DEFAULT_LOCK_WAIT,
) -> dict[str, Any]:
    """Run the flow in this process, with ``task_runner`` or the one ``MIRRORFLOW_TASK_RUNNER`` names."""
    from prefect import tags

    runner = task_runner or task_runner_for(RunnerSettings(task_workers=settings.task_workers))
    with tags(*run_tags(repository, remote)):
        return sync_repository.with_options(task_runner=runner)(
            repository=repository, remote=remote, mirror=mirror, lock_wait_s=lock_wait_s
        )
