"""Read-only queries on a SQLite catalog through the standard library's ``sqlite3``.

SQLAlchemy takes about 0.1 s to import, more than a whole listing command may take
(``benchmarks/cli_startup.py``), so ``mirrorflow repository list`` reads an embedded catalog here.
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

from mirrorflow.storage.schema import HEAD_REVISION, VERSION_TABLE

__all__ = ["open_at_head", "list_repositories"]


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


def list_repositories(connection: sqlite3.Connection) -> list[tuple[SimpleNamespace, str | None]]:
    """Every repository, by name, with the uuid of its default remote (as ``Catalog`` orders them)."""
    convert = _converters(connection, "repositories")
    cursor = connection.execute(
        "SELECT repositories.*, remotes.uuid FROM repositories"
        " LEFT JOIN remotes ON remotes.id = repositories.remote_id ORDER BY repositories.name"
    )
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
