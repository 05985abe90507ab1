"""Listings read straight from an embedded catalog, without SQLAlchemy, pydantic or Typer.

``mirrorflow repository list`` should answer in about the time of ``pip --version``
(``benchmarks/cli_startup.py``); importing SQLAlchemy alone takes longer. So when the catalog is
the embedded SQLite file and at the head revision, it is read with ``sqlite3``
(``mirrorflow.storage.sqlite_reads``); otherwise (PostgreSQL, a new or older catalog) through the
``Catalog``, which migrates it first. Both give the same rows to the same view.
"""

from __future__ import annotations

from typing import Any

from mirrorflow.flows.locations import sqlite_catalog_file
from mirrorflow.storage.sqlite_reads import list_repositories, open_at_head

__all__ = ["listed_repositories"]


def listed_repositories() -> list[tuple[Any, str | None]]:
    """Every repository by name, with the uuid of its default remote."""
    path = sqlite_catalog_file()
    connection = open_at_head(path) if path is not None else None
    if connection is not None:
        try:
            with connection:  # one transaction: one snapshot
                return list_repositories(connection)
        finally:
            connection.close()
    from mirrorflow.flows.cli_app import open_catalog

    catalog = open_catalog()
    return [(row, catalog.remote_uuid_of(row)) for row in catalog.list_repositories()]
