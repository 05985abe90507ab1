"""The sync flow: list projects -> fetch and resolve -> filter -> download or record -> commit.

Run it from Python (``sync_repository(repository="foo", remote="bar")``), from the CLI
(``mirrorflow repository sync --name foo --remote bar``) or from a Prefect deployment.
Projects are mapped in batches (a flow run must not hold tens of thousands of task runs);
the new version is committed in one database transaction, or not at all.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from flows.remote_spec import RemoteFields, filter_spec_of
from flows.runtime import catalog_for, http_client_for, store_for
from flows.settings import Settings
from storage.content import ContentWriter
from tasks.batch import BatchReport, SyncFailed, SyncPlan, SyncServices
from tasks.index_client import IndexClient
from tasks.steps import commit_version_task, list_projects_task, sync_batch_task

__all__ = ["sync_repository", "run_sync", "Progress", "PROGRESS", "NoRemote"]

DEFAULT_CONCURRENCY = 10
DEFAULT_RETRIES = 3


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, count: int) -> None: ...


#: Set by the CLI to draw a progress bar; flows started elsewhere report through Prefect only.
PROGRESS: ContextVar[Progress | None] = ContextVar("mirrorflow_progress", default=None)


class NoRemote(ValueError):
    def __init__(self, repository: str) -> None:
        super().__init__(f"repository {repository!r} has no remote: pass one (--remote NAME)")


@flow(name="sync-repository", task_runner=ThreadPoolTaskRunner(max_workers=4))
def sync_repository(repository: str, remote: str | None = None, mirror: bool = False) -> dict[str, Any]:
    """Sync ``repository`` from ``remote`` (default: the repository's remote).

    Returns ``{"repository", "version", "report"}``; ``version`` is None when nothing changed.
    Raises ``SyncFailed`` (no new version) when any project could not be synced.
    """
    logger = get_run_logger()
    settings = Settings()
    catalog = catalog_for(settings)
    repo = catalog.get_repository(repository)
    remote_name = remote or catalog.remote_name_of(repo)
    if remote_name is None:
        raise NoRemote(repository)
    fields = RemoteFields.from_row(catalog.get_remote(remote_name))
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
    )
    progress = PROGRESS.get()
    started = time.monotonic()
    writer = ContentWriter(catalog)
    with http_client_for(fields, concurrency=concurrency) as http:
        index = IndexClient(fields.url, client=http, max_page_bytes=settings.max_page_bytes)
        services = SyncServices(
            index=index,
            store=store_for(settings),
            writer=writer,
            on_progress=progress.advance if progress else None,
        )
        names = list_projects_task(plan.spec, index, plan.attempts)
        logger.info(
            "syncing %d project(s) of %s into %r (policy %s)", len(names), fields.url, repository, plan.policy
        )
        if progress:
            progress.start(len(names))
        batches = [names[i : i + settings.batch_size] for i in range(0, len(names), settings.batch_size)]
        futures = sync_batch_task.map(batches, unmapped(plan), unmapped(services))
        report = BatchReport()
        try:
            for future in futures:
                report = report + future.result()
        except BaseException:
            writer.discard(plan.sync_id)
            raise
        if report.failures:
            writer.discard(plan.sync_id)
            raise SyncFailed(repository, report.failures)
        summary = report.as_dict() | {"duration_s": round(time.monotonic() - started, 3), "mirror": mirror}
        version = commit_version_task(plan, services, mirror=mirror, report=summary)
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


def run_sync(repository: str, remote: str | None, *, mirror: bool, settings: Settings) -> dict[str, Any]:
    """Run the flow in this process with the task runner sized by the settings."""
    runner = ThreadPoolTaskRunner(max_workers=settings.task_workers)
    return sync_repository.with_options(task_runner=runner)(
        repository=repository, remote=remote, mirror=mirror
    )
