"""One sync per repository at a time, whoever starts it: a lease row per repository in the catalog.

A sync takes the repository's row in ``sync_locks`` (an ``INSERT`` that the primary key lets only
one writer win), renews it while it runs, and deletes it when done. A sync that was killed stops
renewing, so its lease expires and the next sync takes the row over (an ``UPDATE`` guarded by the
expiry). The same SQL works on SQLite and PostgreSQL, so the guarantee does not depend on Prefect:
schedules, UI runs and CLI runs all pass through it.

Errors::

    RepositoryBusy(CatalogError)  another sync holds the repository and did not finish in time
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.catalog import Catalog, CatalogError
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = ["SyncLock", "Lease", "RepositoryBusy", "acquire", "release", "renew", "holding"]

DEFAULT_LEASE = timedelta(minutes=5)


class SyncLock(Base):
    """The sync that currently holds a repository, until ``expires_at`` unless renewed."""

    __tablename__ = "sync_locks"

    repository: Mapped[str] = mapped_column(String(255), primary_key=True)
    token: Mapped[str] = mapped_column(String(36))
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RepositoryBusy(CatalogError):
    """Another sync holds ``repository``; ``holder`` says which one (a flow run, a host and pid)."""

    def __init__(self, repository: str, holder: str, waited: float) -> None:
        self.repository, self.holder, self.waited = repository, holder, waited
        super().__init__(
            f"repository {repository!r} is being synced by {holder!r}; gave up after waiting "
            f"{waited:.0f}s. Retry when that sync has finished."
        )


@dataclass(frozen=True, slots=True)
class Lease:
    repository: str
    token: str
    holder: str
    waited: float


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a ``CursorResult``; the ORM types it as a plain ``Result``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def _try_take(catalog: Catalog, repository: str, token: str, holder: str, lease: timedelta) -> str | None:
    """Take the row (insert, or take over an expired one). Returns None on success, else the holder."""
    now = datetime.now(UTC)
    row = {"token": token, "holder": holder, "acquired_at": now, "expires_at": now + lease}
    try:
        with catalog.session() as session:
            session.add(SyncLock(repository=repository, **row))
        return None
    except IntegrityError:
        pass
    with catalog.session() as session:
        taken = _rowcount(
            session.execute(
                update(SyncLock)
                .where(SyncLock.repository == repository, SyncLock.expires_at < now)
                .values(**row)
                .execution_options(synchronize_session=False)
            )
        )
        if taken:
            return None
        current = session.scalar(select(SyncLock.holder).where(SyncLock.repository == repository))
    return current or "an unknown sync"


def acquire(
    catalog: Catalog,
    repository: str,
    *,
    holder: str,
    wait: float,
    lease: timedelta = DEFAULT_LEASE,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take ``repository``'s sync lock, waiting up to ``wait`` seconds; raise ``RepositoryBusy``."""
    token = str(uuid.uuid4())
    started = time.monotonic()
    while True:
        current = _try_take(catalog, repository, token, holder, lease)
        waited = time.monotonic() - started
        if current is None:
            return Lease(repository, token, holder, waited)
        if waited >= wait:
            raise RepositoryBusy(repository, current, waited)
        sleep(min(poll, max(wait - waited, 0.01)))


def renew(catalog: Catalog, held: Lease, *, lease: timedelta = DEFAULT_LEASE) -> bool:
    """Push the expiry forward; False when the lease was lost (it expired and was taken over)."""
    with catalog.session() as session:
        return bool(
            _rowcount(
                session.execute(
                    update(SyncLock)
                    .where(SyncLock.repository == held.repository, SyncLock.token == held.token)
                    .values(expires_at=datetime.now(UTC) + lease)
                    .execution_options(synchronize_session=False)
                )
            )
        )


def release(catalog: Catalog, held: Lease) -> None:
    """Give the lock back (only ours: a lease taken over by another sync is left alone)."""
    with catalog.session() as session:
        session.execute(
            delete(SyncLock).where(SyncLock.repository == held.repository, SyncLock.token == held.token)
        )


@contextmanager
def holding(
    catalog: Catalog, repository: str, *, holder: str, wait: float, lease: timedelta = DEFAULT_LEASE
) -> Iterator[Lease]:
    """Hold the lock for the block, renewing it every third of the lease from a daemon thread."""
    held = acquire(catalog, repository, holder=holder, wait=wait, lease=lease)
    stop = threading.Event()

    def _heartbeat() -> None:
        while not stop.wait(lease.total_seconds() / 3):
            try:
                renew(catalog, held, lease=lease)
            except Exception:  # a database hiccup: the next beat tries again before expiry
                continue

    beat = threading.Thread(target=_heartbeat, name=f"sync-lock-{repository}", daemon=True)
    beat.start()
    try:
        yield held
    finally:
        stop.set()
        beat.join()
        release(catalog, held)
