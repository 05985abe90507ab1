"""The catalog schema: SQLAlchemy 2 declarative models.

The schema holds the invariants, so that no code path can break them:

- a repository's version numbers are unique (``uq_version_number``);
- a package (one distribution file) is unique by ``(filename, sha256)`` and its digest is checked;
- a package is *present* in a repository at most once at a time (partial unique index on open intervals);
- membership is an interval ``[version_added, version_removed)``: a new version writes only what changed.

Migrations live in ``storage/migrations`` (Alembic); ``0001`` creates exactly these tables. Tables
defined beside their logic (``models_serials``, ``locks``, ``schedules``) import ``Base`` from here,
never the other way round; ``storage/migrations/env.py`` imports them all into ``Base.metadata``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mirrorflow.storage.schema import Policy

__all__ = [
    "Base",
    "Repository",
    "Remote",
    "Package",
    "Artifact",
    "RepositoryVersion",
    "RepositoryContent",
    "SyncStaging",
    "PullThroughPackage",
    "CoreMetadata",
    "POLICIES",
]

POLICIES = tuple(policy.value for policy in Policy)

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_SHA256_CHECK = "length({col}) = 64 AND lower({col}) = {col}"


def _now() -> datetime:
    return datetime.now(UTC)


def _uuid() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend (SQLite stores none: read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Remote(Base):
    """An upstream index and the filters and download settings for syncing from it."""

    __tablename__ = "remotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    url: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=_now)
    last_updated: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    # filters
    includes: Mapped[list[str]] = mapped_column(default=list)
    excludes: Mapped[list[str]] = mapped_column(default=list)
    prereleases: Mapped[bool] = mapped_column(Boolean, default=True)
    package_types: Mapped[list[str]] = mapped_column(default=list)
    exclude_platforms: Mapped[list[str]] = mapped_column(default=list)
    keep_latest_packages: Mapped[int] = mapped_column(Integer, default=0)
    # download settings
    policy: Mapped[str] = mapped_column(String(16), default="on_demand")
    download_concurrency: Mapped[int | None] = mapped_column(Integer)
    max_retries: Mapped[int | None] = mapped_column(Integer)
    total_timeout: Mapped[float | None] = mapped_column(Float)
    connect_timeout: Mapped[float | None] = mapped_column(Float)
    sock_connect_timeout: Mapped[float | None] = mapped_column(Float)
    sock_read_timeout: Mapped[float | None] = mapped_column(Float)
    headers: Mapped[list[Any] | None] = mapped_column(JSON)
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    tls_validation: Mapped[bool] = mapped_column(Boolean, default=True)
    proxy_url: Mapped[str | None] = mapped_column(Text)
    ca_cert: Mapped[str | None] = mapped_column(Text)
    client_cert: Mapped[str | None] = mapped_column(Text)
    # secrets: never printed, shown as ``hidden_fields``
    client_key: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)
    proxy_username: Mapped[str | None] = mapped_column(Text)
    proxy_password: Mapped[str | None] = mapped_column(Text)
    # filters beyond the Pulp set (see docs/filters.md)
    extra_filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Pulp's ``pulp_labels``: string keys and values the user attaches (0007_labels)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # 0013_advisories: advisory id prefixes whose advisories keep versions out (``docs/supply-chain.md``)
    block_advisories: Mapped[list[str]] = mapped_column(
        default=lambda: ["MAL"], server_default=text("'[\"MAL\"]'")
    )

    __table_args__ = (
        CheckConstraint(f"policy IN {POLICIES!r}", name="policy"),
        CheckConstraint("keep_latest_packages >= 0", name="keep_latest_packages"),
    )


class Repository(Base):
    """A named, versioned collection of packages."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    retain_repo_versions: Mapped[int | None] = mapped_column(Integer)
    remote_id: Mapped[int | None] = mapped_column(ForeignKey("remotes.id", ondelete="SET NULL"))
    # serving (migration 0002_serve): projects missing here are looked up on this remote
    pull_through_remote_id: Mapped[int | None] = mapped_column(ForeignKey("remotes.id", ondelete="SET NULL"))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(default=_now)
    last_updated: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    # Pulp's ``pulp_labels`` (0007_labels)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # 0009_autopublish: after each sync that commits a version, publish it as static files under
    # ``publish_to`` (``mirrorflow.server.publish``)
    autopublish: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    publish_to: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("retain_repo_versions IS NULL OR retain_repo_versions > 0", name="retain"),
    )


class Artifact(Base):
    """A stored file, content-addressed: one row and one object per distinct sha256."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=_now)
    # when ``repository verify`` last re-hashed the stored object and found it intact (0004_verify)
    verified_at: Mapped[datetime | None] = mapped_column()
    # when a sync last reused this row: orphan cleanup's protection time counts from it (0006_touch)
    touched_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (CheckConstraint(_SHA256_CHECK.format(col="sha256"), name="sha256"),)


class Package(Base):
    """One distribution file (wheel, sdist, legacy binary) as the upstream listed it."""

    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # the identity its href shows: derived from (filename, sha256), see storage.content.package_uuid (0007_labels)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(Text)
    normalized_name: Mapped[str] = mapped_column(Text, index=True)
    version: Mapped[str] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(Text)
    packagetype: Mapped[str] = mapped_column(String(32))
    python_version: Mapped[str] = mapped_column(Text)
    requires_python: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    upload_time: Mapped[datetime | None] = mapped_column()
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    has_metadata: Mapped[bool] = mapped_column(Boolean, default=False)
    url: Mapped[str] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    created: Mapped[datetime] = mapped_column(default=_now)
    # when a sync last selected this file: orphan cleanup's protection time counts from it (0006_touch)
    touched_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("filename", "sha256", name="uq_packages_filename_sha256"),
        CheckConstraint(_SHA256_CHECK.format(col="sha256"), name="sha256"),
        CheckConstraint("artifact_sha256 IS NULL OR artifact_sha256 = sha256", name="artifact_matches"),
    )


class RepositoryVersion(Base):
    """An immutable, numbered state of a repository, with its content summary."""

    __tablename__ = "repository_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=_uuid)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    base_version: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(default=_now)
    added_count: Mapped[int] = mapped_column(Integer, default=0)
    removed_count: Mapped[int] = mapped_column(Integer, default=0)
    present_count: Mapped[int] = mapped_column(Integer, default=0)
    remote_name: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        UniqueConstraint("repository_id", "number", name="uq_version_number"),
        CheckConstraint("number >= 0", name="number"),
    )


class RepositoryContent(Base):
    """Membership of a package in a repository, as the interval ``[version_added, version_removed)``."""

    __tablename__ = "repository_content"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"))
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("version_removed IS NULL OR version_removed > version_added", name="interval"),
        Index("ix_content_repo_added", "repository_id", "version_added"),
        Index("ix_content_repo_removed", "repository_id", "version_removed"),
        Index(
            "uq_content_open",
            "repository_id",
            "package_id",
            unique=True,
            sqlite_where=text("version_removed IS NULL"),
            postgresql_where=text("version_removed IS NULL"),
        ),
    )


class SyncStaging(Base):
    """Packages a running sync has selected, kept until the sync commits its version.

    Rows are written batch by batch as the sync goes; the commit turns them into a version in
    one transaction and deletes them. A crashed sync leaves rows behind that the next sync of
    the same repository clears: they are never visible as content.
    """

    __tablename__ = "sync_staging"

    sync_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    staged_at: Mapped[datetime] = mapped_column(default=_now)


class PullThroughPackage(Base):
    """A package the server fetched on request for a repository with a pull-through remote (0002_serve).

    Not repository content: no version is created per request. ``fetched_at`` is when the project
    page was last read from ``remote_id``; the server refreshes a project after its cache time.
    """

    __tablename__ = "pull_through_packages"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    normalized_name: Mapped[str] = mapped_column(Text)
    remote_id: Mapped[int | None] = mapped_column(ForeignKey("remotes.id", ondelete="SET NULL"))
    fetched_at: Mapped[datetime] = mapped_column(default=_now)

    __table_args__ = (Index("ix_pull_through_repo_name", "repository_id", "normalized_name"),)


class CoreMetadata(Base):
    """Where a package's PEP 658 core metadata is stored: an artifact, by digest (0002_serve).

    ``source`` is ``upstream`` (the index's ``.metadata`` file) or ``wheel`` (read from the wheel).
    """

    __tablename__ = "core_metadata"

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    source: Mapped[str] = mapped_column(String(16))

    __table_args__ = (CheckConstraint("source IN ('upstream', 'wheel')", name="source"),)
