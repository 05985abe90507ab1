"""Repository sync schedules, kept in the catalog so that ``deployments.serve`` can serve them.

One row per repository: a cron expression or an interval (exactly one, a CHECK holds it), the
remote to sync from (None: the repository's own) and whether the sync mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog import Catalog, NotFound
from storage.models import Base, Remote, Repository, UTCDateTime

__all__ = ["RepositorySchedule", "ScheduleView", "set_schedule", "list_schedules", "get_schedule"]


class RepositorySchedule(Base):
    __tablename__ = "repository_schedules"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    remote_name: Mapped[str | None] = mapped_column(String(255))
    cron: Mapped[str | None] = mapped_column(Text)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    mirror: Mapped[bool] = mapped_column(Boolean, default=False)
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
        session.add(row)
        session.flush()
        return _view(repository, row)


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
    )
