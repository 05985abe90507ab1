"""Serve one Prefect deployment per repository, with the schedule kept in the catalog.

    python -m deployments.serve            # runs until interrupted; needs PREFECT_API_URL

For users without work pools: this process polls the Prefect server for scheduled runs and for
runs started from the UI or with ``mirrorflow repository sync --background``, and executes them.
Deployments are named ``sync-repository/<repository>``; a repository without a schedule still
gets one (no schedule), so that it can be started by hand. Restart the process after adding a
repository or changing a schedule (``mirrorflow repository schedule``).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from flows.allocator import tune_allocator
from flows.runtime import catalog_for
from flows.settings import Settings
from flows.sync_repository import run_tags, sync_repository
from storage.catalog import Catalog
from storage.schedules import ScheduleView, list_schedules

__all__ = ["build_deployments", "deployment_parameters", "main"]


def deployment_parameters(repository: str, schedule: ScheduleView | None) -> dict[str, Any]:
    """The parameters a repository's deployment runs with (the UI form starts from these)."""
    parameters: dict[str, Any] = {"repository": repository, "mirror": bool(schedule and schedule.mirror)}
    if schedule is not None and schedule.remote is not None:
        parameters["remote"] = schedule.remote
    return parameters


def build_deployments(catalog: Catalog) -> list[Any]:
    """One ``RunnerDeployment`` per repository, scheduled when the catalog holds a schedule."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    schedules = {view.repository: view for view in list_schedules(catalog)}
    deployments = []
    for repo in catalog.list_repositories():
        schedule = schedules.get(repo.name)
        timing: dict[str, Any] = {}
        if schedule is not None and schedule.cron is not None:
            timing["cron"] = schedule.cron
        elif schedule is not None and schedule.interval_seconds is not None:
            timing["interval"] = timedelta(seconds=schedule.interval_seconds)
        deployments.append(
            sync_repository.to_deployment(
                name=repo.name,
                parameters=deployment_parameters(repo.name, schedule),
                description=f"Sync repository {repo.name!r}"
                + (f": {repo.description}" if repo.description else ""),
                tags=run_tags(
                    repo.name, (schedule.remote if schedule else None) or catalog.remote_name_of(repo)
                ),
                # Prefect's own guard, in front of the catalog's lock (storage.locks): a run that
                # comes while another of this repository runs waits in AwaitingConcurrencySlot
                # instead of holding a runner process while it waits for the lock.
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                ),
                enforce_parameter_schema=True,
                **timing,
            )
        )
    return deployments


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="Most flow runs at once (default: no limit).")
    args = parser.parse_args(argv)
    tune_allocator()  # before the runner's threads start: see flows.allocator
    from prefect import serve

    deployments = build_deployments(catalog_for(Settings()))
    if not deployments:
        raise SystemExit("Error: no repositories to serve; create one with 'mirrorflow repository create'")
    serve(*deployments, limit=args.limit)


if __name__ == "__main__":
    main()
