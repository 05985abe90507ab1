"""The catalog: repositories, remotes and repository versions, on PostgreSQL or SQLite.

Each public method is one short transaction. Errors::

    CatalogError
     ├── NotFound          (.kind, .name)  no repository / remote / version of that name
     └── AlreadyExists     (.kind, .name)  a repository or remote of that name exists

Content writes (packages, artifacts, staging, the version commit) live in ``mirrorflow.storage.content``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.models import Remote, Repository, RepositoryVersion
from mirrorflow.storage.records import VersionView
from mirrorflow.storage.schema import HEAD_REVISION, SECRET_FIELDS, VERSION_TABLE
from mirrorflow.storage.secrets import SEALED_PREFIX, NoSecretKey, SecretBox, is_secret_header

__all__ = ["Catalog", "CatalogError", "NotFound", "AlreadyExists", "VersionView"]


class CatalogError(MirrorflowError):
    """Base of the catalog's errors."""


class NotFound(CatalogError, LookupError):
    def __init__(self, kind: str, name: object) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"{kind} {name!r} does not exist")


class AlreadyExists(CatalogError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        command = "repository" if kind == "repository" else "remote"
        super().__init__(
            f"{kind} {name!r} already exists: choose another --name, or change it with "
            f"'mirrorflow {command} update --name {name}'"
        )


_KIND: dict[type[Any], str] = {Remote: "remote", Repository: "repository"}
_Named = TypeVar("_Named", Remote, Repository)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """Return an engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``pool_size``: connections kept open, for a process with that many threads using the catalog
    (the server); None: SQLAlchemy's 5 (+ 10 closed again after use). The PRAGMAs are set once per
    connection, when it is opened.
    """
    sizing: dict[str, Any] = {}
    if pool_size is not None:
        sizing = {"pool_size": pool_size, "max_overflow": max(1, pool_size // 4)}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **sizing)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", lambda conn, _rec: setattr(conn, "isolation_level", None))
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, **sizing)


#: The execution option of ``Catalog.reading``'s connections.
_READ_ONLY = "mirrorflow_read_only"


def _begin_sqlite(connection: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN; a transaction that may write takes the
    # write lock up front instead, so that two writers queue on busy_timeout rather than deadlock
    # on a lock upgrade. A read-only one (Catalog.reading) takes no lock: in WAL mode it reads a
    # snapshot beside a writer, neither waiting for it nor holding it up.
    read_only = connection.get_execution_options().get(_READ_ONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


class Catalog:
    """Repositories, remotes and versions. Built once per process from the database URL."""

    def __init__(self, engine: Engine, *, secrets: SecretBox | None = None) -> None:
        """``secrets`` seals remote secrets at rest; without it, storing or reading one raises."""
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(engine.execution_options(**{_READ_ONLY: True}))
        self._secrets = secrets

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        migrate: bool = True,
        secrets: SecretBox | None = None,
        pool_size: int | None = None,
    ) -> Catalog:
        catalog = cls(make_engine(url, pool_size=pool_size), secrets=secrets)
        if migrate:
            catalog.migrate()
        return catalog

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent).

        A catalog already at the head is left alone without importing Alembic (``mirrorflow.storage.schema``).
        """
        if self.schema_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_revision(self) -> str | None:
        """The catalog's Alembic revision, or None when it has none yet (a new database)."""
        with self.engine.connect() as connection:
            connection.execution_options(**{_READ_ONLY: True})  # on SQLite: no write lock (_begin_sqlite)
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            revision: str | None = connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            return revision

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """One transaction that only reads: on SQLite, a snapshot that does not queue behind a
        sync's writes (``session`` takes SQLite's write lock up front). It must not write."""
        with self._read_sessions() as session, session.begin():
            yield session

    # -- remotes -----------------------------------------------------------------------------

    def create_remote(self, name: str, **fields: Any) -> Remote:
        try:
            with self.session() as session:
                remote = Remote(name=name, **self._sealed(fields))
                session.add(remote)
                session.flush()
        except IntegrityError:
            if self._exists(Remote, name):
                raise AlreadyExists("remote", name) from None
            raise
        return self._opened(remote)

    def get_remote(self, name: str) -> Remote:
        """Return the remote with its secrets decrypted (a copy detached from the database)."""
        with self.session() as session:
            remote = self._get(session, Remote, name)
        return self._opened(remote)

    def list_remotes(self) -> list[Remote]:
        with self.session() as session:
            remotes = list(session.scalars(select(Remote).order_by(Remote.name)))
        return [self._opened(remote) for remote in remotes]

    def update_remote(self, name: str, **fields: Any) -> Remote:
        with self.session() as session:
            remote = self._get(session, Remote, name)
            if "url" in fields and fields["url"] != remote.url:
                _forget_closure_pages(session, name)
            for key, value in self._sealed(fields).items():
                setattr(remote, key, value)
            session.flush()
        return self._opened(remote)

    def _sealed(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` with each secret encrypted: only ciphertext reaches the database."""
        sealed = dict(fields)
        for key in SECRET_FIELDS:
            if sealed.get(key) is not None:
                sealed[key] = self._box(key).encrypt(sealed[key])
        if sealed.get("headers"):
            sealed["headers"] = [
                {
                    name: SEALED_PREFIX + self._box("headers").encrypt(value)
                    if is_secret_header(name)
                    else value
                    for name, value in entry.items()
                }
                for entry in sealed["headers"]
            ]
        return sealed

    def _box(self, field: str) -> SecretBox:
        if self._secrets is None:
            raise NoSecretKey(field)
        return self._secrets

    def _opened_headers(self, headers: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            {
                name: self._box("headers").decrypt(
                    value.removeprefix(SEALED_PREFIX), field=f"headers ({name})"
                )
                if isinstance(value, str) and value.startswith(SEALED_PREFIX)
                else value
                for name, value in entry.items()
            }
            for entry in headers
        ]

    def _opened(self, row: Remote) -> Remote:
        """A transient copy of ``row`` with its secrets decrypted.

        A copy, not the loaded row: adding it to a session fails on the unique name instead of
        writing plaintext over the ciphertext. Raises ``WrongSecretKey`` or ``NoSecretKey``.
        """
        values = {column.key: getattr(row, column.key) for column in Remote.__table__.columns}
        for key in SECRET_FIELDS:
            if values[key] is not None:
                values[key] = self._box(key).decrypt(values[key], field=key)
        if values["headers"]:
            values["headers"] = self._opened_headers(values["headers"])
        return Remote(**values)

    def delete_remote(self, name: str) -> None:
        with self.session() as session:
            session.delete(self._get(session, Remote, name))
            _forget_closure_pages(session, name)

    # -- repositories ------------------------------------------------------------------------

    def create_repository(
        self,
        name: str,
        *,
        description: str | None = None,
        retain_repo_versions: int | None = None,
        remote: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Repository:
        """Create a repository and its empty version 0, as Pulp does."""
        try:
            with self.session() as session:
                remote_id = self._get(session, Remote, remote).id if remote else None
                repository = Repository(
                    name=name,
                    description=description,
                    retain_repo_versions=retain_repo_versions,
                    remote_id=remote_id,
                    latest_version=0,
                    labels=labels or {},
                )
                session.add(repository)
                session.flush()
                session.add(RepositoryVersion(repository_id=repository.id, number=0))
                return repository
        except IntegrityError:
            if self._exists(Repository, name):
                raise AlreadyExists("repository", name) from None
            raise

    def get_repository(self, name: str) -> Repository:
        with self.session() as session:
            return self._get(session, Repository, name)

    def list_repositories(self) -> list[Repository]:
        with self.session() as session:
            return list(session.scalars(select(Repository).order_by(Repository.name)))

    def update_repository(self, name: str, **fields: Any) -> Repository:
        """Update fields; ``remote`` takes a remote name (or None to detach)."""
        with self.session() as session:
            repository = self._get(session, Repository, name)
            if "remote" in fields:
                remote = fields.pop("remote")
                repository.remote_id = self._get(session, Remote, remote).id if remote else None
            for key, value in fields.items():
                setattr(repository, key, value)
            session.flush()
            return repository

    def delete_repository(self, name: str) -> None:
        with self.session() as session:
            session.delete(self._get(session, Repository, name))

    def remote_uuid_of(self, repository: Repository) -> str | None:
        """The uuid of the repository's default remote (None: it has none)."""
        if repository.remote_id is None:
            return None
        with self.session() as session:
            return session.scalar(select(Remote.uuid).where(Remote.id == repository.remote_id))

    def name_of(self, kind: Literal["repository", "remote"], uuid: str) -> str:
        """The name of the repository or remote (``kind``) with this uuid; raise ``NotFound``."""
        model: type[Repository] | type[Remote] = Repository if kind == "repository" else Remote
        with self.session() as session:
            name: str | None = session.scalar(select(model.name).where(model.uuid == uuid))
        if name is None:
            raise NotFound(kind, uuid)
        return name

    def remote_name_of(self, repository: Repository) -> str | None:
        if repository.remote_id is None:
            return None
        with self.session() as session:
            remote = session.get(Remote, repository.remote_id)
            return remote.name if remote else None

    # -- versions ----------------------------------------------------------------------------

    def get_version(self, repository: str, number: int | None = None) -> VersionView:
        """Return version ``number`` of ``repository`` (the latest when None)."""
        with self.session() as session:
            repo = self._get(session, Repository, repository)
            wanted = repo.latest_version if number is None else number
            row = session.scalar(
                select(RepositoryVersion).where(
                    RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == wanted
                )
            )
            if row is None:
                raise NotFound("version", f"{repository}/{wanted}")
            return _view(repo, row)

    def list_versions(self, repository: str) -> list[VersionView]:
        with self.session() as session:
            repo = self._get(session, Repository, repository)
            rows = session.scalars(
                select(RepositoryVersion)
                .where(RepositoryVersion.repository_id == repo.id)
                .order_by(RepositoryVersion.number.desc())
            )
            return [_view(repo, row) for row in rows]

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _get(session: Session, model: type[_Named], name: str) -> _Named:
        row = session.scalar(select(model).where(model.name == name))
        if row is None:
            raise NotFound(_KIND[model], name)
        return row

    def _exists(self, model: type[Any], name: str) -> bool:
        with self.session() as session:
            return bool(session.scalar(select(func.count()).where(model.name == name)))


def _forget_closure_pages(session: Session, remote: str) -> None:
    # Imported here: mirrorflow.storage.closure_pages builds on this module.
    from mirrorflow.storage.closure_pages import forget_remote

    forget_remote(session, remote)


def _view(repo: Repository, row: RepositoryVersion) -> VersionView:
    return VersionView(
        repository=repo.name,
        repository_uuid=repo.uuid,
        uuid=row.uuid,
        number=row.number,
        base_version=row.base_version,
        created=row.created,
        added=row.added_count,
        removed=row.removed_count,
        present=row.present_count,
        report=row.report or {},
    )
