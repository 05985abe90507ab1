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

Pruning (migration 0017): a row names the repository and remote (by name; ``(inline)`` for an inline
remote) whose closure last used it, and ``updated`` is when. A row goes with its repository (a
foreign key), with its remote when the catalog deletes the remote or changes its URL
(``forget_remote``, called by ``Catalog``), and when a complete closure of its repository from its
remote did not use it (``prune``: its project is no longer needed, or the filters changed its key).

Works on SQLite and PostgreSQL (the dialect's own ``INSERT ... ON CONFLICT DO UPDATE``), in chunks of
``CHUNK`` rows per statement, one short transaction per call. Errors: none of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.dependency_cache import CHUNK
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = ["ClosurePageRow", "ClosurePages", "RememberedPage", "forget_remote"]

#: One release as a row keeps it: version, filename, Requires-Dist (None: unknown), source, reason.
ReleaseRow = tuple[str, str, tuple[str, ...] | None, str, str]


def _now() -> datetime:
    return datetime.now(UTC)


class ClosurePageRow(Base):
    __tablename__ = "closure_pages"

    project: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    remote: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)
    releases: Mapped[list[Any]] = mapped_column(JSON)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    __table_args__ = (Index("ix_closure_pages_scope", "repository_id", "remote"),)


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

    def put_many(
        self, pages: Mapping[tuple[str, str], RememberedPage], *, repository_id: int, remote: str
    ) -> None:
        """Remember ``pages`` for a closure of ``repository_id`` from ``remote``; a pair already
        remembered takes the new page (and scope). One transaction."""
        now = _now()
        rows = [
            {
                "project": project,
                "key": key,
                "repository_id": repository_id,
                "remote": remote,
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
                    set_={c: stmt.excluded[c] for c in ("repository_id", "remote", *_PAGE_COLUMNS)},
                )
                session.execute(stmt)

    def touch_many(self, keys: Iterable[tuple[str, str]], *, repository_id: int, remote: str) -> None:
        """Mark the rows of ``(project, key)`` pairs used now (a 304) by a closure of ``repository_id``
        from ``remote``, so that its ``prune`` keeps them. One transaction."""
        wanted = sorted(set(keys))
        columns = (ClosurePageRow.project, ClosurePageRow.key)
        scope = {"repository_id": repository_id, "remote": remote, "updated": _now()}
        with self._catalog.session() as session:
            for start in range(0, len(wanted), CHUNK // 2):  # two parameters a pair
                chunk = wanted[start : start + CHUNK // 2]
                session.execute(update(ClosurePageRow).where(tuple_(*columns).in_(chunk)).values(scope))

    def prune(self, *, repository_id: int, remote: str, before: datetime) -> int:
        """Delete the rows of a closure of ``repository_id`` from ``remote`` not used since ``before``
        (when that closure started: call it once the closure completed with no page failing).
        Returns how many rows went."""
        with self._catalog.session() as session:
            result = session.execute(
                delete(ClosurePageRow).where(
                    ClosurePageRow.repository_id == repository_id,
                    ClosurePageRow.remote == remote,
                    ClosurePageRow.updated < before,
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)


_PAGE_COLUMNS = ("etag", "last_modified", "releases", "updated")


def forget_remote(session: Session, remote: str) -> None:
    """Delete the rows of closures from ``remote`` (in the caller's transaction): the remote is
    being deleted, or its URL changes (its pages' outcomes say nothing of another index)."""
    session.execute(delete(ClosurePageRow).where(ClosurePageRow.remote == remote))


def _releases(value: list[Any]) -> tuple[ReleaseRow, ...]:
    return tuple(
        (str(v), str(f), None if r is None else tuple(str(e) for e in r), str(s), str(why))
        for v, f, r, s, why in value
    )
