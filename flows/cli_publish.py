"""``mirrorflow repository publish``: a version as static files for any web server (``mirrorflow.server.publish``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mirrorflow.flows.cli_app import Name, UsageError, check_range, emit, open_catalog, repository_app

__all__ = ["repository_publish"]


@repository_app.command("publish")
def repository_publish(
    name: Name,
    to: Annotated[
        Path, typer.Option("--to", help="Directory to write the version to (replaced when it holds one).")
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: latest).")
    ] = None,
) -> None:
    """Write a version as PEP 503/691 pages, files and .metadata files: serve DIR with any web server."""
    if version is not None:
        check_range("version", version, 0, 2**31 - 1, what="a version number")
    from mirrorflow.flows.runtime import store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.server.publish import publish
    from mirrorflow.storage.serving import ServingCatalog

    if (to.exists() or to.is_symlink()) and not to.is_dir():
        raise UsageError(f"to: {str(to)!r} is a file, not a directory")
    catalog = open_catalog()
    done = publish(ServingCatalog(catalog), store_for(Settings()), name, version, to)
    emit(
        {
            "repository": done.repository,
            "version": done.version,
            "to": str(done.to),
            "projects": done.projects,
            "files": done.files,
            "metadata_files": done.metadata,
            "tree": str(done.tree),
            "files_linked_from_before": done.linked,
            "pages_unchanged": done.pages_linked,
            "blocked_files_left_out": done.blocked,
            "written": done.written,
        }
    )
