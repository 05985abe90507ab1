"""The closure's page memory: what evaluating one project page gave the dependency closure, kept by
the page's validators so that a resync of an unchanged upstream neither fetches the page again nor
reads its releases (issue 19, "a resync recomputes the closure only for releases that are new or
changed").

One row per (project, key) (``closure_pages``, migration 0015): ``key`` is a sha256 of everything
the project's evaluation depended on besides the page (the index, the filters and the includes
naming the project: ``mirrorflow.tasks.dependencies.closure_page_key``), so one project evaluated
under several include sets (the rounds of a closure) has a row for each. ``etag`` and
``last_modified`` are the page's validators, sent as If-None-Match / If-Modified-Since next time;
a 304 means the row still holds. ``releases`` is a JSON list of ``[version, filename, requires_dist
or null, source, reason]``. A row is replaced when its page changed (the writer keeps the newest).

Works on SQLite and PostgreSQL (the dialect's own ``INSERT ... ON CONFLICT DO UPDATE``), in chunks of
``CHUNK`` rows per statement, one short transaction per call. Errors: none of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, String, Text, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.dependency_cache import CHUNK
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = ["ClosurePageRow", "ClosurePages", "RememberedPage"]

#: One release as a row keeps it: version, filename, Requires-Dist (None: unknown), source, reason.
ReleaseRow = tuple[str, str, tuple[str, ...] | None, str, str]


def _now() -> datetime:
    return datetime.now(UTC)


class ClosurePageRow(Base):
    __tablename__ = "closure_pages"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    releases: Mapped[list[Any]] = mapped_column(JSON)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


@dataclass(frozen=True, slots=True)
class RememberedPage:
    """One project page's validators and the releases its evaluation selected, with their requirements."""

    etag: str | None
    last_modified: str | None
    releases: tuple[ReleaseRow, ...]


class ClosurePages:
    """The catalog's closure page memory."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        dialect = catalog.engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RememberedPage]:
        """Return the remembered pages of those ``(project, key)`` pairs that have one."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], RememberedPage] = {}
        columns = (ClosurePageRow.project, ClosurePageRow.key)
        with self._catalog.reading() as session:
            for start in range(0, len(wanted), CHUNK // 2):  # two parameters a pair
                chunk = wanted[start : start + CHUNK // 2]
                rows = session.execute(
                    select(
                        *columns, ClosurePageRow.etag, ClosurePageRow.last_modified, ClosurePageRow.releases
                    ).where(tuple_(*columns).in_(chunk))
                )
                for project, key, etag, last_modified, releases in rows:
                    found[(project, key)] = RememberedPage(etag, last_modified, _releases(releases))
        return found

    def put_many(self, pages: Mapping[tuple[str, str], RememberedPage]) -> None:
        """Remember ``pages``; a pair already remembered takes the new page. One transaction."""
        now = _now()
        rows = [
            {
                "project": project,
                "key": key,
                "etag": page.etag,
                "last_modified": page.last_modified,
                "releases": [
                    [v, f, None if r is None else list(r), s, why] for v, f, r, s, why in page.releases
                ],
                "updated": now,
            }
            for (project, key), page in sorted(pages.items())
        ]
        table = ClosurePageRow.__table__
        with self._catalog.session() as session:
            for start in range(0, len(rows), CHUNK):
                stmt = self._insert(table).values(rows[start : start + CHUNK])
                stmt = stmt.on_conflict_do_update(
                    index_elements=["project", "key"],
                    set_={c: stmt.excluded[c] for c in ("etag", "last_modified", "releases", "updated")},
                )
                session.execute(stmt)


def _releases(value: list[Any]) -> tuple[ReleaseRow, ...]:
    return tuple(
        (str(v), str(f), None if r is None else tuple(str(e) for e in r), str(s), str(why))
        for v, f, r, s, why in value
    )
