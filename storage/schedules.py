"""Repository sync schedules, kept in the catalog so that ``mirrorflow.deployments.serve`` can serve them.

One row per repository: a cron expression or an interval (exactly one, a CHECK holds it), the
remote to sync from (None: the repository's own), whether the sync mirrors and whether the
schedule is paused. This table is the one source of truth for served schedules: ``mirrorflow.deployments.serve``
restores it over a change made in the Prefect UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, delete, false, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.models import Base, Remote, Repository, UTCDateTime

__all__ = [
    "RepositorySchedule",
    "ScheduleView",
    "set_schedule",
    "set_paused",
    "delete_schedule",
    "list_schedules",
    "get_schedule",
]


class RepositorySchedule(Base):
    __tablename__ = "repository_schedules"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    remote_name: Mapped[str | None] = mapped_column(String(255))
    cron: Mapped[str | None] = mapped_column(Text)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    mirror: Mapped[bool] = mapped_column(Boolean, default=False)
    # Paused: served without its schedule, kept for --resume (0008_schedule_paused).
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(
            "(cron IS NULL) <> (interval_seconds IS NULL) AND "
            "(interval_seconds IS NULL OR interval_seconds > 0)",
            name="one_of",
        ),
    )


@dataclass(frozen=True, slots=True)
class ScheduleView:
    repository: str
    remote: str | None
    cron: str | None
    interval_seconds: int | None
    mirror: bool
    updated: datetime
    paused: bool = False


def set_schedule(
    catalog: Catalog,
    repository: str,
    *,
    remote: str | None,
    cron: str | None,
    interval_seconds: int | None,
    mirror: bool,
) -> ScheduleView:
    """Create or replace ``repository``'s schedule. Raises ``NotFound`` for an unknown repository/remote."""
    if (cron is None) == (interval_seconds is None):
        raise ValueError(f"schedule: give exactly one of cron ({cron!r}) or interval ({interval_seconds!r})")
    with catalog.session() as session:
        repo = session.scalar(select(Repository).where(Repository.name == repository))
        if repo is None:
            raise NotFound("repository", repository)
        if remote is not None and session.scalar(select(Remote.id).where(Remote.name == remote)) is None:
            raise NotFound("remote", remote)
        row = session.get(RepositorySchedule, repo.id) or RepositorySchedule(repository_id=repo.id)
        row.remote_name, row.cron, row.interval_seconds = remote, cron, interval_seconds
        row.mirror, row.updated = mirror, datetime.now(UTC)
        row.paused = bool(row.paused)  # a new timing keeps a pause; --resume lifts it
        session.add(row)
        session.flush()
        return _view(repository, row)


def set_paused(catalog: Catalog, repository: str, *, paused: bool) -> ScheduleView:
    """Pause or resume ``repository``'s schedule. Raises ``NotFound`` when it has none."""
    with catalog.session() as session:
        found = _row(session, repository)
        found.paused, found.updated = paused, datetime.now(UTC)
        session.flush()
        return _view(repository, found)


def delete_schedule(catalog: Catalog, repository: str) -> None:
    """Delete ``repository``'s schedule. Raises ``NotFound`` when it has none."""
    with catalog.session() as session:
        found = _row(session, repository)
        session.execute(
            delete(RepositorySchedule).where(RepositorySchedule.repository_id == found.repository_id)
        )


def _row(session: Session, repository: str) -> RepositorySchedule:
    repo_id = session.scalar(select(Repository.id).where(Repository.name == repository))
    if repo_id is None:
        raise NotFound("repository", repository)
    row = session.get(RepositorySchedule, repo_id)
    if row is None:
        raise NotFound("schedule", repository)
    return row


def get_schedule(catalog: Catalog, repository: str) -> ScheduleView | None:
    with catalog.session() as session:
        found = session.execute(
            select(Repository.name, RepositorySchedule)
            .join(RepositorySchedule, RepositorySchedule.repository_id == Repository.id)
            .where(Repository.name == repository)
        ).first()
        return None if found is None else _view(found[0], found[1])


def list_schedules(catalog: Catalog) -> list[ScheduleView]:
    """Every schedule, by repository name."""
    with catalog.session() as session:
        rows = session.execute(
            select(Repository.name, RepositorySchedule)
            .join(RepositorySchedule, RepositorySchedule.repository_id == Repository.id)
            .order_by(Repository.name)
        ).all()
        return [_view(name, row) for name, row in rows]


def _view(repository: str, row: RepositorySchedule) -> ScheduleView:
    return ScheduleView(
        repository=repository,
        remote=row.remote_name,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        mirror=row.mirror,
        updated=row.updated,
        paused=bool(row.paused),
    )
