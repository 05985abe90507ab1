"""Air-gap commands: ``repository export`` and ``repository import`` (``docs/airgap.md``).

Registered on the shared Typer apps when ``flows.cli.main`` imports this module. Output is JSON
on stdout; bad input is one line on stderr and exit 1, with nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli_app import Name, check_range, emit, repository_app
from storage.schema import MAX_INT

if TYPE_CHECKING:  # the rest is imported by the command that runs (see flows.cli's docstring)
    from storage.artifacts import ArtifactStore
    from storage.catalog import Catalog
    from storage.export import MissingFile

__all__ = ["repository_export", "repository_import", "fetch_missing"]

DEFAULT_CHUNK_SIZE = "2GiB"
_FETCH_WORKERS = 4


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
    from importlib.metadata import version as package_version

    from flows.runtime import catalog_for, store_for
    from flows.settings import Settings
    from storage.export import export_version, missing_files, resolve_versions
    from storage.export_format import MissingContent, parse_size

    size = parse_size("chunk_size", chunk_size)
    settings = Settings()
    catalog = catalog_for(settings)
    store = store_for(settings)
    selection = resolve_versions(catalog, name, version, since_version)
    missing = missing_files(catalog, selection)
    if missing and not fetch_missing_files:
        raise MissingContent(selection.repository, selection.version, [m.filename for m in missing])
    fetched = fetch_missing(catalog, store, name, missing) if missing else 0
    started = time.monotonic()
    result = export_version(
        catalog,
        store,
        repository=name,
        version=selection.version,
        since_version=since_version,
        directory=to,
        chunk_size=size,
        writer=f"mirrorflow {package_version('mirrorflow')}",
    )
    seconds = time.monotonic() - started
    toc = result.toc
    emit(
        {
            "repository": toc.repository,
            "version": toc.version,
            "since_version": toc.since_version,
            "to": str(to),
            "chunks": len(toc.chunks),
            "chunks_written": result.written,
            "chunks_skipped": result.skipped,
            "packages": toc.packages,
            "removed": toc.removed,
            "artifacts": toc.artifacts,
            "artifact_bytes": toc.artifact_bytes,
            "fetched": fetched,
            "seconds": round(seconds, 3),
            "mb_per_s": round(result.bytes_written / 1e6 / seconds, 1) if seconds > 0 else None,
        }
    )


def fetch_missing(catalog: Catalog, store: ArtifactStore, repository: str, missing: list[MissingFile]) -> int:
    """Download the files of ``missing`` with the repository's remote settings, verified, and store them.

    Each file is checked against its recorded sha256 and size by the store (``DigestMismatch``:
    nothing stored); its artifact row is recorded only once the object is stored. Returns how many.
    """
    from flows.cli_maintenance import _upstream
    from storage.content import ContentWriter

    writer = ContentWriter(catalog)
    with _upstream(catalog, repository, _FETCH_WORKERS) as fetch:
        for file in missing:
            with fetch(file.url) as chunks:
                stored = store.put_chunks(chunks, sha256=file.sha256, size=file.size)
            writer.record_artifacts([(stored.sha256, stored.size, stored.key)])
    return len(missing)


@repository_app.command("import")
def repository_import(
    name: Name,
    source: Annotated[
        Path, typer.Option("--from", help="Directory holding an export (its toc.json and chunks).")
    ],
) -> None:
    """Import an export as the next version of a repository (created if need be); verified first."""
    from flows.runtime import catalog_for, store_for
    from flows.settings import Settings
    from storage.import_ import import_export

    settings = Settings()
    started = time.monotonic()
    result = import_export(catalog_for(settings), store_for(settings), directory=source, repository=name)
    emit(
        {
            "repository": result.repository,
            "version": result.version,
            "changed": result.changed,
            "added": result.added,
            "removed": result.removed,
            "present": result.present,
            "chunks": result.chunks,
            "artifacts_stored": result.artifacts_stored,
            "artifacts_already_present": result.artifacts_present,
            "seconds": round(time.monotonic() - started, 3),
        }
    )
