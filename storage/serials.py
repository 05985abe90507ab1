"""Incremental-sync memory: per repository, remote and project, the upstream state last synced.

A sync reads the memory once (``remembered`` and ``fingerprint``), records the projects it
touches as it goes (``touch``, batched, private to the sync like staging rows), and the version
commit (``mirrorflow.storage.content.ContentWriter.commit_version``) folds them into the memory with
``apply_touched`` inside its own transaction, so the memory never runs ahead of the content:

- ``fetched`` projects remember the page's serial / ETag / Last-Modified;
- ``gone`` projects (left the listing, or 404) are forgotten;
- ``stale`` projects keep their old memory (and their content): the next sync retries them.

The memory is keyed by repository *and* remote: a remote synced into two repositories keeps two
memories; a remote that is not in the catalog (an inline one) has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, delete, insert, literal, select
from sqlalchemy.orm import Session

from mirrorflow.storage.bulk import BulkWriter
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.models import Remote
from mirrorflow.storage.models_serials import PROJECT_STATES, ProjectSerial, SyncFilterState, SyncProject

__all__ = ["Remembered", "Touched", "SerialMemory", "apply_touched", "touched_names"]


class Remembered(NamedTuple):
    """What a repository remembers of one upstream project page.

    A tuple, so that ``mirrorflow.tasks.listing.plan_projects`` (which knows no storage types) reads it as
    ``(serial, etag, last_modified)`` without a copy of the whole memory.
    """

    serial: int | None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Touched:
    """A project a sync touched: ``state`` is one of ``PROJECT_STATES``."""

    name: str
    state: str
    serial: int | None = None
    etag: str | None = None
    last_modified: str | None = None

    def __post_init__(self) -> None:
        if self.state not in PROJECT_STATES:
            raise ValueError(f"state {self.state!r} is not one of {PROJECT_STATES!r}")


class SerialMemory:
    """Reads the memory and records a sync's touched projects. Each method is one transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def remote_id(self, remote: str) -> int | None:
        """Return the id of remote ``remote``; None for a remote not in the catalog (inline)."""
        with self.catalog.session() as session:
            return session.scalar(select(Remote.id).where(Remote.name == remote))

    def remembered(self, repository_id: int, remote: str) -> dict[str, Remembered]:
        """Return every remembered project of ``repository_id`` from ``remote``, by normalized name.

        An unknown (inline) remote has no memory: every sync from it is a full one.
        """
        remote_id = self.remote_id(remote)
        memory: dict[str, Remembered] = {}
        if remote_id is None:
            return memory
        with self.catalog.session() as session:
            rows = session.execute(
                select(
                    ProjectSerial.name, ProjectSerial.serial, ProjectSerial.etag, ProjectSerial.last_modified
                )
                .where(ProjectSerial.repository_id == repository_id, ProjectSerial.remote_id == remote_id)
                .execution_options(yield_per=10_000)
            )
            for name, serial, etag, last_modified in rows:
                memory[name] = Remembered(serial, etag, last_modified)
        return memory

    def fingerprint(self, repository_id: int, remote: str) -> str | None:
        """Return the filter fingerprint the memory was recorded under (None: never synced)."""
        remote_id = self.remote_id(remote)
        if remote_id is None:
            return None
        with self.catalog.session() as session:
            return session.scalar(
                select(SyncFilterState.fingerprint).where(
                    SyncFilterState.repository_id == repository_id, SyncFilterState.remote_id == remote_id
                )
            )

    def touch(self, sync_id: str, repository_id: int, projects: Iterable[Touched]) -> None:
        """Record projects sync ``sync_id`` touched (a later record of a name replaces it)."""
        now = datetime.now(UTC)
        rows = {
            t.name: (sync_id, repository_id, t.name, t.state, t.serial, t.etag, t.last_modified, now)
            for t in projects
        }
        if not rows:
            return
        with self.catalog.session() as session:
            _touched_writer(session).insert_many(
                session.connection(), rows.values(), replace_on=("sync_id", "name")
            )

    def forget(self, repository_id: int) -> None:
        """Forget everything the repository remembers, from every remote: its next sync is a full one.

        Call it when the repository's content changes other than by a sync (a rollback, a manual
        removal), since the memory then no longer describes what the repository holds.
        """
        with self.catalog.session() as session:
            session.execute(delete(ProjectSerial).where(ProjectSerial.repository_id == repository_id))
            session.execute(delete(SyncFilterState).where(SyncFilterState.repository_id == repository_id))

    def discard(self, sync_id: str) -> None:
        """Drop a sync's touched projects (a failed sync)."""
        with self.catalog.session() as session:
            session.execute(delete(SyncProject).where(SyncProject.sync_id == sync_id))


_TOUCHED_COLUMNS = (
    "sync_id",
    "repository_id",
    "name",
    "state",
    "serial",
    "etag",
    "last_modified",
    "staged_at",
)
_touched_writers: dict[str, BulkWriter] = {}


def _touched_writer(session: Session) -> BulkWriter:
    """The bulk writer of ``sync_projects`` for the session's dialect (one per dialect, kept)."""
    dialect = session.get_bind().dialect
    writer = _touched_writers.get(dialect.name)
    if writer is None:
        table = cast(Table, SyncProject.__table__)
        writer = _touched_writers[dialect.name] = BulkWriter(table, _TOUCHED_COLUMNS, dialect)
    return writer


def touched_names(sync_id: str, states: Sequence[str]) -> Select[Any]:
    """A subquery: the names sync ``sync_id`` touched with one of ``states``."""
    return select(SyncProject.name).where(SyncProject.sync_id == sync_id, SyncProject.state.in_(states))


def apply_touched(
    session: Session,
    *,
    repository_id: int,
    remote_id: int,
    sync_id: str,
    fingerprint: str | None,
    full: bool,
) -> None:
    """Fold sync ``sync_id``'s touched projects into the memory, in the caller's transaction.

    ``fingerprint`` (when not None) becomes the memory's filter fingerprint. ``full``: the sync
    re-evaluated every project (its stale projects are forgotten too).
    """
    mine = (ProjectSerial.repository_id == repository_id) & (ProjectSerial.remote_id == remote_id)
    # After a full re-evaluation a stale project's old serial describes content selected under the
    # old filters: forget it too, so that the next sync fetches it whatever its serial.
    forget = ("fetched", "gone", "stale") if full else ("fetched", "gone")
    session.execute(
        delete(ProjectSerial)
        .where(mine, ProjectSerial.name.in_(touched_names(sync_id, forget)))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        insert(ProjectSerial).from_select(
            ["repository_id", "remote_id", "name", "serial", "etag", "last_modified", "updated"],
            select(
                literal(repository_id),
                literal(remote_id),
                SyncProject.name,
                SyncProject.serial,
                SyncProject.etag,
                SyncProject.last_modified,
                literal(datetime.now(UTC), ProjectSerial.__table__.c.updated.type),
            ).where(SyncProject.sync_id == sync_id, SyncProject.state == "fetched"),
        )
    )
    if fingerprint is not None:
        mine_state = (SyncFilterState.repository_id == repository_id) & (
            SyncFilterState.remote_id == remote_id
        )
        session.execute(delete(SyncFilterState).where(mine_state))
        session.add(
            SyncFilterState(repository_id=repository_id, remote_id=remote_id, fingerprint=fingerprint)
        )
