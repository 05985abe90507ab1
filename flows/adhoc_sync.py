"""An ad hoc sync as the CLI shows it: the checks, the run, its warnings, the JSON and the exit code.

``mirrorflow repository sync`` runs this in one of two processes:

- the warm sync process (``mirrorflow.flows.warm_sync``), next to the local Prefect server, which streams
  what it writes back to the thin CLI (``mirrorflow.flows.warm_sync_client``);
- the CLI's own process, with ``MIRRORFLOW_PREFECT_SERVER=temporary`` or ``PREFECT_API_URL`` set.

Both print the same thing because both run ``run_cli_sync``: it writes through a ``SyncOutput``
(the terminal, or the request's stream) and returns the exit code. Errors it does not print are
raised, as ``MirrorflowError``s the caller turns into their one line.

This module imports only the standard library when loaded: ``mirrorflow.flows.cli`` takes ``PARTIAL_EXIT``
from it without loading Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mirrorflow.flows.settings import Settings
    from mirrorflow.flows.sync_repository import Progress
    from mirrorflow.storage.catalog import Catalog

__all__ = ["PARTIAL_EXIT", "SyncOutput", "check_sync_request", "run_cli_sync"]

#: The exit code of a sync that committed a version without some failed projects or files.
PARTIAL_EXIT = 3


class SyncOutput(Protocol):
    """Where a CLI sync writes: a line on stderr, the JSON on stdout."""

    def warn(self, line: str) -> None: ...
    def result(self, text: str) -> None: ...


def check_sync_request(catalog: Catalog, name: str, remote: str | None, *, scheduled_remote: bool) -> None:
    """Refuse an unknown repository or remote, or a repository without one, before any run starts.

    ``scheduled_remote``: a background sync may use the remote of the repository's schedule.
    """
    from mirrorflow.flows.cli_app import UsageError

    repo = catalog.get_repository(name)
    if remote is not None:
        catalog.get_remote(remote)
    elif catalog.remote_name_of(repo) is None and not scheduled_remote:
        raise UsageError(f"remote: repository {name!r} has no remote; pass one (--remote NAME)")


def run_cli_sync(
    name: str,
    remote: str | None,
    *,
    mirror: bool,
    settings: Settings,
    out: SyncOutput,
    progress: Progress | None,
) -> int:
    """Run the sync flow in this process and write what the CLI shows; returns the exit code.

    0, or ``PARTIAL_EXIT`` when the version was committed without some projects or files (the
    error line says which). ``progress`` (when given) sees the projects' count and each batch.
    """
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.sync_repository import PROGRESS, run_sync
    from mirrorflow.flows.views import to_json, version_view

    catalog = catalog_for(settings)
    check_sync_request(catalog, name, remote, scheduled_remote=False)  # fail fast, before the run
    token = PROGRESS.set(progress)
    try:
        result = run_sync(name, remote, mirror=mirror, settings=settings)
    finally:
        PROGRESS.reset(token)
    from mirrorflow.flows.report import closure_lines

    for line in closure_lines(result.report):  # the JSON holds it too, under report.closure
        out.warn(line)
    for project in result.report.get("not_found") or []:
        out.warn(f"Warning: included project {project!r} is not on the index; nothing synced for it")
    version = catalog.get_version(name, result.version)
    # "changed": false when the sync found nothing new; the version shown is then the latest one.
    out.result(
        to_json(version_view(version) | {"changed": result.version is not None, "report": result.report})
    )
    if result.partial:
        from mirrorflow.tasks.commit import SyncPartial

        out.warn(f"Error: {SyncPartial(name, result.version, result.stale)}")
        return PARTIAL_EXIT
    return 0
