"""Content written straight into a catalog, without an index or Prefect, and the CLI run in-process.

``new_package`` makes the row a sync would write for a distribution filename, ``commit`` stages rows
and commits a repository version from them, ``run_cli`` runs ``mirrorflow ARGS...`` in this process,
and ``cli_on_catalog`` sets the environment for that CLI over a catalog whose repository ``foo``
holds a given set of files at version 1.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mirrorflow.storage.catalog import Catalog, VersionView
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.tasks.filenames import parse_filename

__all__ = ["InProcessCli", "cli_on_catalog", "commit", "new_package", "run_cli"]


def new_package(
    filename: str,
    *,
    name: str | None = None,
    content: bytes | None = None,
    size: int | None = 10,
    upload_time: datetime | None = None,
    url: str | None = None,
) -> NewPackage:
    """The row of ``filename`` as a sync writes it: project and version parsed from the filename
    (``name``: the project as the index spells it, default the normalized name), a wheel or an
    sdist by its extension, the sha256 of ``content`` (default: the filename's bytes), and a URL
    under ``https://index.example/files/`` unless ``url`` is given."""
    parsed = parse_filename(filename)
    wheel = filename.endswith(".whl")
    return NewPackage(
        name=name if name is not None else parsed.name,
        normalized_name=parsed.name,
        version=str(parsed.version),
        filename=filename,
        packagetype="bdist_wheel" if wheel else "sdist",
        python_version="py3" if wheel else "source",
        requires_python=None,
        sha256=hashlib.sha256(filename.encode() if content is None else content).hexdigest(),
        size=size,
        upload_time=upload_time,
        yanked=False,
        yanked_reason=None,
        metadata_sha256=None,
        has_metadata=False,
        url=url if url is not None else f"https://index.example/files/{filename}",
    )


def commit(
    writer: ContentWriter, repository: str, packages: Iterable[NewPackage], *, mirror: bool, **changes: Any
) -> VersionView | None:
    """Record ``packages``, stage them as one sync of ``repository`` and commit it; returns the new
    version, or None when nothing changed. ``changes`` go to ``commit_version`` as they are."""
    sync_id = str(uuid.uuid4())
    repository_id = writer.catalog.get_repository(repository).id
    writer.stage(sync_id, repository_id, writer.upsert_packages(list(packages)).values())
    return writer.commit_version(repository=repository, sync_id=sync_id, mirror=mirror, **changes)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``mirrorflow ARGS...`` in this process (the console script); returns the exit code,
    stdout and stderr, with what was captured before the call dropped."""
    from mirrorflow.flows.console import main  # the console script: the quick listing, else flows.cli.main

    capsys.readouterr()
    argv, sys.argv = sys.argv, ["mirrorflow", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


@dataclass
class InProcessCli:
    """The CLI over ``catalog``, run in this process: ``cli(*args)`` returns the exit code, stdout
    and stderr (stdout parsed as JSON, None when empty, with ``json_out``)."""

    catalog: Catalog
    capsys: pytest.CaptureFixture[str]
    json_out: bool = False

    def __call__(self, *args: str) -> tuple[int, Any, str]:
        code, out, err = run_cli(self.capsys, *args)
        if self.json_out:
            return code, json.loads(out) if out else None, err
        return code, out, err


@contextmanager
def cli_on_catalog(
    catalog_url: str,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    packages: Iterable[NewPackage],
    *,
    json_out: bool = False,
) -> Iterator[InProcessCli]:
    """The CLI on ``catalog_url`` (no Prefect, no S3), repository ``foo`` at version 1 holding
    ``packages`` (a mirror sync); the CLI's cached settings are reset before and after."""
    from mirrorflow.flows.runtime import reset_caches

    monkeypatch.setenv("MIRRORFLOW_HOME", str(home))
    monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", catalog_url)
    monkeypatch.delenv("MIRRORFLOW_S3_ENDPOINT", raising=False)
    reset_caches()
    catalog = Catalog.from_url(catalog_url)
    try:
        catalog.create_repository("foo")
        commit(ContentWriter(catalog), "foo", packages, mirror=True)
        yield InProcessCli(catalog, capsys, json_out)
    finally:
        catalog.dispose()
        reset_caches()
