"""Upstream project statuses (PEP 792) per repository version, and what a version holds per project.

A row is one project's non-active status (``archived``, ``quarantined``, ``deprecated`` or another
the upstream defines) with its reason, present from ``version_added`` until ``version_removed``
(exclusive), as ``repository_content`` holds files: a version's statuses are the rows present at its
number, so pinned versions serve the status they were made with. An active project has no row.

The sync reads the latest version's statuses and files for the projects of a batch
(``latest_statuses``, ``latest_filenames``: the fetch stage compares them with the upstream's pages,
``mirrorflow.tasks.project_status``), and the commit writes the changes in its own transaction
(``record_status_changes``, called by ``mirrorflow.storage.content.ContentWriter.commit_version``).
The server reads one project's status at a version (``status_at``).

Errors: none of its own (the catalog's).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.models import Base, Package, RepositoryContent

__all__ = [
    "ProjectStatusRow",
    "close_statuses",
    "latest_filenames",
    "latest_projects",
    "latest_statuses",
    "record_status_changes",
    "status_at",
    "statuses_at",
]

#: ``(status, reason)``; ``None`` is active (no row).
Status = tuple[str, str | None] | None

#: How many names go into one ``IN (...)`` (SQLite allows 32,766 parameters; a batch is far less).
_CHUNK = 1000


class ProjectStatusRow(Base):
    __tablename__ = "project_statuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    normalized_name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_project_statuses_repository_name", "repository_id", "normalized_name"),)


def _open(repository_id: int) -> ColumnElement[bool]:
    return and_(ProjectStatusRow.repository_id == repository_id, ProjectStatusRow.version_removed.is_(None))


def _chunks(names: Collection[str]) -> Iterable[list[str]]:
    ordered = sorted(names)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def latest_statuses(catalog: Catalog, repository_id: int, names: Collection[str]) -> dict[str, Status]:
    """The statuses the latest version holds for ``names`` (a name missing is active)."""
    found: dict[str, Status] = {}
    with catalog.reading() as session:
        for chunk in _chunks(names):
            rows = session.execute(
                select(
                    ProjectStatusRow.normalized_name, ProjectStatusRow.status, ProjectStatusRow.reason
                ).where(_open(repository_id), ProjectStatusRow.normalized_name.in_(chunk))
            )
            found.update({name: (status, reason) for name, status, reason in rows})
    return found


def latest_filenames(catalog: Catalog, repository_id: int, names: Collection[str]) -> dict[str, set[str]]:
    """The filenames the latest version holds for each of ``names`` that holds any."""
    held: dict[str, set[str]] = {}
    is_open = and_(
        RepositoryContent.repository_id == repository_id, RepositoryContent.version_removed.is_(None)
    )
    with catalog.reading() as session:
        for chunk in _chunks(names):
            rows = session.execute(
                select(Package.normalized_name, Package.filename)
                .join(RepositoryContent, RepositoryContent.package_id == Package.id)
                .where(is_open, Package.normalized_name.in_(chunk))
            )
            for name, filename in rows:
                held.setdefault(name, set()).add(filename)
    return held


def latest_projects(catalog: Catalog, repository_id: int) -> set[str]:
    """The normalized names of every project the latest version holds files of."""
    is_open = and_(
        RepositoryContent.repository_id == repository_id, RepositoryContent.version_removed.is_(None)
    )
    with catalog.reading() as session:
        return set(
            session.scalars(
                select(Package.normalized_name)
                .join(RepositoryContent, RepositoryContent.package_id == Package.id)
                .where(is_open)
                .distinct()
            )
        )


def record_status_changes(
    session: Session, *, repository_id: int, number: int, changes: Mapping[str, Status]
) -> int:
    """In the caller's transaction: close the open status of each changed project at ``number`` and
    open its new one (none for active). Returns how many projects changed."""
    if not changes:
        return 0
    for chunk in _chunks(changes):
        session.execute(
            update(ProjectStatusRow)
            .where(_open(repository_id), ProjectStatusRow.normalized_name.in_(chunk))
            .values(version_removed=number)
            .execution_options(synchronize_session=False)
        )
    session.add_all(
        ProjectStatusRow(
            repository_id=repository_id,
            normalized_name=name,
            status=status[0],
            reason=status[1],
            version_added=number,
        )
        for name, status in sorted(changes.items())
        if status is not None
    )
    return len(changes)


def close_statuses(session: Session, *, repository_id: int, number: int, names: Select[Any]) -> int:
    """In the caller's transaction: close at ``number`` the open statuses of the projects ``names``
    (a subquery) selects. Returns how many were closed."""
    result = session.execute(
        update(ProjectStatusRow)
        .where(_open(repository_id), ProjectStatusRow.normalized_name.in_(names))
        .values(version_removed=number)
        .execution_options(synchronize_session=False)
    )
    return int(cast(Any, result).rowcount)


def _present_at(repository_id: int, number: int) -> ColumnElement[bool]:
    return and_(
        ProjectStatusRow.repository_id == repository_id,
        ProjectStatusRow.version_added <= number,
        or_(ProjectStatusRow.version_removed.is_(None), ProjectStatusRow.version_removed > number),
    )


def statuses_at(session: Session, repository_id: int, number: int) -> dict[str, tuple[str, str | None]]:
    """Every non-active project status at version ``number``, by normalized name."""
    rows = session.execute(
        select(ProjectStatusRow.normalized_name, ProjectStatusRow.status, ProjectStatusRow.reason).where(
            _present_at(repository_id, number)
        )
    )
    return {name: (status, reason) for name, status, reason in rows}


def status_at(session: Session, repository_id: int, number: int, normalized_name: str) -> Status:
    """The status of one project at version ``number`` (None: active)."""
    row = session.execute(
        select(ProjectStatusRow.status, ProjectStatusRow.reason).where(
            _present_at(repository_id, number), ProjectStatusRow.normalized_name == normalized_name
        )
    ).first()
    return None if row is None else (row[0], row[1])
