"""Export and import as plain calls, without Prefect: what the air-gap flows (``mirrorflow.flows.airgap``) run,
and what the CLI runs directly when no Prefect server is configured (``mirrorflow.flows.cli_export``).

Kept apart from ``mirrorflow.flows.airgap`` so that this path does not import Prefect (seconds of start-up).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mirrorflow.flows.settings import Settings
from mirrorflow.storage.export_format import TransferProgress

__all__ = ["DEFAULT_CHUNK_SIZE", "fetch_missing", "run_export", "run_import"]

DEFAULT_CHUNK_SIZE = "2GiB"
_FETCH_WORKERS = 4


def fetch_missing(catalog: Any, store: Any, repository: str, missing: list[Any]) -> int:
    """Download the files of ``missing`` with the repository's remote settings, verified, and store them.

    Each file is checked against its recorded sha256 and size by the store (``DigestMismatch``:
    nothing stored); its artifact row is recorded only once the object is stored. Returns how many.
    """
    from mirrorflow.flows.cli_maintenance import _upstream
    from mirrorflow.storage.content import ContentWriter

    writer = ContentWriter(catalog)
    with _upstream(catalog, repository, _FETCH_WORKERS) as fetch:
        for file in missing:
            with fetch(file.url) as chunks:
                stored = store.put_chunks(chunks, sha256=file.sha256, size=file.size)
            writer.record_artifacts([(stored.sha256, stored.size, stored.key)])
    return len(missing)


def run_export(
    *,
    repository: str,
    to: Path,
    version: int | None,
    since_version: int | None,
    chunk_size: str,
    fetch_missing_files: bool,
    settings: Settings,
    progress: TransferProgress | None,
) -> dict[str, Any]:
    """Export (fetching on_demand files first when asked); return the summary the CLI prints."""
    from importlib.metadata import version as package_version

    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.storage.export import export_version, missing_files, resolve_versions
    from mirrorflow.storage.export_format import MissingContent, parse_size

    size = parse_size("chunk_size", chunk_size)
    catalog = catalog_for(settings)
    store = store_for(settings)
    selection = resolve_versions(catalog, repository, version, since_version)
    missing = missing_files(catalog, selection)
    if missing and not fetch_missing_files:
        raise MissingContent(selection.repository, selection.version, [m.filename for m in missing])
    fetched = fetch_missing(catalog, store, repository, missing) if missing else 0
    started = time.monotonic()
    result = export_version(
        catalog,
        store,
        repository=repository,
        version=selection.version,
        since_version=since_version,
        directory=to,
        chunk_size=size,
        writer=f"mirrorflow {package_version('mirrorflow')}",
        progress=progress,
    )
    seconds = time.monotonic() - started
    toc = result.toc
    return {
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
        "project_statuses": toc.statuses,
        "provenance": toc.provenance,
        "provenance_not_fetched": result.provenance_missing,
        "fetched": fetched,
        "seconds": round(seconds, 3),
        "mb_per_s": round(result.bytes_written / 1e6 / seconds, 1) if seconds > 0 else None,
    }


def run_import(
    *, repository: str, source: Path, settings: Settings, progress: TransferProgress | None
) -> dict[str, Any]:
    """Import the export in ``source``; return the summary the CLI prints."""
    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.storage.import_ import import_export

    started = time.monotonic()
    result = import_export(
        catalog_for(settings), store_for(settings), directory=source, repository=repository, progress=progress
    )
    return {
        "repository": result.repository,
        "version": result.version,
        "changed": result.changed,
        "added": result.added,
        "removed": result.removed,
        "present": result.present,
        "chunks": result.chunks,
        "artifacts_stored": result.artifacts_stored,
        "artifacts_already_present": result.artifacts_present,
        "provenance_stored": result.provenance,
        "seconds": round(time.monotonic() - started, 3),
    }
