"""``mirrorflow server start|stop|status``: the local Prefect server (``mirrorflow.flows.local_server``) and the
warm sync processes beside it (``mirrorflow.flows.warm_sync``).

Registered on the shared Typer apps when ``mirrorflow.flows.cli.main`` imports this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from mirrorflow.flows.cli_app import app, emit

if TYPE_CHECKING:
    from mirrorflow.flows.local_server import LocalServer

__all__ = ["server_app"]

server_app = typer.Typer(
    no_args_is_help=True,
    help="The local Prefect server and warm sync processes ad hoc syncs use (MIRRORFLOW_PREFECT_SERVER=local).",
    rich_markup_mode=None,
)
app.add_typer(server_app, name="server")


def _server() -> LocalServer:
    from mirrorflow.flows.local_server import LocalServer
    from mirrorflow.flows.warm_sync_client import home_of

    return LocalServer(home_of())


def _warm_view() -> list[dict[str, Any]]:
    """Every warm sync process of this home: pid, port, settings key, whether it answers, syncs."""
    from mirrorflow.flows.warm_sync_client import WarmSyncs, home_of

    shown = []
    for state, status in WarmSyncs(home_of()).all():
        shown.append(
            {
                "pid": state.pid,
                "url": f"tcp://127.0.0.1:{state.port}",
                "settings": state.key,
                "running": status is not None,
                "syncs_served": status["served"] if status else None,
                "syncing": status["syncing"] if status else None,
                "log": state.log,
            }
        )
    return shown


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server and a warm sync process for these settings (or show them)."""
    from mirrorflow.flows.local_server import state_view
    from mirrorflow.flows.warm_sync_client import WarmSyncs, home_of

    server = _server()
    state, started = server.ensure()
    _, warm_started = WarmSyncs(home_of()).ensure(os.environ, home=home_of(), server=state)
    emit(
        state_view(state, server)
        | {"started": started, "workers": _warm_view(), "worker_started": warm_started}
    )


@server_app.command("stop")
def server_stop() -> None:
    """Stop the warm sync processes and the local Prefect server."""
    from mirrorflow.flows.local_server import state_view
    from mirrorflow.flows.warm_sync_client import WarmSyncs, home_of

    server = _server()
    workers = WarmSyncs(home_of()).stop_all()
    stopped = server.stop()
    emit(state_view(None, server) | {"stopped": stopped is not None, "workers_stopped": workers})


@server_app.command("status")
def server_status() -> None:
    """Show whether the local Prefect server runs, its URL, and the warm sync processes."""
    from mirrorflow.flows.local_server import state_view

    server = _server()
    emit(state_view(server.running(), server) | {"workers": _warm_view()})
