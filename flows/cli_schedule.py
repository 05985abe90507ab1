"""``mirrorflow repository schedule``: a repository's sync schedule, kept in the catalog.

``python -m mirrorflow.deployments.serve`` serves one Prefect deployment per repository with the schedule
stored here, and picks up a change within its poll interval (``--poll``), no restart needed. The
catalog is the one source of truth: ``--pause``, ``--resume`` and ``--delete`` change it here, and
serve puts back the catalog's schedule over a change made in the Prefect UI, with a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from mirrorflow.flows.cli_app import Name, UsageError, check_range, emit, open_catalog, repository_app

if TYPE_CHECKING:  # imported by the command that runs (see flows.cli's docstring)
    from mirrorflow.storage.schedules import ScheduleView

__all__ = [
    "repository_schedule",
    "repository_schedule_show",
    "schedule_view",
    "deployment_name",
    "submit_sync",
]


#: The longest interval between scheduled syncs: a year, in seconds (documented in the README).
MAX_INTERVAL = 365 * 24 * 3600


def schedule_view(view: ScheduleView) -> dict[str, Any]:
    return {
        "repository": view.repository,
        "remote": view.remote,
        "cron": view.cron,
        "interval": view.interval_seconds,
        "mirror": view.mirror,
        "paused": view.paused,
        "last_updated": view.updated,
    }


def _check_cron(cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise UsageError(f"cron: {cron!r} is not a cron expression like '0 * * * *'") from None


@repository_app.command("schedule")
def repository_schedule(
    name: Name,
    remote: Annotated[
        str | None, typer.Option(help="Remote to sync from (default: the repository's).")
    ] = None,
    cron: Annotated[str | None, typer.Option(help="Cron expression, e.g. '0 * * * *'.")] = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between syncs, e.g. 3600.")] = None,
    mirror: Annotated[
        bool, typer.Option("--mirror/--additive", help="Remove what the remote no longer has.")
    ] = False,
    pause: Annotated[bool, typer.Option("--pause", help="Pause the schedule (kept for --resume).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Resume a paused schedule.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the schedule.")] = False,
) -> None:
    """Create or update the repository's sync schedule (one of --cron or --interval), or
    --pause, --resume or --delete it."""
    actions = [
        flag for flag, given in (("--pause", pause), ("--resume", resume), ("--delete", delete)) if given
    ]
    if actions:
        _change_schedule(name, actions, remote=remote, cron=cron, interval=interval)
        return
    if (cron is None) == (interval is None):
        raise UsageError(
            f"schedule: give exactly one of --cron or --interval (got cron={cron!r}, interval={interval!r})"
        )
    if interval is not None:
        check_range("interval", interval, 1, MAX_INTERVAL, what="a number of seconds")
    if cron is not None:
        _check_cron(cron)
    from mirrorflow.storage.schedules import get_schedule, set_schedule

    catalog = open_catalog()
    existing = get_schedule(catalog, name)
    if remote is None and existing is not None:
        remote = existing.remote  # changing the timing keeps the schedule's remote
    if remote is None and catalog.remote_name_of(catalog.get_repository(name)) is None:
        raise UsageError(f"remote: repository {name!r} has no remote; pass --remote NAME")
    view = set_schedule(catalog, name, remote=remote, cron=cron, interval_seconds=interval, mirror=mirror)
    emit(schedule_view(view))


def _change_schedule(
    name: str, actions: list[str], *, remote: str | None, cron: str | None, interval: int | None
) -> None:
    """--pause, --resume or --delete: alone, on a schedule that exists."""
    given = [
        f"--{option}"
        for option, value in (("remote", remote), ("cron", cron), ("interval", interval))
        if value is not None
    ]
    if len(actions) > 1 or given:
        raise UsageError(f"schedule: {actions[0]} is given alone (got {' '.join(actions[1:] + given)})")
    from mirrorflow.storage.schedules import delete_schedule, get_schedule, set_paused

    catalog = open_catalog()
    catalog.get_repository(name)
    if get_schedule(catalog, name) is None:
        raise UsageError(f"name: repository {name!r} has no schedule; create one with --cron or --interval")
    if actions[0] == "--delete":
        delete_schedule(catalog, name)
        emit(None)
    else:
        emit(schedule_view(set_paused(catalog, name, paused=actions[0] == "--pause")))


@repository_app.command("schedule-show")
def repository_schedule_show(name: Name) -> None:
    """Show the repository's sync schedule (null when it has none)."""
    from mirrorflow.storage.schedules import get_schedule

    catalog = open_catalog()
    catalog.get_repository(name)
    view = get_schedule(catalog, name)
    emit(None if view is None else schedule_view(view))


def deployment_name(repository: str) -> str:
    """The deployment ``mirrorflow.deployments.serve`` makes for ``repository`` (``<flow>/<deployment>``)."""
    return f"sync-repository/{repository}"


def submit_sync(repository: str, remote: str | None, *, mirror: bool) -> dict[str, Any]:
    """Start a run of ``repository``'s deployment without waiting; return its flow run id and state."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from mirrorflow.flows.params import validate_sync_parameters

    parameters: dict[str, Any] = {"repository": repository, "mirror": mirror}
    if remote is not None:
        parameters["remote"] = remote
    validate_sync_parameters(**parameters)
    try:
        started = run_deployment(deployment_name(repository), parameters=parameters, timeout=0)
    except ObjectNotFound:
        raise UsageError(
            f"name: no Prefect deployment {deployment_name(repository)!r} for repository {repository!r}; "
            "start 'python -m mirrorflow.deployments.serve' against the same Prefect server first"
        ) from None
    run = cast(FlowRun, started)  # called from synchronous code, run_deployment returns the run
    return {
        "flow_run_id": str(run.id),
        "flow_run_name": run.name,
        "deployment": deployment_name(repository),
        "state": run.state.name if run.state else None,
    }
