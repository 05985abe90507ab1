"""Air-gap commands: ``repository export`` and ``repository import`` (``docs/airgap.md``).

Registered on the shared Typer apps when ``mirrorflow.flows.cli.main`` imports this module. Output is JSON
on stdout; bad input is one line on stderr and exit 1, with nothing written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mirrorflow.flows.airgap_run import DEFAULT_CHUNK_SIZE
from mirrorflow.flows.cli_app import Name, check_range, emit, repository_app
from mirrorflow.storage.schema import MAX_INT

if TYPE_CHECKING:  # the rest is imported by the command that runs (see flows.cli's docstring)
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.export_format import TransferProgress

__all__ = ["repository_export", "repository_import"]


@repository_app.command("export")
def repository_export(
    name: Name,
    to: Annotated[
        Path, typer.Option("--to", help="Directory to write the export into (empty, or this export's).")
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: latest).")
    ] = None,
    since_version: Annotated[
        int | None,
        typer.Option(
            "--since-version", help="Export only what changed since this version (additions and removals)."
        ),
    ] = None,
    chunk_size: Annotated[
        str, typer.Option("--chunk-size", help="Size of each tar chunk, e.g. 2GiB, 500MB.")
    ] = DEFAULT_CHUNK_SIZE,
    fetch_missing_files: Annotated[
        bool,
        typer.Option(
            "--fetch-missing",
            help="Fetch files synced on_demand from the upstream (verified) instead of refusing them.",
        ),
    ] = False,
) -> None:
    """Export a repository version as tar chunks with a table of contents, to carry across an air gap."""
    for field, value in (("version", version), ("since_version", since_version)):
        if value is not None:
            check_range(field, value, 0, MAX_INT, what="a version number")
    from mirrorflow.storage.export_format import parse_size

    parse_size("chunk_size", chunk_size)  # a bad size is refused before anything starts

    def in_process(settings: Settings, progress: TransferProgress | None) -> dict[str, Any]:
        from mirrorflow.flows.airgap_run import run_export

        return run_export(repository=name, to=to, version=version, since_version=since_version,
                          chunk_size=chunk_size, fetch_missing_files=fetch_missing_files, settings=settings,
                          progress=progress)  # fmt: skip

    def as_flow() -> dict[str, Any]:
        from mirrorflow.flows.airgap import export_repository

        return export_repository(repository=name, to=str(to), version=version, since_version=since_version,
                                 chunk_size=chunk_size, fetch_missing=fetch_missing_files)  # fmt: skip

    emit(_run(in_process, as_flow, f"exporting {name}"))


@repository_app.command("import")
def repository_import(
    name: Name,
    source: Annotated[
        Path, typer.Option("--from", help="Directory holding an export (its toc.json and chunks).")
    ],
) -> None:
    """Import an export as the next version of a repository (created if need be); verified first."""

    def in_process(settings: Settings, progress: TransferProgress | None) -> dict[str, Any]:
        from mirrorflow.flows.airgap_run import run_import

        return run_import(repository=name, source=source, settings=settings, progress=progress)

    def as_flow() -> dict[str, Any]:
        from mirrorflow.flows.airgap import import_repository

        return import_repository(repository=name, source=str(source))

    emit(_run(in_process, as_flow, f"importing into {name}"))


def _run(
    in_process: Callable[[Settings, TransferProgress | None], dict[str, Any]],
    as_flow: Callable[[], dict[str, Any]],
    label: str,
) -> dict[str, Any]:
    """Run the export or import: as its Prefect flow when a Prefect server is configured (the run,
    its progress and its report then show in the Prefect UI, as a sync's do), else in this process
    without Prefect (no temporary server to start for a run nobody would see); see docs/airgap.md.
    A bar on a terminal either way."""
    from mirrorflow.flows.settings import Settings

    settings = Settings()
    with _progress_bar(label) as bar:
        if not (os.environ.get("PREFECT_API_URL") or settings.prefect_server == "local"):
            return in_process(settings, bar)
        from mirrorflow.flows.cli import _debug
        from mirrorflow.flows.local_server import use_local_server

        use_local_server(settings.home)
        from mirrorflow.flows.airgap import TRANSFER_PROGRESS
        from mirrorflow.flows.terminal import quiet_prefect_console

        if not _debug:
            quiet_prefect_console()  # the run's logs go to the Prefect UI; the terminal gets the result
        token = TRANSFER_PROGRESS.set(bar)
        try:
            return as_flow()
        finally:
            TRANSFER_PROGRESS.reset(token)


class _Bar:
    def __init__(self, progress: Any, label: str) -> None:
        self._progress, self._task = progress, progress.add_task(label, total=None)

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total, completed=0)

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)


@contextmanager
def _progress_bar(label: str) -> Iterator[TransferProgress | None]:
    """A bar with bytes, speed and ETA on stderr while the block runs; None when not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bar(progress, label)
