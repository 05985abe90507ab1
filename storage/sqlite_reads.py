"""Read-only queries on a SQLite catalog through the standard library's ``sqlite3``.

SQLAlchemy takes about 0.1 s to import, more than a whole listing command may take
(``benchmarks/cli_startup.py``), so ``mirrorflow repository list``, ``repository show``,
``repository version list``, ``remote list`` and ``remote show`` read an embedded catalog here
(``benchmarks/catalog_commands.py``). Remotes are read only when they hold no sealed secret
(``holds_secrets``): ``Catalog`` opens those with the secret key, and refuses a wrong one.
Only a catalog at ``mirrorflow.storage.schema.HEAD_REVISION`` is read: ``open_at_head`` returns None for a
missing file or another revision, and the caller then goes through ``mirrorflow.storage.catalog.Catalog``,
which migrates. Rows carry every column of their table under the models' attribute names, with
the values the models give (aware UTC datetimes, booleans, decoded JSON), so the same views print
them; ``tests/integration/test_fast_commands.py`` holds the output of both paths equal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mirrorflow.storage.records import VersionView
from mirrorflow.storage.schema import HEAD_REVISION, SEALED_PREFIX, SECRET_FIELDS, VERSION_TABLE

__all__ = [
    "open_at_head",
    "find_remote",
    "find_repository",
    "holds_secrets",
    "list_remotes",
    "list_repositories",
    "list_versions",
]


def open_at_head(path: Path) -> sqlite3.Connection | None:
    """A connection to the catalog in ``path``, or None when it is missing or not at the head."""
    try:
        # mode=rw: never create a catalog here (a new one is made, and migrated, by Catalog).
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return None
    try:
        revision = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except sqlite3.DatabaseError:  # no version table: not a migrated catalog
        revision = None
    if revision is None or revision[0] != HEAD_REVISION:
        connection.close()
        return None
    return connection


_REPOSITORIES = (
    "SELECT repositories.*, remotes.uuid FROM repositories"
    " LEFT JOIN remotes ON remotes.id = repositories.remote_id"
)


def list_repositories(connection: sqlite3.Connection) -> list[tuple[SimpleNamespace, str | None]]:
    """Every repository, by name, with the uuid of its default remote (as ``Catalog`` orders them)."""
    return _repositories(connection, f"{_REPOSITORIES} ORDER BY repositories.name", ())


def find_repository(connection: sqlite3.Connection, name: str) -> tuple[SimpleNamespace, str | None] | None:
    """The repository ``name`` with the uuid of its default remote; None when there is none
    (the caller goes through ``Catalog``, whose ``NotFound`` says so)."""
    found = _repositories(connection, f"{_REPOSITORIES} WHERE repositories.name = ?", (name,))
    return found[0] if found else None


def list_versions(connection: sqlite3.Connection, repository: str) -> list[VersionView] | None:
    """The versions of ``repository``, newest first (as ``Catalog.list_versions``); None when
    there is no such repository."""
    found = find_repository(connection, repository)
    if found is None:
        return None
    repo = found[0]
    convert = _converters(connection, "repository_versions")
    cursor = connection.execute(
        "SELECT uuid, number, base_version, created, added_count, removed_count, present_count, report"
        " FROM repository_versions WHERE repository_id = ? ORDER BY number DESC",
        (repo.id,),
    )
    return [
        VersionView(
            repository=repo.name,
            repository_uuid=repo.uuid,
            uuid=uuid,
            number=number,
            base_version=base_version,
            created=convert["created"](created),
            added=added,
            removed=removed,
            present=present,
            report=convert["report"](report) or {},
        )
        for uuid, number, base_version, created, added, removed, present, report in cursor
    ]


def list_remotes(connection: sqlite3.Connection) -> list[SimpleNamespace]:
    """Every remote, by name (as ``Catalog.list_remotes``), secrets as stored (see ``holds_secrets``)."""
    return _rows(connection, "remotes", "SELECT * FROM remotes ORDER BY name", ())


def find_remote(connection: sqlite3.Connection, name: str) -> SimpleNamespace | None:
    """The remote ``name``, secrets as stored; None when there is none."""
    found = _rows(connection, "remotes", "SELECT * FROM remotes WHERE name = ?", (name,))
    return found[0] if found else None


def holds_secrets(remote: SimpleNamespace) -> bool:
    """Whether ``remote`` holds a sealed value (a secret field, or a credential header): then only
    ``Catalog``, holding the key, reads it as the commands print it."""
    if any(getattr(remote, field) is not None for field in SECRET_FIELDS):
        return True
    return any(
        isinstance(value, str) and value.startswith(SEALED_PREFIX)
        for entry in remote.headers or ()
        for value in entry.values()
    )


def _rows(
    connection: sqlite3.Connection, table: str, query: str, parameters: tuple[Any, ...]
) -> list[SimpleNamespace]:
    convert = _converters(connection, table)
    cursor = connection.execute(query, parameters)
    columns = [column[0] for column in cursor.description]
    return [
        SimpleNamespace(**{c: convert[c](v) for c, v in zip(columns, row, strict=True)}) for row in cursor
    ]


def _repositories(
    connection: sqlite3.Connection, query: str, parameters: tuple[Any, ...]
) -> list[tuple[SimpleNamespace, str | None]]:
    convert = _converters(connection, "repositories")
    cursor = connection.execute(query, parameters)
    columns = [column[0] for column in cursor.description][:-1]
    return [
        (
            SimpleNamespace(**{c: convert[c](v) for c, v in zip(columns, row, strict=False)}),
            row[-1],
        )
        for row in cursor
    ]


def _converters(connection: sqlite3.Connection, table: str) -> dict[str, Callable[[Any], Any]]:
    """Per column, from the declared type SQLAlchemy gave it, what turns a stored value into the model's."""
    declared = {row[1]: row[2].upper() for row in connection.execute(f"PRAGMA table_info({table})")}
    return {column: _BY_TYPE.get(kind, _same) for column, kind in declared.items()}


def _same(value: Any) -> Any:
    return value


def _datetime(value: str | None) -> datetime | None:
    # Stored without a zone, in UTC (storage.models.UTCDateTime), as SQLAlchemy writes them.
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _boolean(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


_BY_TYPE: dict[str, Callable[[Any], Any]] = {"DATETIME": _datetime, "BOOLEAN": _boolean, "JSON": _json}
