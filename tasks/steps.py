"""The sync's Prefect tasks: thin wrappers, on the outside, over ``tasks.batch``.

They take clients as arguments, so Prefect must not hash them for caching (``NO_CACHE``);
idempotency comes from the storage, not from Prefect's result cache. Retries live inside the
steps, per request and for transient errors only (``tasks.retrying``).
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.catalog import VersionView
from tasks.batch import BatchReport, SyncPlan, SyncServices, list_projects, sync_projects
from tasks.filters import FilterSpec
from tasks.index_client import IndexClient

__all__ = ["list_projects_task", "sync_batch_task", "commit_version_task"]


@task(name="list-projects", cache_policy=NO_CACHE)
def list_projects_task(spec: FilterSpec, index: IndexClient, attempts: int) -> list[str]:
    """The projects this sync will look at."""
    return list(list_projects(spec, index, attempts=attempts))


@task(name="sync-batch", cache_policy=NO_CACHE, task_run_name="sync-batch-{names[0]}")
def sync_batch_task(names: Sequence[str], plan: SyncPlan, services: SyncServices) -> BatchReport:
    """Fetch, filter, download or record, and stage one batch of projects."""
    return sync_projects(names, plan, services)


@task(name="commit-version", cache_policy=NO_CACHE)
def commit_version_task(
    plan: SyncPlan, services: SyncServices, *, mirror: bool, report: dict[str, object]
) -> VersionView | None:
    """Turn what the sync staged into the next repository version (one transaction)."""
    return services.writer.commit_version(
        repository=plan.repository,
        sync_id=plan.sync_id,
        mirror=mirror,
        remote_name=plan.remote,
        report=report,
    )
