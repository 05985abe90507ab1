"""Imported OSV advisories, kept in the catalog: one row per advisory, one per project it names.

Storage does not read OSV: the caller (``mirrorflow.flows.cli_advisories``) parses each record with
``mirrorflow.tasks.advisories`` and hands over ``AdvisoryRecord``s, lazily. ``import_advisories``
writes them in one transaction, chunk by chunk as they come, so an export of any size imports in
bounded memory, and a record that fails to parse (the iterator raises) leaves the catalog as it was.

An import is idempotent: a record whose id is stored with the same ``modified`` changes nothing; a
newer ``modified`` replaces the row (an older one is ignored); a withdrawn record (or one that no
longer names a PyPI project) removes the stored row.

The sync reads the advisories of a batch's projects (``advisories_of``); ``repository advisories``
and the sync's removal of held files read the held packages of projects that advisories name
(``held_named``).

Errors: ``NotFound`` (unknown repository or version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Text, delete, func, inspect, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.models import Base, Package, Repository, RepositoryContent, UTCDateTime

__all__ = [
    "AdvisoryProjectRow",
    "AdvisoryRecord",
    "AdvisoryRow",
    "HeldPackage",
    "ImportCounts",
    "StoredAdvisory",
    "advisories_of",
    "advisory_count",
    "advisories_by_id",
    "advisory_digest",
    "advisory_ids",
    "held_named",
    "import_advisories",
]

#: Records looked up and written per round trip.
_CHUNK = 500


def _now() -> datetime:
    return datetime.now(UTC)


class AdvisoryRow(Base):
    __tablename__ = "advisories"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The OSV id, e.g. ``MAL-2024-1234``, ``PYSEC-2024-1``, ``GHSA-...``.
    advisory_id: Mapped[str] = mapped_column(Text, unique=True)
    modified: Mapped[datetime] = mapped_column(UTCDateTime())
    summary: Mapped[str] = mapped_column(Text, default="")
    aliases: Mapped[list[str]] = mapped_column(default=list)
    #: The PyPI entries (``mirrorflow.tasks.advisories.stored_affected``).
    affected: Mapped[list[Any]] = mapped_column(JSON, default=list)
    imported: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)


class AdvisoryProjectRow(Base):
    """Which normalized project names an advisory names: the sync looks advisories up by project."""

    __tablename__ = "advisory_projects"

    advisory_pk: Mapped[int] = mapped_column(
        ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True
    )
    project: Mapped[str] = mapped_column(Text, primary_key=True, index=True)


@dataclass(frozen=True, slots=True)
class AdvisoryRecord:
    """One parsed record as storage takes it; ``withdrawn`` or no ``projects``: remove, never store."""

    advisory_id: str
    modified: datetime
    summary: str
    aliases: tuple[str, ...]
    affected: list[Any]
    projects: frozenset[str]
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class StoredAdvisory:
    advisory_id: str
    modified: datetime
    summary: str
    aliases: tuple[str, ...]
    affected: list[Any]


@dataclass(slots=True)
class ImportCounts:
    """What an import did, per record read."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Withdrawn records (a stored one is removed), and stored ones that no longer name a PyPI project.
    removed: int = 0
    #: Records that name no PyPI project (other ecosystems), or withdrawn ones never stored: not kept.
    ignored: int = 0
    #: Older than the stored record of the same id: ignored.
    older: int = 0
    stored: int = field(default=0)

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "ignored": self.ignored,
            "older": self.older,
            "stored": self.stored,
        }


def import_advisories(catalog: Catalog, records: Iterable[AdvisoryRecord]) -> ImportCounts:
    """Write ``records`` in one transaction (an exception from the iterator rolls all of it back)."""
    counts = ImportCounts()
    with catalog.session() as session:
        for chunk in _chunks(records):
            _import_chunk(session, chunk, counts)
        counts.stored = int(session.scalar(select(func.count()).select_from(AdvisoryRow)) or 0)
    return counts


def _chunks(records: Iterable[AdvisoryRecord]) -> Iterator[list[AdvisoryRecord]]:
    chunk: list[AdvisoryRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _import_chunk(session: Session, chunk: list[AdvisoryRecord], counts: ImportCounts) -> None:
    """Decide each record against the stored row of its id; write the chunk with two flushes."""
    ids = {record.advisory_id for record in chunk}
    known = {
        row.advisory_id: row
        for row in session.scalars(select(AdvisoryRow).where(AdvisoryRow.advisory_id.in_(ids)))
    }
    written: dict[str, tuple[AdvisoryRow, AdvisoryRecord]] = {}  # the last record of an id wins
    for record in chunk:
        counts.read += 1
        row = known.get(record.advisory_id)
        keep = not record.withdrawn and bool(record.projects)
        if row is not None and record.modified < row.modified:
            counts.older += 1
        elif row is not None and record.modified == row.modified:
            counts.unchanged += 1
        elif not keep:
            if row is None:
                counts.ignored += 1
                continue
            if inspect(row).pending:  # added by this chunk: never written
                session.expunge(row)
            else:
                session.execute(delete(AdvisoryProjectRow).where(AdvisoryProjectRow.advisory_pk == row.id))
                session.delete(row)
                session.flush()
            del known[record.advisory_id]
            written.pop(record.advisory_id, None)
            counts.removed += 1
        else:
            if row is None:
                row = AdvisoryRow(advisory_id=record.advisory_id)
                session.add(row)
                known[record.advisory_id] = row
                counts.added += 1
            else:
                counts.updated += 1
            _fill(row, record)
            written[record.advisory_id] = (row, record)
    session.flush()  # the new rows get their ids
    stale = [row.id for row, _ in written.values()]
    for start in range(0, len(stale), _CHUNK):
        session.execute(
            delete(AdvisoryProjectRow).where(
                AdvisoryProjectRow.advisory_pk.in_(stale[start : start + _CHUNK])
            )
        )
    session.add_all(
        AdvisoryProjectRow(advisory_pk=row.id, project=project)
        for row, record in written.values()
        for project in sorted(record.projects)
    )
    session.flush()


def _fill(row: AdvisoryRow, record: AdvisoryRecord) -> None:
    row.modified = record.modified
    row.summary = record.summary
    row.aliases = list(record.aliases)
    row.affected = record.affected
    row.imported = _now()


def advisory_count(catalog: Catalog) -> int:
    """How many advisories are stored (a sync with none skips every look-up)."""
    with catalog.reading() as session:
        return int(session.scalar(select(func.count()).select_from(AdvisoryRow)) or 0)


def advisories_of(session: Session, projects: Collection[str]) -> list[StoredAdvisory]:
    """The stored advisories that name any of ``projects`` (normalized names), by id."""
    found: dict[str, StoredAdvisory] = {}
    names = sorted(set(projects))
    for start in range(0, len(names), _CHUNK):
        rows = session.scalars(
            select(AdvisoryRow)
            .join(AdvisoryProjectRow, AdvisoryProjectRow.advisory_pk == AdvisoryRow.id)
            .where(AdvisoryProjectRow.project.in_(names[start : start + _CHUNK]))
        )
        for row in rows:
            found[row.advisory_id] = _stored(row)
    return [found[key] for key in sorted(found)]


def advisory_ids(session: Session) -> list[tuple[str, tuple[str, ...]]]:
    """Every stored advisory's id and aliases, by id (the caller picks those its prefixes block)."""
    rows = session.execute(
        select(AdvisoryRow.advisory_id, AdvisoryRow.aliases).order_by(AdvisoryRow.advisory_id)
    )
    return [(advisory_id, tuple(aliases or ())) for advisory_id, aliases in rows]


def advisories_by_id(session: Session, ids: Collection[str]) -> list[StoredAdvisory]:
    """The stored advisories of these ids, by id."""
    found: list[StoredAdvisory] = []
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), _CHUNK):
        rows = session.scalars(
            select(AdvisoryRow)
            .where(AdvisoryRow.advisory_id.in_(wanted[start : start + _CHUNK]))
            .order_by(AdvisoryRow.advisory_id)
        )
        found.extend(_stored(row) for row in rows)
    return found


def _stored(row: AdvisoryRow) -> StoredAdvisory:
    return StoredAdvisory(
        row.advisory_id, row.modified, row.summary, tuple(row.aliases or ()), list(row.affected)
    )


def advisory_digest(session: Session) -> str:
    """A digest of every stored advisory's id, aliases and ``modified``: changes when an import did."""
    digest = hashlib.sha256()
    for advisory_id, modified in session.execute(
        select(AdvisoryRow.advisory_id, AdvisoryRow.modified).order_by(AdvisoryRow.advisory_id)
    ):
        digest.update(f"{advisory_id}\0{modified.isoformat()}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class HeldPackage:
    package_id: int
    project: str
    version: str
    filename: str


def held_named(
    session: Session, repository: str, number: int | None = None, *, projects: Collection[str] | None = None
) -> tuple[int, list[HeldPackage]]:
    """The version (the latest when None) and its packages of projects some advisory names (of
    ``projects`` only, when given).

    Raises ``NotFound`` for an unknown repository or a version it does not have.
    """
    repo = session.scalar(select(Repository).where(Repository.name == repository))
    if repo is None:
        raise NotFound("repository", repository)
    if number is None:
        number = repo.latest_version
    elif not 0 <= number <= repo.latest_version:
        raise NotFound(f"version of repository {repository!r}", number)
    named: Any = select(AdvisoryProjectRow.project) if projects is None else sorted(set(projects))
    rows = session.execute(
        select(Package.id, Package.normalized_name, Package.version, Package.filename)
        .join(RepositoryContent, RepositoryContent.package_id == Package.id)
        .where(
            RepositoryContent.repository_id == repo.id,
            RepositoryContent.version_added <= number,
            or_(RepositoryContent.version_removed.is_(None), RepositoryContent.version_removed > number),
            Package.normalized_name.in_(named),
        )
        .order_by(Package.normalized_name, Package.filename)
    )
    return number, [HeldPackage(*row) for row in rows]
