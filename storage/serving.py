"""Reads and small writes for the simple-index server: projects and files of a version, the
pull-through cache, artifacts fetched on demand and stored core metadata.

Reads select plain columns (no ORM objects): a project page of 5,000 files is one query, run on the
session's connection (Core rows, no ORM result processing) into the records of ``mirrorflow.storage.records``.
Each method is one short transaction. Raises ``mirrorflow.storage.catalog.NotFound`` for an unknown repository.

Where a file's download policy comes from: a package does not record its remote. A file of a
repository version was added by a sync, and the version row records that sync's ``remote_name``;
``ServedFile.remote`` is the remote of the version that added the file (for the pull-through cache,
the remote it was fetched from). The server applies that remote's *current* policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, and_, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from mirrorflow.storage.advisories import AdvisoryRow
from mirrorflow.storage.artifacts import StoredArtifact
from mirrorflow.storage.blocklists import all_entries
from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.models import (
    Artifact,
    CoreMetadata,
    Package,
    PullThroughPackage,
    Remote,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)
from mirrorflow.storage.project_statuses import status_at, statuses_at
from mirrorflow.storage.records import (
    NewPackage,
    PageFile,
    ProjectEntry,
    ProjectFiles,
    RepositoryState,
    ServedFile,
)

__all__ = ["ServingCatalog", "upload_time_text"]


class upload_time_text(FunctionElement[str]):
    """SQL: a ``UTCDateTime`` column as PEP 700 text in UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Formatting in the query spares a page of 5,000 files building 5,000 datetimes only to turn them
    back into text.
    """

    type = Text()
    name = "upload_time_text"
    inherit_cache = True


@compiles(upload_time_text, "sqlite")
def _upload_time_sqlite(element: upload_time_text, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores a SQLite DATETIME as text, always "YYYY-MM-DD HH:MM:SS.ffffff", and
    # UTCDateTime converts to UTC before storing.
    return f"replace({compiler.process(element.clauses, **kw)}, ' ', 'T') || 'Z'"


@compiles(upload_time_text, "postgresql")
def _upload_time_postgresql(element: upload_time_text, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


_PAGE_COLUMNS = (
    Package.id,
    Package.name,
    Package.version,
    Package.filename,
    Package.requires_python,
    Package.sha256,
    Package.size,
    upload_time_text(Package.upload_time),
    Package.yanked,
    Package.yanked_reason,
    Package.metadata_sha256,
    Package.has_metadata,
    Package.artifact_sha256,
    CoreMetadata.sha256,
)

# A ``ServedFile`` is built from these by position: the package id, every column a sync writes (in
# ``NewPackage``'s order), the stored artifact; the queries append the remote and core metadata.
_FILE_COLUMNS = (
    Package.id,
    *(getattr(Package, field) for field in NewPackage._fields),
    Package.artifact_sha256,
)


_OLDEST_VERSION = (
    select(func.min(RepositoryVersion.number))
    .where(RepositoryVersion.repository_id == Repository.id)
    .correlate(Repository)
    .scalar_subquery()
)

_STATES = select(
    Repository.id, Repository.name, Repository.latest_version, Remote.name, _OLDEST_VERSION
).outerjoin(Remote, Remote.id == Repository.pull_through_remote_id)


#: Changes whenever an import changes the advisories: a row added or updated sets ``imported`` to
#: now (above every earlier one), a row removed lowers the count.
_ADVISORY_SIGNAL = select(func.count(AdvisoryRow.id), func.max(AdvisoryRow.imported))
_SYNCING_REMOTES = (
    select(Repository.id, Remote.block_advisories)
    .join(Remote, or_(Remote.id == Repository.remote_id, Remote.id == Repository.pull_through_remote_id))
    .union_all(  # not UNION: PostgreSQL's json has no equality
        select(RepositoryVersion.repository_id, Remote.block_advisories).join(
            Remote, Remote.name == RepositoryVersion.remote_name
        )
    )
)
#: The prefixes of a repository that no remote syncs (``mirrorflow.tasks.advisories.DEFAULT_BLOCK_ADVISORIES``).
_DEFAULT_PREFIXES = ("MAL",)


def _advisory_fields(session: Any) -> tuple[str, dict[int, tuple[str, ...]]]:
    """The advisories' signal (``""``: none imported) and each synced repository's prefixes."""
    count, imported = session.execute(_ADVISORY_SIGNAL).one()
    if not count:
        return "", {}
    prefixes: dict[int, set[str]] = {}
    for repository_id, block_advisories in session.execute(_SYNCING_REMOTES):
        prefixes.setdefault(repository_id, set()).update(block_advisories or ())
    signal = f"{count}:{imported.isoformat() if imported is not None else ''}"
    return signal, {key: tuple(sorted(value)) for key, value in prefixes.items()}


def _present_at(repository_id: int, number: int) -> Any:
    return and_(_held_by(repository_id, number), _open_at(number))


def _held_by(repository_id: int, number: int) -> Any:
    """The membership rows of the repository that version ``number`` or an earlier one added: those
    present in it, and those it or an earlier version removed again (what a serial counts)."""
    return and_(RepositoryContent.repository_id == repository_id, RepositoryContent.version_added <= number)


def _open_at(number: int) -> Any:
    return or_(RepositoryContent.version_removed.is_(None), RepositoryContent.version_removed > number)


def _changed_in(number: int) -> Any:
    """SQL: the version, up to ``number``, in which a membership row last changed its project's file
    set: the version that removed the file, when that is ``number`` or earlier, else the one that added it.

    A project's serial at version ``number`` is the largest of these over its rows (``_held_by``):
    the last version up to ``number`` that added or removed one of its files. It changes whenever the
    project's file set does (a removal too, which the largest package id never showed) and never
    goes down from one version to the next.
    """
    removed = RepositoryContent.version_removed
    return case((removed <= number, removed), else_=RepositoryContent.version_added)


def _state(
    row: Any, blocklist: tuple[str, ...], advisories: tuple[str, dict[int, tuple[str, ...]]]
) -> RepositoryState:
    repository_id, name, latest, pull_through_remote, oldest = row
    signal, prefixes = advisories
    return RepositoryState(
        repository_id,
        name,
        latest,
        pull_through_remote,
        oldest,
        blocklist,
        prefixes.get(repository_id, _DEFAULT_PREFIXES),
        signal,
    )


def _file(row: Any) -> ServedFile:
    return ServedFile.from_row(row)


class ServingCatalog:
    """The server's view of the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.writer = ContentWriter(catalog)
        dialect = catalog.engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # -- reads -------------------------------------------------------------------------------

    def repository(self, name: str) -> RepositoryState:
        """Return the repository's state; raise ``NotFound``."""
        with self.catalog.reading() as session:
            row = session.execute(_STATES.where(Repository.name == name)).first()
            if row is None:
                raise NotFound("repository", name)
            return _state(row, all_entries(session).get(row[0], ()), _advisory_fields(session))

    def repositories(self) -> list[RepositoryState]:
        """Return the state of every repository, its blocklist and advisory prefixes (the change signal):
        three queries, four once advisories are imported.

        Repositories are few; each row costs an index lookup for its oldest version.
        """
        with self.catalog.reading() as session:
            blocklists = all_entries(session)
            advisories = _advisory_fields(session)
            return [
                _state(row, blocklists.get(row[0], ()), advisories)
                for row in session.connection().execute(_STATES)
            ]

    def has_version(self, repository_id: int, number: int) -> bool:
        with self.catalog.reading() as session:
            found = session.scalar(
                select(func.count()).where(
                    RepositoryVersion.repository_id == repository_id, RepositoryVersion.number == number
                )
            )
        return bool(found)

    def projects(self, repository_id: int, number: int, *, pull_through: bool) -> list[ProjectEntry]:
        """Return the projects of version ``number`` (plus the pull-through cache), sorted by name.

        A project of the version has the version's serial (``_changed_in``); a project only pulled
        through, the largest id among its pulled files. A project held by both is listed as the
        version holds it, as its page shows the version's files (``project_page``).
        """
        present = _open_at(number)
        with self.catalog.reading() as session:
            listed = {
                normalized: ProjectEntry(normalized, display, serial)
                for normalized, display, serial in session.connection().execute(
                    select(
                        Package.normalized_name,
                        func.min(case((present, Package.name))),
                        func.max(_changed_in(number)),
                    )
                    .join(RepositoryContent, RepositoryContent.package_id == Package.id)
                    .where(_held_by(repository_id, number))
                    .group_by(Package.normalized_name)
                    .having(func.max(case((present, 1), else_=0)) == 1)
                )
            }
            if pull_through:
                for normalized, display, serial in session.connection().execute(
                    select(Package.normalized_name, func.min(Package.name), func.max(Package.id))
                    .join(PullThroughPackage, PullThroughPackage.package_id == Package.id)
                    .where(PullThroughPackage.repository_id == repository_id)
                    .group_by(Package.normalized_name)
                ):
                    listed.setdefault(normalized, ProjectEntry(normalized, display, serial))
        return [listed[name] for name in sorted(listed)]

    def project_status(
        self, repository_id: int, number: int, normalized_name: str
    ) -> tuple[str, str | None] | None:
        """The project's PEP 792 status and reason at version ``number`` (None: active)."""
        with self.catalog.reading() as session:
            return status_at(session, repository_id, number, normalized_name)

    def project_statuses(self, repository_id: int, number: int) -> dict[str, tuple[str, str | None]]:
        """Every non-active PEP 792 status at version ``number``, by project."""
        with self.catalog.reading() as session:
            return statuses_at(session, repository_id, number)

    def project_files(self, repository_id: int, number: int, normalized_name: str) -> list[PageFile]:
        """Return the files of one project in version ``number``, by filename, as a page lists them."""
        return self.project_page(repository_id, number, normalized_name).files

    def project_page(self, repository_id: int, number: int, normalized_name: str) -> ProjectFiles:
        """Return the files of one project in version ``number``, by filename, and its serial there
        (0 when no version up to ``number`` held a file of it), in one query.

        The query reads the files the version holds and those it or an earlier version removed (for
        the serial, ``_changed_in``). No join on the version rows: which remote a file came from
        matters only when it is served.
        """
        statement = (
            select(*_PAGE_COLUMNS, _open_at(number), _changed_in(number))
            .join(RepositoryContent, RepositoryContent.package_id == Package.id)
            .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
            .where(_held_by(repository_id, number), Package.normalized_name == normalized_name)
            .order_by(Package.filename)
        )
        files: list[PageFile] = []
        serial = 0
        with self.catalog.reading() as session:
            for *row, present, changed in session.connection().execute(statement):
                serial = max(serial, changed)
                if present:
                    files.append(PageFile._make(row))
        return ProjectFiles(files, serial)

    def projects_files(
        self, repository_id: int, number: int, normalized_names: Iterable[str]
    ) -> dict[str, list[PageFile]]:
        """``project_files`` of many projects at once (those holding files), a query per 1,000 names."""
        names = sorted(set(normalized_names))
        found: dict[str, list[PageFile]] = {}
        with self.catalog.reading() as session:
            for start in range(0, len(names), 1000):
                statement = (
                    select(*_PAGE_COLUMNS, Package.normalized_name)
                    .join(RepositoryContent, RepositoryContent.package_id == Package.id)
                    .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
                    .where(
                        _present_at(repository_id, number),
                        Package.normalized_name.in_(names[start : start + 1000]),
                    )
                    .order_by(Package.filename)
                )
                for *row, normalized in session.connection().execute(statement):
                    found.setdefault(normalized, []).append(PageFile._make(row))
        return found

    def pull_through_files(
        self, repository_id: int, normalized_name: str
    ) -> tuple[list[ServedFile], datetime | None]:
        """Return the cached pull-through files of a project and when it was last fetched."""
        with self.catalog.reading() as session:
            rows = list(
                session.execute(
                    select(*_FILE_COLUMNS, Remote.name, CoreMetadata.sha256, PullThroughPackage.fetched_at)
                    .join(PullThroughPackage, PullThroughPackage.package_id == Package.id)
                    .outerjoin(Remote, Remote.id == PullThroughPackage.remote_id)
                    .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
                    .where(
                        PullThroughPackage.repository_id == repository_id,
                        PullThroughPackage.normalized_name == normalized_name,
                    )
                    .order_by(Package.filename)
                )
            )
        fetched: datetime | None = max((row[-1] for row in rows if row[-1] is not None), default=None)
        return [_file(row[:-1]) for row in rows], fetched

    def find_file(self, repository_id: int, sha256: str, filename: str) -> ServedFile | None:
        """Return the package ``(filename, sha256)`` if any version or the pull-through cache holds it."""
        version = aliased(RepositoryVersion)
        with self.catalog.reading() as session:
            row = session.execute(
                select(*_FILE_COLUMNS, version.remote_name, CoreMetadata.sha256)
                .join(RepositoryContent, RepositoryContent.package_id == Package.id)
                .outerjoin(
                    version,
                    and_(
                        version.repository_id == repository_id,
                        version.number == RepositoryContent.version_added,
                    ),
                )
                .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
                .where(
                    RepositoryContent.repository_id == repository_id,
                    Package.sha256 == sha256,
                    Package.filename == filename,
                )
                .order_by(RepositoryContent.version_added.desc())
                .limit(1)
            ).first()
            if row is None:
                row = session.execute(
                    select(*_FILE_COLUMNS, Remote.name, CoreMetadata.sha256)
                    .join(PullThroughPackage, PullThroughPackage.package_id == Package.id)
                    .outerjoin(Remote, Remote.id == PullThroughPackage.remote_id)
                    .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
                    .where(
                        PullThroughPackage.repository_id == repository_id,
                        Package.sha256 == sha256,
                        Package.filename == filename,
                    )
                ).first()
        return None if row is None else _file(row)

    def metadata_digest(self, package_id: int) -> str | None:
        with self.catalog.reading() as session:
            return session.scalar(select(CoreMetadata.sha256).where(CoreMetadata.package_id == package_id))

    # -- writes ------------------------------------------------------------------------------

    def link_artifact(self, stored: StoredArtifact) -> None:
        """Record an artifact fetched on demand and link every package with its digest."""
        self.writer.record_artifacts([(stored.sha256, stored.size, stored.key)])

    def remember_metadata(self, package_id: int, stored: StoredArtifact, *, source: str) -> None:
        """Record stored core metadata (an artifact row, not linked to any package) for a package."""
        with self.catalog.session() as session:
            row = {"sha256": stored.sha256, "size": stored.size, "storage_key": stored.key}
            session.execute(self._insert(Artifact).values(row).on_conflict_do_nothing())
            values = {"package_id": package_id, "sha256": stored.sha256, "source": source}
            session.execute(self._insert(CoreMetadata).values(values).on_conflict_do_nothing())

    def record_pull_through(
        self, repository_id: int, remote: str, normalized_name: str, packages: Sequence[NewPackage]
    ) -> None:
        """Record a project fetched from the pull-through remote: packages + cache rows, fetched now.

        Files the remote no longer lists stay cached (a pull-through cache only grows).
        """
        ids = self.writer.upsert_packages(packages) if packages else {}
        now = datetime.now(UTC)
        with self.catalog.session() as session:
            remote_id = session.scalar(select(Remote.id).where(Remote.name == remote))
            if ids:
                rows = [
                    {
                        "repository_id": repository_id,
                        "package_id": package_id,
                        "normalized_name": normalized_name,
                        "remote_id": remote_id,
                        "fetched_at": now,
                    }
                    for package_id in ids.values()
                ]
                session.execute(self._insert(PullThroughPackage).values(rows).on_conflict_do_nothing())
            session.execute(
                update(PullThroughPackage)
                .where(
                    PullThroughPackage.repository_id == repository_id,
                    PullThroughPackage.normalized_name == normalized_name,
                )
                .values(fetched_at=literal(now, type_=PullThroughPackage.fetched_at.type))
            )

    def set_pull_through(self, repository: str, remote: str | None) -> None:
        """Attach (or detach, with None) the pull-through remote of a repository; raise ``NotFound``."""
        with self.catalog.session() as session:
            repo = session.scalar(select(Repository).where(Repository.name == repository))
            if repo is None:
                raise NotFound("repository", repository)
            remote_id = None
            if remote is not None:
                remote_id = session.scalar(select(Remote.id).where(Remote.name == remote))
                if remote_id is None:
                    raise NotFound("remote", remote)
            repo.pull_through_remote_id = remote_id
