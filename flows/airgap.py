"""The air-gap flows, ``export-repository`` and ``import-repository`` (``docs/airgap.md``).

Thin shells: the work is ``mirrorflow.storage.export.export_version`` and ``mirrorflow.storage.import_.import_export``;
a flow adds a progress artifact (percent of bytes), a report table and a markdown summary, keyed
per repository (``export-<repository>``, ``import-<repository>``), and a summary naming the run
when it fails. ``run_export`` and ``run_import`` are the same work without Prefect: the CLI calls
them directly when no Prefect server is configured (see ``mirrorflow.flows.cli_export``).

Deploy them like the sync flow, e.g. ``export_repository.serve(parameters={...})`` or an
entrypoint ``mirrorflow.flows.airgap:export_repository`` in ``deployments/prefect.yaml``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow

from mirrorflow.flows.airgap_run import DEFAULT_CHUNK_SIZE, run_export, run_import
from mirrorflow.flows.params import RepositoryName
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.export_format import TransferProgress

__all__ = [
    "TRANSFER_PROGRESS",
    "artifact_key",
    "export_repository",
    "import_repository",
]

#: Set by the CLI to draw a progress bar; runs started elsewhere report through Prefect only.
TRANSFER_PROGRESS: ContextVar[TransferProgress | None] = ContextVar("mirrorflow_transfer", default=None)


def artifact_key(kind: str, repository: str, suffix: str = "") -> str:
    """A Prefect artifact key for ``kind`` (export or import) of ``repository``.

    >>> artifact_key("export", "Foo_Bar.2", "progress")
    'export-foo-bar-2-progress'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", repository.lower()).strip("-") or "repository"
    return f"{kind}-{slug}" + (f"-{suffix}" if suffix else "")


class _ArtifactProgress:
    """A Prefect progress artifact (percent of bytes), updated at most once a second."""

    def __init__(self, key: str, description: str) -> None:
        self._key, self._description = key, description
        self._id: Any = None
        self.total = self.done = 0
        self._shown = 0.0

    def start(self, total: int) -> None:
        from prefect.artifacts import create_progress_artifact

        self.total, self.done = total, 0
        self._id = create_progress_artifact(0.0, key=self._key, description=self._description)

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= 1.0 or self.done >= self.total:
            self._shown = now
            self._update()

    def _update(self) -> None:
        from prefect.artifacts import update_progress_artifact

        if self._id is not None:
            percent = 100.0 if self.total == 0 else min(100.0, round(100.0 * self.done / self.total, 1))
            update_progress_artifact(self._id, percent)


class _Both:
    """Tells every one of its progress listeners."""

    def __init__(self, *listeners: TransferProgress | None) -> None:
        self._listeners = [listener for listener in listeners if listener is not None]

    def start(self, total: int) -> None:
        for listener in self._listeners:
            listener.start(total)

    def advance(self, count: int) -> None:
        for listener in self._listeners:
            listener.advance(count)


@contextmanager
def _reporting(kind: str, repository: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Progress for the run, and its report on success (or a summary naming the run on failure)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.runtime import flow_run

    progress = _ArtifactProgress(
        artifact_key(kind, repository, "progress"), f"{kind} of {repository!r}: bytes"
    )
    token = _CURRENT.set(_Both(progress, TRANSFER_PROGRESS.get()))

    def publish(summary: dict[str, Any]) -> None:
        rows = [{"metric": name, "value": str(value)} for name, value in summary.items()]
        create_table_artifact(
            rows, key=artifact_key(kind, repository), description=f"{kind} of {repository!r}"
        )
        create_markdown_artifact(
            _summary_markdown(kind, repository, summary),
            key=artifact_key(kind, repository, "summary"),
            description=f"{kind} summary of {repository!r}",
        )

    try:
        yield publish
    except BaseException as exc:
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        create_markdown_artifact(
            f"# {kind.capitalize()} of `{repository}` failed\n\n"
            f"Run `{flow_run.name}` ({flow_run.id}) ended with `{type(exc).__name__}`:\n\n> {what}\n",
            key=artifact_key(kind, repository, "summary"),
            description=f"{kind} summary of {repository!r}",
        )
        raise
    finally:
        _CURRENT.reset(token)


_CURRENT: ContextVar[TransferProgress | None] = ContextVar("mirrorflow_transfer_run", default=None)


def _summary_markdown(kind: str, repository: str, summary: dict[str, Any]) -> str:
    """The run's outcome in two lines.

    >>> print(_summary_markdown("import", "bar", {"version": 2, "changed": False, "present": 3}), end="")
    # Import into `bar`: nothing changed
    <BLANKLINE>
    The repository already held this export at version 2 (3 files present).
    """
    if kind == "export":
        return (
            f"# Export of `{repository}` version {summary['version']}\n\n"
            f"{summary['chunks']} chunk(s) ({summary['chunks_written']} written, "
            f"{summary['chunks_skipped']} found intact), {summary['artifacts']} artifact(s), "
            f"{summary['artifact_bytes']} bytes, into `{summary['to']}`.\n"
        )
    if not summary["changed"]:
        return (
            f"# Import into `{repository}`: nothing changed\n\n"
            f"The repository already held this export at version {summary['version']} "
            f"({summary['present']} files present).\n"
        )
    return (
        f"# `{repository}` is now at version {summary['version']}\n\n"
        f"{summary['added']} added, {summary['removed']} removed, {summary['present']} present; "
        f"{summary['artifacts_stored']} artifact(s) stored.\n"
    )


@flow(name="export-repository", flow_run_name="export {repository}")
def export_repository(
    repository: RepositoryName,
    to: str,
    version: int | None = None,
    since_version: int | None = None,
    chunk_size: str = DEFAULT_CHUNK_SIZE,
    fetch_missing: bool = False,
) -> dict[str, Any]:
    """Export a repository version as tar chunks with a table of contents, into the directory ``to``.

    Args:
        repository: The repository to export ('mirrorflow repository list').
        to: Directory to write the export into (empty, or this export's: a rerun resumes it).
        version: The version to export (default: the latest).
        since_version: Export only what changed since this version (additions and removals).
        chunk_size: Size of each tar chunk, e.g. 2GiB, 500MB.
        fetch_missing: Fetch files synced on_demand from the upstream (verified) instead of refusing them.
    """
    with _reporting("export", repository) as publish:
        summary = run_export(
            repository=repository,
            to=Path(to),
            version=version,
            since_version=since_version,
            chunk_size=chunk_size,
            fetch_missing_files=fetch_missing,
            settings=Settings(),
            progress=_CURRENT.get(),
        )
        publish(summary)
    return summary


@flow(name="import-repository", flow_run_name="import {repository}")
def import_repository(repository: RepositoryName, source: str) -> dict[str, Any]:
    """Import the export in directory ``source`` as the next version of ``repository`` (verified first).

    Args:
        repository: The repository to import into (created if need be).
        source: Directory holding an export (its toc.json and chunks).
    """
    with _reporting("import", repository) as publish:
        summary = run_import(
            repository=repository, source=Path(source), settings=Settings(), progress=_CURRENT.get()
        )
        publish(summary)
    return summary
