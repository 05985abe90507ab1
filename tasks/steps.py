"""The sync's Prefect tasks: thin wrappers, on the outside, over ``tasks.batch``.

Tasks receive plain values (``SyncPlan``, ``ServicesSpec``), never live clients, so that they
pickle and run on Dask workers as well as on the flow's thread pool; each looks its clients up
with ``services_for`` (the flow's own in its process, per-process ones elsewhere). Caching is off
(``NO_CACHE``): idempotency comes from the storage, not from Prefect's result cache. Retries live
inside the steps, per request and for transient errors only (``tasks.retrying``), which is why the
task decorators carry none: a Prefect-level retry would also retry a 404 or a hash mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.catalog import VersionView
from tasks.batch import BatchReport, SyncPlan, sync_projects
from tasks.incremental import plan_work, record_gone
from tasks.planning import Work
from tasks.services import ServicesSpec, services_for

__all__ = ["plan_work_task", "sync_batch_task", "commit_version_task"]


@task(name="plan-work", cache_policy=NO_CACHE)
def plan_work_task(plan: SyncPlan, spec: ServicesSpec, accepted: list[str]) -> Work:
    """Compare the listing's serials with the memory: what to fetch; record the projects gone."""
    services = services_for(spec)
    work = plan_work(plan, services, accepted=accepted)
    record_gone(work.gone, plan, services)
    return work


@task(name="sync-batch", cache_policy=NO_CACHE, task_run_name="sync-batch-{names[0]}")
def sync_batch_task(names: Sequence[str], plan: SyncPlan, spec: ServicesSpec) -> BatchReport:
    """Fetch, filter, download or record, and stage one batch of projects."""
    return sync_projects(names, plan, services_for(spec))


@task(name="commit-version", cache_policy=NO_CACHE)
def commit_version_task(
    plan: SyncPlan,
    spec: ServicesSpec,
    *,
    mirror: bool,
    report: dict[str, object],
    scope: str = "all",
    fingerprint: str | None = None,
) -> VersionView | None:
    """Turn what the sync staged into the next repository version (one transaction)."""
    return services_for(spec).writer.commit_version(
        repository=plan.repository,
        sync_id=plan.sync_id,
        mirror=mirror,
        remote_name=plan.remote,
        report=report,
        scope=scope,
        fingerprint=fingerprint,
    )
