"""Content writes: packages, artifacts, a sync's staging rows, and the version commit.

A sync writes in two phases, so that no reader ever sees half of it:

1. batch by batch, ``upsert_packages`` + ``stage`` record what the sync selected (packages are
   shared, idempotent rows; staging rows are private to the sync), and
   ``mirrorflow.storage.serials.SerialMemory.touch`` records which projects the sync evaluated;
2. ``commit_version`` turns the staged set into the next repository version in ONE transaction:
   lock the repository, close intervals of what leaves, open intervals for what arrives, write
   the version row, fold the touched projects into the serial memory. A commit that would change
   nothing writes no version and uses no number.

An incremental sync (``scope="touched"``) stages only the projects it fetched: an untouched
project keeps its content without a staging row, so a sync's cost follows what changed upstream,
not the size of the repository. The per-batch writes go through ``mirrorflow.storage.bulk`` (driver SQL,
chunked far below the parameter limits).

A sync killed before step 2 leaves only staging rows (invisible, cleared later) and packages or
artifacts that no version references yet (reused by the rerun).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mirrorflow.storage.bulk import BulkWriter
from mirrorflow.storage.catalog import Catalog, NotFound, VersionView, _view
from mirrorflow.storage.content_reads import ContentReader
from mirrorflow.storage.models import (
    Artifact,
    Package,
    Remote,
    Repository,
    RepositoryContent,
    RepositoryVersion,
    SyncStaging,
)
from mirrorflow.storage.models_serials import SyncProject
from mirrorflow.storage.project_statuses import Status, close_statuses, record_status_changes
from mirrorflow.storage.records import NewPackage
from mirrorflow.storage.serials import apply_touched, touched_names

# ``NewPackage`` is defined in ``storage.records`` (pure) and re-exported here for the writers' callers.
__all__ = ["NewPackage", "ContentWriter", "STALE_STAGING_AFTER", "package_uuid"]

#: Staging rows older than this belong to a sync that died; a later commit clears them.
STALE_STAGING_AFTER = timedelta(hours=24)

#: A commit that adds or removes at least this many rows refreshes the planner's statistics.
ANALYZE_AFTER_ROWS = 10_000
_BATCH = 1000  # rows per statement: 16 columns x 1000 stays far below 65,535 parameters


#: Namespace of package uuids (a uuid4 drawn once; changing it would change every package's href).
_PACKAGE_NAMESPACE = uuid.UUID("9b2f4c3e-6a1d-4e8b-a5c7-2f0d8e1b7c46")


def package_uuid(filename: str, sha256: str) -> str:
    """The uuid of the package ``(filename, sha256)``: the same in every catalog, for every sync.

    Derived rather than drawn, so that a row written twice (two syncs racing, an upsert that
    loses) can only ever carry one identity.

    >>> package_uuid("shelf-reader-0.1.tar.gz", "0" * 64)
    '764d4a3a-74f9-5e62-aa68-7797d44443e2'
    """
    return str(uuid.uuid5(_PACKAGE_NAMESPACE, f"{filename}\0{sha256}"))


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


_PACKAGE_FIELDS = NewPackage._fields


def _chunks(items: Sequence[Any], size: int = _BATCH) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ContentWriter:
    """Writes content for syncs. Each method is one short transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        dialect = catalog.engine.dialect
        self._insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        self._packages = BulkWriter(_table(Package), (*_PACKAGE_FIELDS, "created", "uuid"), dialect)
        self._staging = BulkWriter(
            _table(SyncStaging), ("sync_id", "repository_id", "package_id", "staged_at"), dialect
        )

    # -- packages and artifacts --------------------------------------------------------------

    def upsert_packages(self, packages: Sequence[NewPackage]) -> dict[tuple[str, str], int]:
        """Record packages (idempotent) and return their ids by ``(filename, sha256)``.

        An existing row keeps its identity; the upstream's yank status is refreshed, and the row is
        touched (reused by this sync: orphan cleanup's protection time counts from it).
        """
        unique = {(p.filename, p.sha256): p for p in packages}
        if not unique:
            return {}
        now = datetime.now(UTC)
        rows = [
            (*package, now, package_uuid(package.filename, package.sha256)) for package in unique.values()
        ]
        with self.catalog.session() as session:
            found = self._packages.upsert_returning(
                session.connection(),
                rows,
                conflict=("filename", "sha256"),
                update={"yanked": "yanked", "yanked_reason": "yanked_reason", "touched_at": "created"},
                returning=("filename", "sha256", "id"),
            )
        return {(filename, sha256): id_ for filename, sha256, id_ in found}

    def known_artifacts(self, sha256s: Iterable[str]) -> set[str]:
        """Return the digests among ``sha256s`` that already have an artifact row.

        The rows found are *touched*: a sync that reuses them is about to reference them again,
        and orphan cleanup's protection time counts from the touch.
        """
        wanted = sorted(set(sha256s))
        found: set[str] = set()
        now = datetime.now(UTC)
        with self.catalog.session() as session:
            for chunk in _chunks(wanted):
                touched = session.scalars(
                    update(Artifact)
                    .where(Artifact.sha256.in_(chunk))
                    .values(touched_at=now)
                    .returning(Artifact.sha256)
                    .execution_options(synchronize_session=False)
                )
                found.update(touched)
        return found

    def record_artifacts(self, artifacts: Sequence[tuple[str, int, str]]) -> None:
        """Record stored artifacts ``(sha256, size, key)`` and link every package with that digest.

        Call only after the object is in the store: a row never points at a missing object.
        """
        if not artifacts:
            return
        now = datetime.now(UTC)
        insert = self._insert(_table(Artifact))
        stmt = insert.on_conflict_do_update(
            index_elements=["sha256"], set_={"touched_at": insert.excluded.created}
        )
        with self.catalog.session() as session:
            for chunk in _chunks(list(artifacts)):
                rows = [{"sha256": s, "size": n, "storage_key": k, "created": now} for s, n, k in chunk]
                session.connection().execute(stmt, rows)
                self._link(session, [s for s, _, _ in chunk])

    def link_artifacts(self, sha256s: Iterable[str]) -> None:
        """Link the packages with these digests to their (already recorded) artifacts."""
        with self.catalog.session() as session:
            for chunk in _chunks(sorted(set(sha256s))):
                self._link(session, chunk)

    @staticmethod
    def _link(session: Session, sha256s: Sequence[str]) -> None:
        session.execute(
            update(Package)
            .where(Package.sha256.in_(sha256s), Package.artifact_sha256.is_(None))
            .values(artifact_sha256=Package.sha256)
        )

    # -- staging and commit ------------------------------------------------------------------

    def stage(self, sync_id: str, repository_id: int, package_ids: Iterable[int]) -> None:
        """Remember that sync ``sync_id`` selected these packages (idempotent)."""
        now = datetime.now(UTC)
        rows = [(sync_id, repository_id, package_id, now) for package_id in package_ids]
        with self.catalog.session() as session:
            self._staging.insert_many(session.connection(), rows, on_conflict_do_nothing=True)

    def discard(self, sync_id: str) -> None:
        """Drop a sync's staging rows (a failed sync calls this; a crashed one is cleared later)."""
        with self.catalog.session() as session:
            session.execute(delete(SyncStaging).where(SyncStaging.sync_id == sync_id))
            session.execute(delete(SyncProject).where(SyncProject.sync_id == sync_id))

    def commit_version(
        self,
        *,
        repository: str,
        sync_id: str,
        mirror: bool,
        remote_name: str | None = None,
        report: dict[str, Any] | None = None,
        scope: str = "all",
        fingerprint: str | None = None,
        remove_packages: Collection[int] = (),
        status_changes: Mapping[str, Status] | None = None,
        withdrawn: Collection[str] = (),
    ) -> VersionView | None:
        """Turn the staged set into the next version; None when nothing would change.

        ``remove_packages``: present packages to leave out of the new version in either mode (held
        files that an imported advisory now blocks, ``mirrorflow.flows.advisory_sync``).

        Additive (``mirror=False``): staged packages are added; a present package whose filename a
        staged package now takes (same name, other digest) is replaced. Mirror: additionally,
        present packages that were not staged are removed: all of them (``scope="all"``, a full
        sync) except those of projects the sync marked ``stale``; or only those of projects the
        sync marked ``fetched`` or ``gone`` (``scope="touched"``, an incremental sync: untouched
        projects keep their content without being staged).

        With ``remote_name``, the sync's touched projects are folded into the serial memory in the
        same transaction (``mirrorflow.storage.serials.apply_touched``), and ``fingerprint`` (when given)
        becomes the memory's filter fingerprint. Raises ``NotFound`` for an unknown repository.

        ``status_changes``: the projects whose upstream status (PEP 792) changed, with the new one
        (``mirrorflow.storage.project_statuses``); a change alone makes a version. ``withdrawn``: projects
        whose present files leave in any mode (quarantined upstream, ``mirrorflow.tasks.project_status``).
        """
        view = self._commit(
            repository=repository,
            sync_id=sync_id,
            mirror=mirror,
            remote_name=remote_name,
            report=report,
            scope=scope,
            fingerprint=fingerprint,
            remove_packages=remove_packages,
            status_changes=status_changes or {},
            withdrawn=withdrawn,
        )
        if view is not None and view.added + view.removed >= ANALYZE_AFTER_ROWS:
            self._refresh_statistics()
        return view

    def _refresh_statistics(self) -> None:
        """ANALYZE the content tables after a large commit (PostgreSQL).

        The first sync of a big index adds hundreds of thousands of rows at once, long before
        autovacuum samples them: with statistics that still say "3 rows", the next (incremental)
        commit's planner drives its updates from the whole repository's content (1.3 s at 10,000
        projects instead of milliseconds). ANALYZE samples a fixed number of rows, whatever the size.
        """
        if self.catalog.engine.dialect.name != "postgresql":
            return
        with self.catalog.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE repository_content, packages"
            )

    def _commit(
        self,
        *,
        repository: str,
        sync_id: str,
        mirror: bool,
        remote_name: str | None,
        report: dict[str, Any] | None,
        scope: str,
        fingerprint: str | None,
        remove_packages: Collection[int] = (),
        status_changes: Mapping[str, Status],
        withdrawn: Collection[str],
    ) -> VersionView | None:
        if scope not in ("all", "touched"):
            raise ValueError(f"scope {scope!r} is not 'all' or 'touched'")
        with self.catalog.session() as session:
            repo = session.scalar(select(Repository).where(Repository.name == repository).with_for_update())
            if repo is None:
                raise NotFound("repository", repository)
            number = repo.latest_version + 1
            staged = select(SyncStaging.package_id).where(SyncStaging.sync_id == sync_id)
            is_open = and_(
                RepositoryContent.repository_id == repo.id, RepositoryContent.version_removed.is_(None)
            )
            removed = self._close(session, is_open, number, replaced_by(staged))
            if remove_packages:
                removed += self._close(
                    session, is_open, number, RepositoryContent.package_id.in_(sorted(remove_packages))
                )
            if mirror:
                removed += self._close_unstaged(session, is_open, number, staged, sync_id, scope)
            for chunk in _chunks(sorted(withdrawn)):  # quarantined upstream: gone in additive mode too
                leaving = select(Package.id).where(Package.normalized_name.in_(chunk))
                removed += self._close(session, is_open, number, RepositoryContent.package_id.in_(leaving))
            changed = record_status_changes(
                session, repository_id=repo.id, number=number, changes=status_changes
            )
            if mirror:  # a project gone from the upstream, removed: its status goes with it
                changed += close_statuses(
                    session, repository_id=repo.id, number=number, names=touched_names(sync_id, ("gone",))
                )
            present_ids = select(RepositoryContent.package_id).where(is_open)
            session.execute(
                _table(RepositoryContent)
                .insert()
                .from_select(
                    ["repository_id", "package_id", "version_added"],
                    select(literal(repo.id), SyncStaging.package_id, literal(number)).where(
                        SyncStaging.sync_id == sync_id, SyncStaging.package_id.not_in(present_ids)
                    ),
                )
            )
            # Counted by the index, not with RETURNING: a whole-index sync adds hundreds of thousands
            # of rows, and an id fetched for each only to count them was the sync's peak of memory.
            # (psycopg reports no rowcount for this statement.) The number is new and the
            # repository row locked, so every row added at this number is this statement's.
            added = int(
                session.scalar(
                    select(func.count()).where(
                        RepositoryContent.repository_id == repo.id, RepositoryContent.version_added == number
                    )
                )
                or 0
            )
            if remote_name is not None:
                remote_id = session.scalar(select(Remote.id).where(Remote.name == remote_name))
                if remote_id is not None:
                    apply_touched(
                        session,
                        repository_id=repo.id,
                        remote_id=remote_id,
                        sync_id=sync_id,
                        fingerprint=fingerprint,
                        full=scope == "all",
                    )
            self._clear_staging(session, repo.id, sync_id)
            if added == 0 and removed == 0 and changed == 0:
                return None
            previous = session.scalar(
                select(RepositoryVersion.present_count).where(
                    RepositoryVersion.repository_id == repo.id,
                    RepositoryVersion.number == repo.latest_version,
                )
            )
            version = RepositoryVersion(
                repository_id=repo.id,
                number=number,
                added_count=added,
                removed_count=removed,
                present_count=(previous or 0) + added - removed,
                remote_name=remote_name,
                report=report or {},
            )
            session.add(version)
            repo.latest_version = number
            session.flush()
            return _view(repo, version)

    @staticmethod
    def _close(session: Session, is_open: Any, number: int, condition: Any) -> int:
        result = session.execute(
            update(RepositoryContent)
            .where(is_open, condition)
            .values(version_removed=number)
            .execution_options(synchronize_session=False)
        )
        return int(cast(Any, result).rowcount)

    @classmethod
    def _close_unstaged(
        cls, session: Session, is_open: Any, number: int, staged: Any, sync_id: str, scope: str
    ) -> int:
        if scope == "all":
            kept = select(Package.id).where(Package.normalized_name.in_(touched_names(sync_id, ("stale",))))
            condition = and_(
                RepositoryContent.package_id.not_in(staged), RepositoryContent.package_id.not_in(kept)
            )
            return cls._close(session, is_open, number, condition)
        touched = touched_names(sync_id, ("fetched", "gone"))
        if session.scalar(select(func.count()).select_from(touched.subquery())) == 0:
            return 0  # the common no-change case: skip scanning the repository's content
        leaving = select(Package.id).where(Package.normalized_name.in_(touched), Package.id.not_in(staged))
        return cls._close(session, is_open, number, RepositoryContent.package_id.in_(leaving))

    @staticmethod
    def _clear_staging(session: Session, repository_id: int, sync_id: str) -> None:
        stale = datetime.now(UTC) - STALE_STAGING_AFTER
        session.execute(
            delete(SyncStaging).where(
                SyncStaging.repository_id == repository_id,
                or_(SyncStaging.sync_id == sync_id, SyncStaging.staged_at < stale),
            )
        )
        session.execute(
            delete(SyncProject).where(
                SyncProject.repository_id == repository_id,
                or_(SyncProject.sync_id == sync_id, SyncProject.staged_at < stale),
            )
        )

    # -- reads -------------------------------------------------------------------------------

    def content_at(self, repository: str, number: int | None = None) -> list[Package]:
        """Return the packages of a version (the latest when None), by project and filename.

        Raises ``NotFound`` for an unknown repository, or a version never made or dropped.
        """
        reader = ContentReader(self.catalog)
        return reader.version_page(repository, number, membership="present", limit=None, offset=0).packages

    def count_packages(self) -> int:
        with self.catalog.session() as session:
            return int(session.scalar(select(func.count()).select_from(Package)) or 0)


def replaced_by(staged: Any) -> Any:
    """Condition on open content: a package whose filename a staged package (other digest) takes."""
    staged_filenames = select(Package.filename).where(Package.id.in_(staged))
    return RepositoryContent.package_id.in_(
        select(Package.id).where(Package.filename.in_(staged_filenames), Package.id.not_in(staged))
    )
