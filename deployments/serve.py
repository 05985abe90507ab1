"""Serve one Prefect deployment per repository, with the schedule kept in the catalog.

    python -m mirrorflow.deployments.serve [--poll 30]    # runs until interrupted

Which Prefect server: the one ``PREFECT_API_URL`` names; without it (and with
``MIRRORFLOW_PREFECT_SERVER`` unset or ``local``), the local server of ``MIRRORFLOW_HOME`` that the CLI
uses (``mirrorflow.flows.local_server``), started first if need be, so that
``mirrorflow repository sync --background`` finds the deployments there. ``MIRRORFLOW_PREFECT_SERVER=temporary``
leaves Prefect to start its temporary server, which only this process sees.

For users without work pools: this process polls the Prefect server for scheduled runs and for
runs started from the UI or with ``mirrorflow repository sync --background``, and executes them.
Deployments are named ``sync-repository/<repository>``; a repository without a schedule still
gets one (no schedule), so that it can be started by hand.

Every ``--poll`` seconds it reads the catalog again: a new repository is served, a deleted one's
deployment is deleted, and a schedule changed with ``mirrorflow repository schedule`` (including
``--pause``, ``--resume``, ``--delete``) is applied, without a restart (Prefect's ``Runner``
watches the deployments registered with it on each of its polls, so one can be added while it runs).

One owner per repository, and one source of truth per schedule:

- A repository that a work-pool deployment syncs (any ``sync-repository`` deployment with a work
  pool whose ``repository`` parameter names it, see ``deployments/prefect.yaml``) belongs to the
  pool: serve does not serve it, and deletes its served deployment if it had one.
- The catalog holds the schedule. A change made in the Prefect UI to a served deployment's
  schedule (edit, toggle, pause) is undone at the next poll, with a warning in this process's log
  naming the deployment and the command to use instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mirrorflow.flows.allocator import tune_allocator
from mirrorflow.flows.local_server import local_server_wanted, use_local_server
from mirrorflow.flows.locations import keep_prefect_results_in_home
from mirrorflow.flows.runtime import catalog_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.schedules import ScheduleView, list_schedules

# The flow (mirrorflow.flows.sync_repository) is imported where it is used: it imports Prefect, which
# reads its settings once, on import, and main must first choose the server (choose_prefect_server).

__all__ = [
    "FLOW_NAME",
    "DEFAULT_POLL",
    "Served",
    "build_deployments",
    "deployment_parameters",
    "wanted_deployments",
    "drift",
    "pooled_repositories",
    "CatalogServer",
    "choose_prefect_server",
    "configure_logging",
    "main",
]

FLOW_NAME = "sync-repository"
#: Seconds between two reads of the catalog.
DEFAULT_POLL = 30.0

log = logging.getLogger("mirrorflow.serve")


def deployment_parameters(repository: str, schedule: ScheduleView | None) -> dict[str, Any]:
    """The parameters a repository's deployment runs with (the UI form starts from these)."""
    parameters: dict[str, Any] = {"repository": repository, "mirror": bool(schedule and schedule.mirror)}
    if schedule is not None and schedule.remote is not None:
        parameters["remote"] = schedule.remote
    return parameters


@dataclass(frozen=True, slots=True)
class Served:
    """What the catalog says one repository's served deployment is: compared poll to poll."""

    repository: str
    remote: str | None  # for the tags: the schedule's remote, else the repository's
    description: str
    mirror: bool
    schedule_remote: str | None
    cron: str | None
    interval_seconds: int | None
    paused: bool

    @property
    def parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"repository": self.repository, "mirror": self.mirror}
        if self.schedule_remote is not None:
            parameters["remote"] = self.schedule_remote
        return parameters


def wanted_deployments(catalog: Catalog, *, pooled: frozenset[str] = frozenset()) -> list[Served]:
    """One ``Served`` per repository of the catalog that no work pool owns."""
    schedules = {view.repository: view for view in list_schedules(catalog)}
    wanted = []
    for repo in catalog.list_repositories():
        if repo.name in pooled:
            continue
        schedule = schedules.get(repo.name)
        wanted.append(
            Served(
                repository=repo.name,
                remote=(schedule.remote if schedule else None) or catalog.remote_name_of(repo),
                description=f"Sync repository {repo.name!r}"
                + (f": {repo.description}" if repo.description else "")
                + ". Its schedule is kept in mirrorflow's catalog: change it with 'mirrorflow repository "
                f"schedule --name {repo.name}' (--pause, --resume, --delete); a change made here is undone.",
                mirror=bool(schedule and schedule.mirror),
                schedule_remote=schedule.remote if schedule else None,
                cron=schedule.cron if schedule else None,
                interval_seconds=schedule.interval_seconds if schedule else None,
                paused=bool(schedule and schedule.paused),
            )
        )
    return wanted


def deployment_options(served: Served) -> dict[str, Any]:
    """The options of ``Flow.to_deployment`` for one served repository."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.types.entrypoint import EntrypointType

    from mirrorflow.flows.sync_repository import run_tags

    timing: dict[str, Any] = {}
    if served.cron is not None:
        timing["cron"] = served.cron
    elif served.interval_seconds is not None:
        timing["interval"] = timedelta(seconds=served.interval_seconds)
    return dict(
        name=served.repository,
        parameters=served.parameters,
        description=served.description,
        tags=run_tags(served.repository, served.remote),
        # Prefect's own guard, in front of the catalog's lock (storage.locks): a run that
        # comes while another of this repository runs waits in AwaitingConcurrencySlot
        # instead of holding a runner process while it waits for the lock.
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        enforce_parameter_schema=True,
        paused=served.paused,
        # mirrorflow.flows.sync_repository.sync_repository: runs import the installed module
        # from any working directory, instead of loading flows/sync_repository.py as a script
        # (a second copy of the module, and a path relative to where this process started).
        entrypoint_type=EntrypointType.MODULE_PATH,
        **timing,
    )


def build_deployments(catalog: Catalog, *, pooled: frozenset[str] = frozenset()) -> list[Any]:
    """One ``RunnerDeployment`` per repository, scheduled when the catalog holds a schedule."""
    from mirrorflow.flows.sync_repository import sync_repository

    return [
        sync_repository.to_deployment(**deployment_options(served))
        for served in wanted_deployments(catalog, pooled=pooled)
    ]


def drift(served: Served, deployment: Any) -> str | None:
    """How the Prefect server's copy of a served deployment differs from the catalog (None: it does not).

    ``deployment`` is the server's ``DeploymentResponse``: its ``paused`` flag and ``schedules``.
    """
    if bool(deployment.paused) != served.paused:
        return f"paused is {deployment.paused}, the catalog says {served.paused}"
    found = []
    for item in deployment.schedules:
        schedule = item.schedule
        interval = getattr(schedule, "interval", None)
        found.append(
            (
                getattr(schedule, "cron", None),
                None if interval is None else int(interval.total_seconds()),
                bool(item.active),
            )
        )
    want = (
        []
        if served.cron is None and served.interval_seconds is None
        else [(served.cron, served.interval_seconds, True)]
    )
    if found != want:
        return f"schedules are {_timing(found)}, the catalog says {_timing(want)}"
    return None


def _timing(schedules: list[tuple[str | None, int | None, bool]]) -> str:
    if not schedules:
        return "none"
    return ", ".join(
        (f"cron {cron!r}" if cron is not None else f"every {interval} s") + ("" if active else " (inactive)")
        for cron, interval, active in schedules
    )


def pooled_repositories(deployments: list[Any]) -> dict[str, str]:
    """Repository -> the work-pool deployment that owns it, among the server's ``sync-repository`` ones."""
    owned = {}
    for deployment in deployments:
        repository = (deployment.parameters or {}).get("repository")
        if deployment.work_pool_name and isinstance(repository, str):
            owned[repository] = f"{FLOW_NAME}/{deployment.name} (work pool {deployment.work_pool_name!r})"
    return owned


class CatalogServer:
    """Keeps a running Prefect ``Runner``'s deployments equal to the catalog, one poll at a time."""

    def __init__(self, runner: Any, catalog: Catalog) -> None:
        self.runner, self.catalog = runner, catalog
        self.applied: dict[str, Served] = {}

    async def refresh(self) -> None:
        """Apply what changed in the catalog since the last call, and undo changes made elsewhere."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        from mirrorflow.flows.sync_repository import sync_repository

        async with get_client() as client:
            on_server = await client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME]))
            )
            pooled = pooled_repositories(on_server)
            served_now = {d.name: d for d in on_server if not d.work_pool_name}
            wanted = {s.repository: s for s in wanted_deployments(self.catalog, pooled=frozenset(pooled))}
            for repository in sorted(set(self.applied) | set(served_now)):
                if repository in wanted or repository not in self.applied and repository not in pooled:
                    continue
                # Gone from the catalog, or now owned by a work pool: nothing must sync it from here.
                why = f"it belongs to {pooled[repository]}" if repository in pooled else "it left the catalog"
                if repository in served_now:
                    await client.delete_deployment(served_now[repository].id)
                log.warning("no longer serving %s/%s: %s", FLOW_NAME, repository, why)
                self.applied.pop(repository, None)
            for repository, served in sorted(wanted.items()):
                previous = self.applied.get(repository)
                current = served_now.get(repository)
                if previous == served and current is not None:
                    changed = drift(served, current)
                    if changed is None:
                        continue
                    log.warning(
                        "%s/%s was changed outside mirrorflow (%s): restored the catalog's schedule; change "
                        "it with 'mirrorflow repository schedule --name %s'",
                        FLOW_NAME,
                        repository,
                        changed,
                        repository,
                    )
                await self.runner.aadd_deployment(
                    await sync_repository.ato_deployment(**deployment_options(served))
                )
                self.applied[repository] = served
                if previous != served:
                    log.info("serving %s/%s (%s)", FLOW_NAME, repository, _describe(served))

    async def poll(self, every: float) -> None:
        """Refresh every ``every`` seconds; a failed refresh is logged and tried again at the next."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
            except Exception as exc:  # the database or the API was away: keep serving what we have
                log.warning("could not refresh the served deployments: %s: %s", type(exc).__name__, exc)


def _describe(served: Served) -> str:
    timing = (
        _timing([(served.cron, served.interval_seconds, True)])
        if served.cron or served.interval_seconds
        else "no schedule"
    )
    return timing + (", paused" if served.paused else "")


async def serve_catalog(catalog: Catalog, *, limit: int | None, poll: float) -> None:
    """Serve the catalog's repositories until interrupted, following the catalog every ``poll`` seconds."""
    from prefect.runner import Runner

    runner = Runner(name="mirrorflow-serve", limit=limit)
    server = CatalogServer(runner, catalog)
    await server.refresh()
    if not server.applied:
        log.warning(
            "no repositories to serve yet; create one with 'mirrorflow repository create' (polling every %s s)",
            poll,
        )
    poller = asyncio.create_task(server.poll(poll))
    try:
        await runner.start()
    finally:
        poller.cancel()


def configure_logging() -> None:
    """Show serve's own INFO lines (``serving sync-repository/<name> (...)``) on stderr.

    Prefect configures logging when it starts (the root logger at WARNING, its own handler), which
    makes ``basicConfig`` a no-op: the level is set on serve's logger itself.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mirrorflow.deployments.serve", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--limit", type=int, default=None, help="Most flow runs at once (default: no limit).")
    parser.add_argument(
        "--poll",
        type=float,
        default=DEFAULT_POLL,
        help=f"Seconds between two reads of the catalog (default {DEFAULT_POLL:g}).",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.poll <= 86400:
        parser.error(f"poll: must be a number of seconds from 1 to 86400 (got {args.poll})")
    settings = choose_prefect_server()
    tune_allocator()  # before the runner's threads start: see flows.allocator
    configure_logging()
    asyncio.run(serve_catalog(catalog_for(settings), limit=args.limit, poll=args.poll))


def choose_prefect_server() -> Settings:
    """Point Prefect where the CLI points it, before Prefect is imported: the server of
    ``PREFECT_API_URL``, else (``MIRRORFLOW_PREFECT_SERVER`` unset or ``local``) the home's local server,
    started first if need be (said once, with its UI's URL); and its results under the home. The
    settings read (a bad value is one line, before any server starts)."""
    settings = Settings()
    keep_prefect_results_in_home()
    if local_server_wanted():
        use_local_server(settings.home)
    return settings


if __name__ == "__main__":
    main()
