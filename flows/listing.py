"""Reads straight from an embedded catalog, without SQLAlchemy, pydantic or Typer.

``mirrorflow repository list`` should answer in about the time of ``pip --version``
(``benchmarks/cli_startup.py``); importing SQLAlchemy alone takes longer. So when the catalog is
the embedded SQLite file and at the head revision, it is read with ``sqlite3``
(``mirrorflow.storage.sqlite_reads``); otherwise (PostgreSQL, a new or older catalog) through the
``Catalog``, which migrates it first. Both give the same rows to the same view.

``quick_answer`` does the same for ``repository show``, ``repository version list``, ``remote list``
and ``remote show`` (remotes holding no sealed secret), which ``mirrorflow.flows.console`` answers
before Typer loads (``benchmarks/catalog_commands.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from mirrorflow.flows.locations import sqlite_catalog_file
from mirrorflow.storage.sqlite_reads import (
    find_remote,
    find_repository,
    holds_secrets,
    list_remotes,
    list_repositories,
    list_versions,
    open_at_head,
)

__all__ = ["listed_repositories", "quick_answer"]

_T = TypeVar("_T")


def _read_embedded(read: Callable[[sqlite3.Connection], _T]) -> _T | None:
    """``read`` on the embedded catalog in one transaction (one snapshot); None when the settings
    name no embedded catalog at the head revision."""
    path = sqlite_catalog_file()
    connection = open_at_head(path) if path is not None else None
    if connection is None:
        return None
    try:
        with connection:
            return read(connection)
    finally:
        connection.close()


def listed_repositories() -> list[tuple[Any, str | None]]:
    """Every repository by name, with the uuid of its default remote."""
    rows = _read_embedded(list_repositories)
    if rows is not None:
        return rows
    from mirrorflow.flows.cli_app import open_catalog

    catalog = open_catalog()
    return [(row, catalog.remote_uuid_of(row)) for row in catalog.list_repositories()]


def quick_answer(args: list[str]) -> Any | None:
    """What the Typer command of ``args`` would print (before JSON), read from the embedded catalog;
    None when ``args`` are not exactly one of the read commands below, or the answer needs the
    ``Catalog`` (not embedded, not at head, a name it does not hold: its error then says so).

    ``repository list``, ``repository show --name N``, ``repository version list --repository R``,
    ``remote list``, ``remote show --name N`` (a remote holding a sealed secret needs the ``Catalog``).
    Raises ``sqlite3.Error`` for a locked or damaged catalog (the caller runs Typer instead).
    """
    from mirrorflow.flows.views import remote_view, repository_view, version_view

    if args == ["repository", "list"]:
        rows = _read_embedded(list_repositories)
        return None if rows is None else [repository_view(row, remote) for row, remote in rows]
    if args[:2] == ["repository", "show"]:
        name = _only_option(args[2:], "--name")
        found = _read_embedded(partial(find_repository, name=name)) if name is not None else None
        return None if found is None else repository_view(*found)
    if args[:3] == ["repository", "version", "list"]:
        repository = _only_option(args[3:], "--repository")
        versions = _read_embedded(partial(list_versions, repository=repository)) if repository else None
        return None if versions is None else [version_view(v) for v in versions]
    if args == ["remote", "list"]:
        remotes = _read_embedded(list_remotes)
        if remotes is None or any(holds_secrets(remote) for remote in remotes):
            return None
        return [remote_view(remote) for remote in remotes]
    if args[:2] == ["remote", "show"]:
        name = _only_option(args[2:], "--name")
        remote = _read_embedded(partial(find_remote, name=name)) if name is not None else None
        return None if remote is None or holds_secrets(remote) else remote_view(remote)
    return None


def _only_option(args: list[str], option: str) -> str | None:
    """The value of ``args`` when they are exactly ``option VALUE`` or ``option=VALUE`` and the value
    is a name the CLI accepts; None for anything else (Typer then reads, or refuses, them).

    >>> _only_option(["--name", "foo"], "--name"), _only_option(["--name=foo"], "--name")
    ('foo', 'foo')
    >>> _only_option(["--name", "foo", "--debug"], "--name"), _only_option(["--name", "../x"], "--name")
    (None, None)
    """
    from mirrorflow.flows.names import is_plain_name

    if len(args) == 2 and args[0] == option:
        value = args[1]
    elif len(args) == 1 and args[0].startswith(f"{option}="):
        value = args[0].removeprefix(f"{option}=")
    else:
        return None
    return value if is_plain_name(value) else None
