"""Catalog maintenance: version retention, orphan cleanup, and the queries of ``repository verify``.

Retention (``apply_retention``) keeps a repository's newest ``retain_repo_versions`` versions.
Membership is stored as intervals ``[version_added, version_removed)``, so dropping old versions
means deleting their version rows and the intervals that ended at or before the oldest kept
version; every kept version keeps exactly its content.

Orphan cleanup (``cleanup_orphans``) deletes packages that nothing references (no version
content, no running sync's staging row, no pull-through cache entry), then artifacts that no
package or core-metadata row references, then their objects, then objects that have no artifact
row at all. A sync writes in the order object -> package rows -> artifact rows -> staging rows, so
its fresh writes are briefly unreferenced: anything created or reused less than ``protection`` ago
(rows by ``created`` or the later ``touched_at`` a reusing sync sets, objects by modification time)
is left alone. An object is deleted only after the
row delete committed and a re-check finds no row, so no row ever points at a deleted object.
Files a crashed writer left in a directory store's ``.incoming`` go too, once older than ``protection``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, aliased

from mirrorflow.storage.artifacts import ArtifactInventory
from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.models import (
    Artifact,
    CoreMetadata,
    Package,
    PullThroughPackage,
    Repository,
    RepositoryContent,
    RepositoryVersion,
    SyncStaging,
)

__all__ = [
    "RetentionResult",
    "apply_retention",
    "CleanupResult",
    "cleanup_orphans",
    "StoredArtifactRow",
    "version_artifacts",
    "version_core_metadata",
    "mark_verified",
    "clear_verified",
]

_BATCH = 500


# -- retention -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What retention removed: version numbers and membership intervals."""

    repository: str
    oldest_kept: int | None
    deleted_versions: tuple[int, ...]
    deleted_intervals: int


def apply_retention(catalog: Catalog, repository: str) -> RetentionResult:
    """Delete the versions of ``repository`` older than its newest ``retain_repo_versions``.

    One transaction, holding the repository row lock that commits take, so a concurrent sync
    commit never interleaves. A repository without ``retain_repo_versions`` keeps everything.
    Raises ``NotFound``.
    """
    with catalog.session() as session:
        repo = session.scalar(select(Repository).where(Repository.name == repository).with_for_update())
        if repo is None:
            raise NotFound("repository", repository)
        if repo.retain_repo_versions is None:
            return RetentionResult(repository, None, (), 0)
        kept = list(
            session.scalars(
                select(RepositoryVersion.number)
                .where(RepositoryVersion.repository_id == repo.id)
                .order_by(RepositoryVersion.number.desc())
                .limit(repo.retain_repo_versions)
            )
        )
        oldest_kept = min(kept)
        old = list(
            session.scalars(
                delete(RepositoryVersion)
                .where(RepositoryVersion.repository_id == repo.id, RepositoryVersion.number < oldest_kept)
                .returning(RepositoryVersion.number)
            )
        )
        # An interval [added, removed) with removed <= oldest_kept covers no kept version.
        intervals = session.execute(
            delete(RepositoryContent)
            .where(
                RepositoryContent.repository_id == repo.id,
                RepositoryContent.version_removed.is_not(None),
                RepositoryContent.version_removed <= oldest_kept,
            )
            .execution_options(synchronize_session=False)
        )
        removed = int(intervals.rowcount)  # type: ignore[attr-defined]  # a CursorResult
        return RetentionResult(repository, oldest_kept, tuple(sorted(old)), removed)


# -- orphans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What a cleanup deleted: package rows, artifact rows, store objects, and leftover spool files."""

    packages: int
    artifacts: int
    objects: int
    spool_files: int = 0


def cleanup_orphans(
    catalog: Catalog, store: ArtifactInventory, *, protection: timedelta, now: datetime | None = None
) -> CleanupResult:
    """Delete what no repository version, running sync or cache references; see the module docstring.

    ``protection`` keeps anything younger than that (Pulp's orphan protection time).
    """
    cutoff = (now or datetime.now(UTC)) - protection
    packages = _delete_orphan_packages(catalog, cutoff)
    artifacts = _delete_orphan_artifacts(catalog, cutoff)
    objects = _delete_unreferenced_objects(catalog, store, artifacts)
    candidates = [f.sha256 for f in store.stored_objects() if f.modified < cutoff]
    objects += _delete_unreferenced_objects(catalog, store, candidates)
    spool = store.remove_spool(older_than=cutoff)  # a crashed writer's leftovers
    return CleanupResult(packages=packages, artifacts=len(artifacts), objects=objects, spool_files=spool)


def _lock(session: Session, tables: str) -> None:
    """On PostgreSQL, hold off writers of ``tables`` (and wait for running ones) for this transaction.

    A row a sync inserts concurrently would be invisible to this transaction's snapshot; the SHARE
    lock makes the delete see every committed reference. SQLite serialises writers already.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {tables} IN SHARE MODE"))


def _delete_orphan_packages(catalog: Catalog, cutoff: datetime) -> int:
    with catalog.session() as session:
        _lock(session, "repository_content, sync_staging, pull_through_packages")
        result = session.execute(
            delete(Package)
            .where(
                func.coalesce(Package.touched_at, Package.created) < cutoff,
                ~exists().where(RepositoryContent.package_id == Package.id),
                ~exists().where(SyncStaging.package_id == Package.id),
                ~exists().where(PullThroughPackage.package_id == Package.id),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult


def _delete_orphan_artifacts(catalog: Catalog, cutoff: datetime) -> list[str]:
    with catalog.session() as session:
        _lock(session, "packages, core_metadata")
        return list(
            session.scalars(
                delete(Artifact)
                .where(
                    func.coalesce(Artifact.touched_at, Artifact.created) < cutoff,
                    ~exists().where(
                        or_(Package.sha256 == Artifact.sha256, Package.artifact_sha256 == Artifact.sha256)
                    ),
                    ~exists().where(CoreMetadata.sha256 == Artifact.sha256),
                )
                .returning(Artifact.sha256)
            )
        )


def _delete_unreferenced_objects(catalog: Catalog, store: ArtifactInventory, sha256s: Sequence[str]) -> int:
    """Delete the objects among ``sha256s`` that no artifact row names (checked now, after commit)."""
    deleted = 0
    for start in range(0, len(sha256s), _BATCH):
        chunk = list(sha256s[start : start + _BATCH])
        with catalog.session() as session:
            rowed = set(session.scalars(select(Artifact.sha256).where(Artifact.sha256.in_(chunk))))
        for sha256 in chunk:
            if sha256 not in rowed:
                store.delete(sha256)
                deleted += 1
    return deleted


# -- verify ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredArtifactRow:
    """An artifact of a version, with the files (names, upstream URLs) that hold its bytes.

    For a stored core-metadata file, ``filenames`` are ``<file>.metadata``, ``urls`` the upstream
    ``<file url>.metadata`` of packages whose index offers it, and ``wheels`` the stored wheels
    ``(filename, sha256)`` it can be read out of again; distribution files have no ``wheels``.
    """

    sha256: str
    size: int
    filenames: tuple[str, ...]
    urls: tuple[str, ...]
    verified_at: datetime | None
    wheels: tuple[tuple[str, str], ...] = ()


def version_artifacts(
    catalog: Catalog, repository: str, number: int | None
) -> tuple[int, list[StoredArtifactRow]]:
    """Return the version number and the stored artifacts of that version (the latest when None).

    Packages that are not stored (``on_demand`` not yet fetched) have no artifact and are left out.
    Raises ``NotFound`` for an unknown repository or a version that does not exist (any more).
    """
    with catalog.session() as session:
        repo_id, wanted = _version_of(session, repository, number)
        rows = session.execute(
            select(Artifact.sha256, Artifact.size, Artifact.verified_at, Package.filename, Package.url)
            # by digest, not artifact_sha256: a package that reused a stored file may be unlinked
            .join(Package, Package.sha256 == Artifact.sha256)
            .join(RepositoryContent, RepositoryContent.package_id == Package.id)
            .where(_present(repo_id, wanted))
            .order_by(Artifact.sha256, Package.filename)
        ).all()
    grouped: dict[str, tuple[int, datetime | None, list[str], list[str]]] = {}
    for sha256, size, verified_at, filename, url in rows:
        entry = grouped.setdefault(sha256, (size, verified_at, [], []))
        entry[2].append(filename)
        entry[3].append(url)
    return wanted, [
        StoredArtifactRow(sha, size, tuple(names), tuple(urls), verified_at)
        for sha, (size, verified_at, names, urls) in grouped.items()
    ]


def version_core_metadata(catalog: Catalog, repository: str, number: int) -> list[StoredArtifactRow]:
    """Return the stored core-metadata (PEP 658 ``.metadata``) files of the packages of a version.

    Raises ``NotFound`` for an unknown repository or version.
    """
    wheel = aliased(Artifact)
    with catalog.session() as session:
        repo_id, wanted = _version_of(session, repository, number)
        rows = session.execute(
            select(Artifact.sha256, Artifact.size, Artifact.verified_at, Package.filename, Package.url)
            .add_columns(Package.has_metadata, wheel.sha256)
            .join(CoreMetadata, CoreMetadata.sha256 == Artifact.sha256)
            .join(Package, Package.id == CoreMetadata.package_id)
            .join(RepositoryContent, RepositoryContent.package_id == Package.id)
            .outerjoin(wheel, wheel.sha256 == Package.sha256)
            .where(_present(repo_id, wanted))
            .order_by(Artifact.sha256, Package.filename)
        ).all()
    grouped: dict[str, tuple[int, datetime | None, list[str], list[str], list[tuple[str, str]]]] = {}
    for sha256, size, verified_at, filename, url, has_metadata, wheel_sha256 in rows:
        _size, _at, names, urls, wheels = grouped.setdefault(sha256, (size, verified_at, [], [], []))
        names.append(f"{filename}.metadata")
        if has_metadata:
            urls.append(f"{url}.metadata")
        if wheel_sha256 is not None and filename.endswith(".whl"):
            wheels.append((filename, wheel_sha256))
    return [
        StoredArtifactRow(sha, size, tuple(names), tuple(urls), at, wheels=tuple(wheels))
        for sha, (size, at, names, urls, wheels) in grouped.items()
    ]


def _version_of(session: Session, repository: str, number: int | None) -> tuple[int, int]:
    """Return ``(repository id, version number)``; the latest version when ``number`` is None."""
    repo = session.scalar(select(Repository).where(Repository.name == repository))
    if repo is None:
        raise NotFound("repository", repository)
    wanted = repo.latest_version if number is None else number
    found = select(RepositoryVersion.id).where(
        RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == wanted
    )
    if session.scalar(found) is None:
        raise NotFound("version", f"{repository}/{wanted}")
    return repo.id, wanted


def _present(repository_id: int, number: int) -> Any:
    """SQL: the content interval holds version ``number`` of the repository."""
    return and_(
        RepositoryContent.repository_id == repository_id,
        RepositoryContent.version_added <= number,
        or_(RepositoryContent.version_removed.is_(None), RepositoryContent.version_removed > number),
    )


def mark_verified(catalog: Catalog, sha256s: Iterable[str], *, at: datetime) -> None:
    """Record that these artifacts were re-hashed at ``at`` and found intact."""
    _set_verified(catalog, sha256s, at)


def clear_verified(catalog: Catalog, sha256s: Iterable[str]) -> None:
    """Forget earlier verifications (the object was found corrupt or missing)."""
    _set_verified(catalog, sha256s, None)


def _set_verified(catalog: Catalog, sha256s: Iterable[str], value: datetime | None) -> None:
    wanted = sorted(set(sha256s))
    with catalog.session() as session:
        for start in range(0, len(wanted), _BATCH):
            session.execute(
                update(Artifact)
                .where(Artifact.sha256.in_(wanted[start : start + _BATCH]))
                .values(verified_at=value)
                .execution_options(synchronize_session=False)
            )
