"""``mirrorflow server start|stop|status``: the local Prefect server (``flows.local_server``).

Registered on the shared Typer apps when ``flows.cli.main`` imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from flows.cli_app import app, emit

if TYPE_CHECKING:
    from flows.local_server import LocalServer

__all__ = ["server_app"]

server_app = typer.Typer(
    no_args_is_help=True,
    help="The local Prefect server ad hoc syncs use (MIRRORFLOW_PREFECT_SERVER=local).",
    rich_markup_mode=None,
)
app.add_typer(server_app, name="server")


def _server() -> LocalServer:
    from flows.local_server import LocalServer
    from flows.settings import Settings

    return LocalServer(Settings().home)


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server in the background (or show the one running)."""
    from flows.local_server import state_view

    server = _server()
    state, started = server.ensure()
    emit(state_view(state, server) | {"started": started})


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server."""
    from flows.local_server import state_view

    server = _server()
    stopped = server.stop()
    emit(state_view(None, server) | {"stopped": stopped is not None})


@server_app.command("status")
def server_status() -> None:
    """Show whether the local Prefect server runs, and its URL."""
    from flows.local_server import state_view

    server = _server()
    emit(state_view(server.running(), server))
