"""The dependency cache: what a distribution file's metadata said about its dependencies, kept by the
file's sha256 so that a resync reads no file's metadata twice (issue 19).

One row per file digest (``dependency_cache``, migration 0014): ``requires_dist`` a JSON list of
requirement strings, or NULL when the dependencies are unknown; ``source`` where they were read
(``mirrorflow.tasks.requires_dist.DependencySource``); ``reason`` why unknown, or which entries were
left out. A digest names the file's bytes, so a row never goes stale: writes keep the row already
there (``ON CONFLICT DO NOTHING``), and writing the same answers twice changes nothing.

Bulk by design: the closure asks for thousands of digests at once; both calls work in chunks of
``CHUNK`` digests (SQLite's bound on query parameters) and one short transaction each.
Works on SQLite and PostgreSQL (the dialect's own ``INSERT ... ON CONFLICT``).

Errors: none of its own; ``InvalidDigest`` (a ``CatalogError`` and ``ValueError``) for a key that is
not a lowercase hex sha256, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, String, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.catalog import Catalog, CatalogError
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = ["CHUNK", "SOURCES", "CachedDependencies", "DependencyCacheRow", "DependencyStore", "InvalidDigest"]

#: Digests per query: under SQLite's parameter bound (32766, 999 before 3.32) with room to spare.
CHUNK = 500
#: The values ``source`` may hold (``mirrorflow.tasks.requires_dist.DependencySource`` less "cache").
SOURCES = ("metadata-file", "wheel-range", "wheel-download", "sdist-pkg-info", "unknown")

_HEX = "0123456789abcdef"


def _now() -> datetime:
    return datetime.now(UTC)


class DependencyCacheRow(Base):
    __tablename__ = "dependency_cache"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The Requires-Dist entries, a JSON list; NULL: unknown (JSON null is stored as SQL NULL).
    requires_dist: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    read_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    __table_args__ = (
        CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256"),
        CheckConstraint(f"source IN {SOURCES!r}", name="source"),
        CheckConstraint("(requires_dist IS NULL) = (source = 'unknown')", name="unknown_has_no_list"),
    )


@dataclass(frozen=True, slots=True)
class CachedDependencies:
    """One cached answer: the entries (None: unknown), where they were read, and the reason."""

    requires_dist: tuple[str, ...] | None
    source: str
    reason: str = ""


class InvalidDigest(CatalogError, ValueError):
    """A cache key that is not a lowercase hex sha256."""

    def __init__(self, value: str) -> None:
        super().__init__(f"sha256: {value!r} is not a lowercase hex sha256 digest")
        self.value = value


def _check(digest: str) -> str:
    if len(digest) != 64 or any(c not in _HEX for c in digest):
        raise InvalidDigest(digest)
    return digest


class DependencyStore:
    """The catalog's dependency cache (``mirrorflow.tasks.dist_metadata.DependencyCache`` is its port)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        dialect = catalog.engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def get_many(self, digests: Iterable[str]) -> dict[str, CachedDependencies]:
        """Return the cached answers for those of ``digests`` that have one, by digest."""
        wanted = sorted({_check(d) for d in digests})
        found: dict[str, CachedDependencies] = {}
        with self._catalog.reading() as session:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                rows = session.execute(
                    select(
                        DependencyCacheRow.sha256,
                        DependencyCacheRow.requires_dist,
                        DependencyCacheRow.source,
                        DependencyCacheRow.reason,
                    ).where(DependencyCacheRow.sha256.in_(chunk))
                )
                for digest, requires, source, reason in rows:
                    entries = None if requires is None else tuple(str(e) for e in requires)
                    found[digest] = CachedDependencies(entries, source, reason)
        return found

    def put_many(self, answers: Mapping[str, CachedDependencies]) -> None:
        """Store ``answers`` by digest; a digest already cached keeps its row. One transaction."""
        now = _now()
        rows = [
            {
                "sha256": _check(digest),
                "requires_dist": None if answer.requires_dist is None else list(answer.requires_dist),
                "source": answer.source,
                "reason": answer.reason,
                "read_at": now,
            }
            for digest, answer in sorted(answers.items())
        ]
        if not rows:
            return
        table = DependencyCacheRow.__table__
        with self._catalog.session() as session:
            for start in range(0, len(rows), CHUNK):
                stmt = self._insert(table).values(rows[start : start + CHUNK]).on_conflict_do_nothing()
                session.execute(stmt)
