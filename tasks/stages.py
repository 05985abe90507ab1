"""The sync's five stages as Prefect tasks: thin wrappers, on the outside, over the stage modules.

    list-projects            mirrorflow.tasks.listing   the listing and the serial memory -> the pages to fetch
    resolve-batch-<first>    mirrorflow.tasks.resolve   a batch's pages -> each project's files, or why not
    filter-batch-<first>     mirrorflow.tasks.filters   -> the files kept, and each other one with its reason
    fetch-batch-<first>      mirrorflow.tasks.fetch     download or record, resume, quarantine; stage the rows
    commit-version           mirrorflow.tasks.commit    the staged rows -> the next version (one transaction)

With ``include_dependencies``, rounds of ``dependencies-batch-<first>`` (resolve, filter and
``mirrorflow.tasks.dependencies``: each selected release's Requires-Dist) run before ``list-projects``,
until the dependency closure (``mirrorflow.tasks.closure``) reaches its fixed point; the five stages
then sync the closure as if its implicit includes were the remote's own.

The flow (``mirrorflow.flows.sync_repository``) maps the three batch stages over batches of projects (a few task
runs per batch, never one per file) and the commit waits on every ``fetch-batch``. A batch in which
some projects failed ends ``Failed`` in the UI, its report kept as the state's data: whether the
sync still commits is the failure policy's decision (``mirrorflow.tasks.outcome``), which the flow takes on
the reports of all batches.

Caching is off (``NO_CACHE``): the tasks take clients, and idempotency comes from the storage, not
from Prefect's result cache. Retries live inside the stages, per request and for transient errors
only (``mirrorflow.tasks.retrying``), which is why the decorators carry none: a Prefect-level retry would also
retry a 404 or a hash mismatch. The tasks take the sync's ``SyncConfig`` and its ``SyncServices``
(``mirrorflow.tasks.clients``: shared in the flow's process, rebuilt once per process elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed

from mirrorflow.storage.catalog import VersionView
from mirrorflow.storage.closure_pages import ClosurePages, RememberedPage
from mirrorflow.tasks.advisories import Advisories, AdvisoryBlock
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.closure import ProjectDependencies
from mirrorflow.tasks.commit import commit_version
from mirrorflow.tasks.config import Policy, Scope, SyncConfig
from mirrorflow.tasks.dependencies import (
    closure_page_key,
    page_to_remember,
    project_dependencies,
    remembered_outcome,
)
from mirrorflow.tasks.dist_metadata import DependencyReader
from mirrorflow.tasks.fetch import fetch_batch
from mirrorflow.tasks.filters import SAFETY_REASONS, filter_project, withhold_quarantined
from mirrorflow.tasks.listing import Wanted, Work, list_projects
from mirrorflow.tasks.report import BatchReport
from mirrorflow.tasks.resolve import ResolvedBatch, resolve_batch

__all__ = [
    "commit_version_task",
    "dependencies_batch",
    "dependencies_batch_task",
    "fetch_batch_task",
    "filter_batch",
    "filter_batch_task",
    "list_projects_task",
    "resolve_batch_task",
    "run_batch",
]

log = logging.getLogger(__name__)


def filter_batch(
    batch: ResolvedBatch, config: SyncConfig, advisories: Advisories | None = None
) -> ResolvedBatch:
    """Apply the filters (``mirrorflow.tasks.filters.filter_project``) to every fetched page of ``batch``.

    ``advisories``: those naming the batch's projects (read by the flow from the catalog, per batch).
    """
    require_sha256 = config.policy is not Policy.IMMEDIATE  # recorded now, fetched (and verified) later
    blocklist = Blocklist.parse(config.blocklist)
    block = AdvisoryBlock(config.block_advisories, advisories or Advisories())
    projects = []
    for project in batch.projects:
        if project.page is None:
            projects.append(project)
            continue
        selection = withhold_quarantined(
            filter_project(
                project.page.name,
                project.page.files,
                config.spec,
                now=config.now,
                max_file_bytes=config.max_file_bytes,
                require_sha256=require_sha256,
                blocklist=blocklist,
                advisories=block,
            ),
            status=project.page.status,
            reason=project.page.status_reason,
            keep_quarantined=config.spec.keep_quarantined,
        )
        for skip in selection.skipped:
            if skip.reason in SAFETY_REASONS:
                log.warning(
                    "%s: skipping %r (%s): %s", project.name, skip.file.filename, skip.reason, skip.detail
                )
        projects.append(replace(project, selection=selection))
    return ResolvedBatch(projects)


def run_batch(names: Sequence[str | Wanted], config: SyncConfig, services: SyncServices) -> BatchReport:
    """One batch through resolve, filter and fetch in this thread, without Prefect (tests, scripts).

    ``names`` are project names (fetched unconditionally) or ``Wanted`` entries from the listing stage.
    """
    items = [n if isinstance(n, Wanted) else Wanted(n) for n in names]
    return fetch_batch(filter_batch(resolve_batch(items, config, services), config), config, services)


def dependencies_batch(
    names: Sequence[str], config: SyncConfig, services: SyncServices, reader: DependencyReader
) -> tuple[ProjectDependencies, ...]:
    """Resolve one batch, filter it under ``config.spec`` (the round's: explicit and implicit includes)
    and read each selected release's requirements. Only the small result outlives the batch.

    A project whose outcome is remembered under its key (``mirrorflow.tasks.dependencies``) is asked
    for conditionally: on a 304 the remembered outcome stands, with no page parsed and no file read.
    """
    memory = ClosurePages(services.writer.catalog)
    keys = {name: closure_page_key(name, config) for name in names}
    remembered = {name: page for (name, _), page in memory.get_many(keys.items()).items()}
    wanted = [
        Wanted(name, None, remembered[name].etag, remembered[name].last_modified)
        if name in remembered
        else Wanted(name)
        for name in names
    ]
    outcomes: list[ProjectDependencies] = []
    fresh: dict[tuple[str, str], RememberedPage] = {}
    used: list[tuple[str, str]] = []
    for project in filter_batch(resolve_batch(wanted, config, services), config).projects:
        if project.not_modified and project.name in remembered:
            outcomes.append(remembered_outcome(project.name, remembered[project.name]))
            used.append((project.name, keys[project.name]))
            continue
        outcome = project_dependencies(project, reader)
        outcomes.append(outcome)
        if project.page is not None and (page := page_to_remember(outcome, project.touched)) is not None:
            fresh[(project.name, keys[project.name])] = page
    repository_id, remote = config.repository_id, config.remote
    if used:  # a closure's prune keeps the rows it used (``close_dependencies``)
        memory.touch_many(used, repository_id=repository_id, remote=remote)
    if fresh:
        memory.put_many(fresh, repository_id=repository_id, remote=remote)
    return tuple(outcomes)


@task(name="dependencies-batch", cache_policy=NO_CACHE, task_run_name="dependencies-batch-{first}")
def dependencies_batch_task(
    names: Sequence[str], config: SyncConfig, services: SyncServices, reader: DependencyReader, *, first: str
) -> tuple[ProjectDependencies, ...]:
    """One batch of a closure round: the requirements of the releases its projects select."""
    return dependencies_batch(names, config, services, reader)


@task(name="list-projects", cache_policy=NO_CACHE)
def list_projects_task(config: SyncConfig, services: SyncServices) -> Work:
    """Compare the listing's serials with the memory: what to fetch; record the projects gone."""
    return list_projects(config, services)


@task(name="resolve-batch", cache_policy=NO_CACHE, task_run_name="resolve-batch-{first}")
def resolve_batch_task(
    batch: Sequence[Wanted], config: SyncConfig, services: SyncServices, *, first: str
) -> ResolvedBatch:
    """Fetch one batch's project pages."""
    return resolve_batch(batch, config, services)


@task(name="filter-batch", cache_policy=NO_CACHE, task_run_name="filter-batch-{first}")
def filter_batch_task(
    batch: ResolvedBatch, config: SyncConfig, *, first: str, advisories: Advisories | None = None
) -> ResolvedBatch:
    """Decide which files of one batch to keep (pure)."""
    return filter_batch(batch, config, advisories)


@task(name="fetch-batch", cache_policy=NO_CACHE, task_run_name="fetch-batch-{first}")
def fetch_batch_task(
    batch: ResolvedBatch, config: SyncConfig, services: SyncServices, *, first: str
) -> BatchReport | State[BatchReport]:
    """Download or record one batch's kept files and stage them. A batch whose projects failed ends
    ``Failed``, its report kept as the state's data (``future.result(raise_on_failure=False)``)."""
    report = fetch_batch(batch, config, services)
    if not report.failures:
        return report
    shown = "; ".join(f"{name}: {why}" for name, why in sorted(report.failures.items())[:3])
    more = f" (and {len(report.failures) - 3} more)" if len(report.failures) > 3 else ""
    message = f"{len(report.failures)} of {report.projects} project(s) failed: {shown}{more}"
    return Failed(message=message, data=report)


@task(name="commit-version", cache_policy=NO_CACHE)
def commit_version_task(
    config: SyncConfig,
    services: SyncServices,
    *,
    report: Mapping[str, object],
    scope: Scope,
    status_changes: Mapping[str, tuple[str, str | None] | None],
    withdrawn: Sequence[str],
    remove_packages: Collection[int] = (),
) -> VersionView | None:
    """Turn what the sync staged into the next repository version (one transaction)."""
    return commit_version(
        config,
        services,
        report=report,
        scope=scope,
        status_changes=status_changes,
        withdrawn=withdrawn,
        remove_packages=remove_packages,
    )
