"""The sync flow: lock -> list projects -> resolve -> filter -> fetch (download or record) -> commit.

Run it from Python (``sync_repository(repository="foo", remote="bar")``), from the CLI
(``mirrorflow repository sync --name foo --remote bar``) or from a Prefect deployment (a schedule,
or the Prefect UI's form: the parameters are typed in ``mirrorflow.flows.params``). One sync per repository
runs at a time, whoever started it (``mirrorflow.storage.locks``). The stages are Prefect tasks
(``mirrorflow.tasks.stages``): ``list-projects``, then ``resolve-batch``, ``filter-batch`` and ``fetch-batch``
mapped over batches of projects (a flow run must not hold tens of thousands of task runs), then
``commit-version``, drawn after every fetch-batch: the new version is committed in one database
transaction, or not at all. The configuration is one frozen ``SyncConfig`` built here; the clients
are built once and passed to the tasks (``mirrorflow.tasks.clients``), so any task runner works, Dask included
(``mirrorflow.flows.runners``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, Protocol

from prefect import allow_failure, flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture

from mirrorflow.flows.advisory_sync import advisories_for, advisory_state, held_blocked
from mirrorflow.flows.allocator import tune_allocator
from mirrorflow.flows.autopublish import publish_after_sync
from mirrorflow.flows.dependency_closure import close_dependencies, with_implicit_includes
from mirrorflow.flows.logs import route_to_prefect
from mirrorflow.flows.params import (
    DEFAULT_LOCK_WAIT,
    InvalidParameters,
    OptionalRemote,
    RepositoryName,
    validate_sync_parameters,
)
from mirrorflow.flows.remote_spec import RemoteFields, filter_spec_of
from mirrorflow.flows.report import (
    SyncProgress,
    end_progress,
    gone_line,
    publish_end,
    publish_failure,
    publish_report,
)
from mirrorflow.flows.runners import RunnerSettings, task_runner_for
from mirrorflow.flows.runtime import catalog_for, http_spec_for
from mirrorflow.flows.settings import Settings
from mirrorflow.flows.sync_config import DEFAULT_CONCURRENCY, DEFAULT_RETRIES, sync_config
from mirrorflow.storage.blocklists import list_entries
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.dependency_cache import DependencyStore
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.locks import holding
from mirrorflow.storage.maintenance import apply_retention
from mirrorflow.tasks.clients import SyncServices, http_client_from, reader_connection
from mirrorflow.tasks.commit import NoIncludedProjectFound, SyncFailed, found_none, may_commit
from mirrorflow.tasks.config import SyncConfig
from mirrorflow.tasks.dist_metadata import DependencyReader
from mirrorflow.tasks.filters import included_project_names
from mirrorflow.tasks.index_client import TransientError, locate_simple_root
from mirrorflow.tasks.index_url import simple_root_candidates
from mirrorflow.tasks.listing import Wanted, Work, batched
from mirrorflow.tasks.report import BatchReport, SyncResult
from mirrorflow.tasks.resolve import ResolvedBatch
from mirrorflow.tasks.retrying import call_with_retries
from mirrorflow.tasks.stages import (
    commit_version_task,
    fetch_batch_task,
    filter_batch_task,
    list_projects_task,
    resolve_batch_task,
)

__all__ = [
    "sync_repository",
    "run_sync",
    "run_name",
    "run_tags",
    "Progress",
    "PROGRESS",
    "NoRemote",
    "INLINE_REMOTE",
    "SyncResult",
    "sync_config",
]

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
) -> SyncResult | State:
    """Sync ``repository`` from ``remote`` (a remote's name or an inline remote; default: the repository's).

    Args:
        repository: The repository to sync ('mirrorflow repository list').
        remote: A remote's name, or an inline remote (url, includes, excludes, filters); empty: the
            repository's own remote.
        mirror: Remove what the remote no longer selects (default: only add).
        lock_wait_s: Seconds to wait while another sync of this repository runs, then give up.

    Waits up to ``lock_wait_s`` seconds while another sync of the repository runs. Returns a
    ``SyncResult``; its ``version`` is None when nothing changed. Raises
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
        return _locked_sync(repository, params.remote, mirror=params.mirror, lock_wait_s=params.lock_wait_s)
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
    repository: str, remote: str | RemoteFields | None, *, mirror: bool, lock_wait_s: float
) -> SyncResult:
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
        return _sync(
            settings,
            catalog,
            repository,
            remote_name,
            fields,
            mirror=mirror,
            started=started,
            lock_wait=lease.waited,
        )


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
    *,
    mirror: bool,
    started: float,
    lock_wait: float,
) -> SyncResult:
    logger = get_run_logger()
    repo = catalog.get_repository(repository)  # read again under the lock: another sync may have committed
    concurrency = fields.download_concurrency or DEFAULT_CONCURRENCY
    attempts = 1 + (fields.max_retries if fields.max_retries is not None else DEFAULT_RETRIES)
    http_spec = http_spec_for(fields, concurrency=concurrency, max_page_bytes=settings.max_page_bytes)
    progress = PROGRESS.get()
    with http_client_from(http_spec) as http:
        includes = included_project_names(filter_spec_of(fields.model_dump()))
        root = call_with_retries(
            lambda: locate_simple_root(
                fields.url,
                simple_root_candidates(fields.url),
                client=http,
                projects=includes,
                max_page_bytes=settings.max_page_bytes,
            ),
            attempts=attempts,
            transient=(TransientError,),
            connection_backoff=settings.retry_backoff,
        )
        if root != fields.url:
            logger.info("remote %r: the simple index is at %s", remote_name, root)
        blocklist = tuple(e.entry for e in list_entries(catalog, repository))
        advisories = advisory_state(catalog) if fields.block_advisories else ""

        def configure(fields: RemoteFields) -> SyncConfig:
            return sync_config(
                settings,
                fields,
                repository=repository,
                repository_id=repo.id,
                remote=remote_name,
                index_url=root,
                mirror=mirror,
                blocklist=blocklist,
                advisories=advisories,
            )

        config = configure(fields)
        # Built once; the tasks receive them (a Dask worker rebuilds them from the config: tasks.clients).
        services = SyncServices.build(config.clients_key, catalog=catalog, http=http)
        closure = None
        if fields.include_dependencies:
            # The closure's rounds first; then the sync proper, as if the implicit includes were the remote's.
            # Shared by the round's worker threads; answers cached in the catalog by file sha256.
            reader = DependencyReader(
                http,
                DependencyStore(catalog),
                index_url=root,
                attempts=config.attempts,
                connect=partial(reader_connection, config.clients_key),  # a Dask worker's own (tasks.clients)
            )
            closure = close_dependencies(
                config, services, reader, task_workers=settings.task_workers, logger=logger
            )
            config = replace(
                configure(with_implicit_includes(fields, closure)), sync_id=config.sync_id, now=config.now
            )
            for line in closure.report().lines():
                logger.info("%s", line)
        writer = services.writer
        listed = list_projects_task.submit(config, services)
        work = listed.result()  # serials: fetch only what changed
        names = work.fetch
        logger.info(
            "%s sync (%s): %d unchanged, %d gone", work.mode, work.reason, work.unchanged, len(work.gone)
        )
        logger.info(
            "syncing %d project(s) of %s into %r (policy %s)",
            len(names),
            fields.url,
            repository,
            config.policy,
        )
        if progress:
            progress.start(len(names))
        artifact = SyncProgress(repository, len(names))
        report = BatchReport()
        fetched: list[PrefectFuture[Any]] = []
        try:
            for batch in _run_batches(names, config, services, listed, fetched, settings.task_workers):
                report = report + batch
                artifact.advance(batch.projects)
                if progress:
                    progress.advance(batch.projects)
        except BaseException:
            writer.discard(config.sync_id)
            raise
        gone_upstream = report.gone_upstream(work.gone_upstream).as_dict()
        summary = report.as_dict() | {
            "duration_s": round(time.monotonic() - started, 3),
            "lock_wait_s": round(lock_wait, 3),
            "mirror": mirror,
            "incremental": {"mode": str(work.mode), "unchanged": work.unchanged, "gone": len(work.gone)},
            "gone_upstream": gone_upstream,
        }
        for name, change in sorted(report.status_changes.items()):
            logger.warning("project %r: upstream status %s", name, change)
        if (gone := gone_line(gone_upstream)) is not None:
            logger.warning("%s (%s)", gone, "removed: mirror mode" if mirror else "kept: additive mode")
        if closure is not None:
            summary["closure"] = closure.report().as_dict()
        for name in report.not_found:
            logger.warning("project %r is not on the index (%s)", name, services.index.project_url(name))
        if found_none(config, report):
            writer.discard(config.sync_id)
            raise NoIncludedProjectFound(repository, root, report.not_found)
        if not may_commit(config, report, unchanged=work.unchanged):
            writer.discard(config.sync_id)
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
        # Held files that an advisory now blocks leave with this version, in additive mode too.
        blocked_ids, removed_by_advisory = held_blocked(catalog, repository, config.block_advisories)
        summary["advisories_removed"] = removed_by_advisory
        for filename, why in sorted(removed_by_advisory.items()):
            logger.warning("removing %r from %r: %s", filename, repository, why)
        # Drawn after every fetch-batch in the graph, failed ones included (their projects are left out).
        version = commit_version_task(
            config,
            services,
            report=summary,
            scope=work.scope,
            remove_packages=blocked_ids,
            status_changes=report.new_statuses,
            withdrawn=report.withdrawn,
            wait_for=_after(fetched, listed),
        )
        apply_retention(catalog, repository)  # retain_repo_versions: drop versions beyond the newest N
        if version is not None:  # after the commit: whatever publishing does, the version stands
            publication = publish_after_sync(
                catalog, services.store, repo, version.number, logger, settings=settings
            )
            if publication is not None:
                summary["publication"] = publication
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
    return SyncResult(
        repository=repository, version=None if version is None else version.number, report=summary
    )


def _run_batches(
    names: Sequence[Wanted],
    config: SyncConfig,
    services: SyncServices,
    listed: PrefectFuture[Work],
    fetched: list[PrefectFuture[Any]],
    task_workers: int,
) -> Iterator[BatchReport]:
    """Map resolve -> filter -> fetch over the batches, a bounded window of batches submitted at a time;
    yield each batch's report in order, and append its fetch future to ``fetched`` (the commit waits on them).

    Submitting every batch at once keeps three futures, task runs and copies of the run's context per
    batch alive until the end: memory that grows with the index. A window of twice the task workers
    keeps every worker busy. Only the finished fetch futures are kept, for the commit's dependencies.
    """
    window: deque[tuple[PrefectFuture[ResolvedBatch], PrefectFuture[ResolvedBatch], PrefectFuture[Any]]]
    window = deque()
    for batch in batched(names, config.batch_size):
        if len(window) >= 2 * task_workers:
            yield _report_of(*window.popleft())
        first = batch[0].name
        resolved = resolve_batch_task.submit(
            batch, config, services, first=first, wait_for=[listed], return_state=False
        )
        # The advisories of the batch's projects, read once per batch (none imported: no query).
        advisories = (
            advisories_for(services.writer.catalog, [w.name for w in batch], config.block_advisories)
            if config.block_advisories
            else None
        )
        filtered = filter_batch_task.submit(
            resolved, config, first=first, advisories=advisories, return_state=False
        )
        fetch = fetch_batch_task.submit(filtered, config, services, first=first, return_state=False)
        fetched.append(fetch)
        window.append((resolved, filtered, fetch))
    while window:
        yield _report_of(*window.popleft())


def _after(fetched: Sequence[PrefectFuture[Any]], listed: PrefectFuture[Work]) -> list[Any]:
    """The commit's upstreams: every fetch-batch, failed ones allowed (the failure policy decided)."""
    return [allow_failure(future) for future in fetched] or [listed]


def _report_of(
    resolved: PrefectFuture[ResolvedBatch],
    filtered: PrefectFuture[ResolvedBatch],
    fetch: PrefectFuture[Any],
) -> BatchReport:
    """The batch's report, also from a fetch-batch that ended Failed (some projects failed: the
    failure policy decides). Any other failure of its stages raises that stage's error."""
    outcome = fetch.result(raise_on_failure=False)
    if isinstance(outcome, BatchReport):
        return outcome
    resolved.result()  # raises the error of the first stage that failed
    filtered.result()
    fetch.result()
    raise TypeError(f"fetch-batch returned {outcome!r}, not a BatchReport")


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
) -> SyncResult:
    """Run the flow in this process, with ``task_runner`` or the one ``MIRRORFLOW_TASK_RUNNER`` names."""
    from prefect import tags

    runner = task_runner or task_runner_for(RunnerSettings(task_workers=settings.task_workers))
    with tags(*run_tags(repository, remote)):
        result = sync_repository.with_options(task_runner=runner)(
            repository=repository, remote=remote, mirror=mirror, lock_wait_s=lock_wait_s
        )
    # A run that ends Failed (bad parameters) raises here rather than returning its state.
    if not isinstance(result, SyncResult):
        raise TypeError(f"sync_repository returned {result!r}, not a SyncResult")
    return result
