"""Schema for incremental sync: what each repository last saw of each upstream project.

- ``ProjectSerial``: per (repository, remote, project), the upstream serial, ETag and
  Last-Modified of the project page whose content the repository holds. Keyed by repository as
  well as remote: one remote synced into two repositories must not let the second skip projects
  only the first has.
- ``SyncFilterState``: the fingerprint of the remote's filters (and URL and policy) the serials
  were taken under; a different fingerprint makes the next sync re-evaluate every project.
- ``SyncProject``: a running sync's touched projects (``fetched``, ``gone`` or ``stale``), with
  the serial to remember; the commit turns them into ``ProjectSerial`` rows in its transaction.

Migration ``0003_serials`` creates these tables. This module imports ``mirrorflow.storage.models`` (for ``Base``),
not the other way round; ``storage/migrations/env.py`` imports it so that ``Base.metadata`` holds them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.models import Base

__all__ = ["ProjectSerial", "SyncFilterState", "SyncProject", "PROJECT_STATES"]

#: fetched: evaluated from a fresh page; gone: left the listing (or 404); stale: kept as it was.
PROJECT_STATES = ("fetched", "gone", "stale")


def _now() -> datetime:
    return datetime.now(UTC)


class ProjectSerial(Base):
    """The upstream state of one project as a repository last synced it from a remote."""

    __tablename__ = "project_serials"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    remote_id: Mapped[int] = mapped_column(ForeignKey("remotes.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    serial: Mapped[int | None] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(default=_now)


class SyncFilterState(Base):
    """The filter fingerprint a repository's serials from a remote were recorded under."""

    __tablename__ = "sync_filter_states"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    remote_id: Mapped[int] = mapped_column(ForeignKey("remotes.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    updated: Mapped[datetime] = mapped_column(default=_now)


class SyncProject(Base):
    """A project a running sync touched, with what to remember of it once the sync commits."""

    __tablename__ = "sync_projects"

    sync_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(8))
    serial: Mapped[int | None] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    staged_at: Mapped[datetime] = mapped_column(default=_now)

    __table_args__ = (
        CheckConstraint(f"state IN {PROJECT_STATES!r}", name="state"),
        Index("ix_sync_projects_repository", "repository_id"),
    )
