"""PEP 740 provenance objects, kept in the catalog beside (not inside) the repository versions.

Two tables. ``provenances`` holds one row per (distribution digest, upstream provenance URL): the
object's bytes, once fetched, exactly as that upstream sent them with their own sha256.
``repository_provenances`` says, per repository and distribution digest, which upstream URL the
repository's own remote(s) named for the file when its sync (or pull-through) last read the page.
A repository serves and advertises only the provenance its own remotes named: two repositories
holding the same file from two upstreams never see each other's provenance, and a repository whose
upstream names none serves none (404), even when another upstream offers one for the same digest.

A version is immutable; an upstream's provenance is not (attestations can be added to a file
already uploaded), so the rows live outside the versions: every version of a repository that holds
the file serves the provenance its remote names now.

- ``record_urls`` (a sync's fetch stage, pull-through): the URL the repository's upstream names now;
- ``store_body`` (the sync, ``immediate``; the server on first request, ``on_demand``);
- ``with_provenance`` (the page renderer: which files of a repository to give a ``provenance`` URL);
- ``provenance_of`` (the server, ``repository verify --provenance``);
- ``provenances_of`` (``repository publish`` and ``export``: many files at once).

A URL with no body is a provenance still to fetch: the next sync, or the first request, fetches it.
The upstream's URL is only ever used to fetch; it never appears in a served page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, Text, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = [
    "ProvenanceRow",
    "RepositoryProvenance",
    "StoredProvenance",
    "provenance_of",
    "provenances_of",
    "record_urls",
    "store_body",
    "with_provenance",
]

_CHUNK = 5000  # digests per IN (...) list: far below both backends' parameter limits


class ProvenanceRow(Base):
    __tablename__ = "provenances"

    #: The distribution's sha256 (the file the provenance attests).
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Where the upstream serves it (PEP 740 ``provenance`` / ``data-provenance``); never served.
    url: Mapped[str] = mapped_column(Text, primary_key=True)
    #: The provenance object's bytes as the upstream sent them; None until fetched.
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    body_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fetched: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256"),
        CheckConstraint("(body IS NULL) = (body_sha256 IS NULL)", name="body_digest"),
    )


class RepositoryProvenance(Base):
    """The provenance URL a repository's own remote named for one of its files (migration 0016)."""

    __tablename__ = "repository_provenances"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)

    __table_args__ = (CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256"),)


@dataclass(frozen=True, slots=True)
class StoredProvenance:
    """A distribution's provenance as a repository serves it: the upstream URL its remote named and,
    when fetched, the bytes and their sha256."""

    sha256: str
    url: str
    body: bytes | None
    body_sha256: str | None


def _insert(catalog: Catalog) -> Any:
    return postgresql.insert if catalog.engine.dialect.name == "postgresql" else sqlite.insert


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def record_urls(catalog: Catalog, repository_id: int, urls: Mapping[str, str]) -> int:
    """Record the provenance URL repository ``repository_id``'s upstream names for each distribution
    digest; return how many of the repository's digests are new or changed their URL.

    A new (digest, URL) gets a row without a body (to fetch); a URL another upstream also names
    shares its row. The repository then serves the object of the URL its own remote named, never
    another remote's. Idempotent: the same URLs twice change nothing.
    """
    if not urls:
        return 0
    digests = sorted(urls)
    changed = 0
    with catalog.session() as session:
        known: dict[str, str] = {}
        for chunk in _chunks(digests):
            rows = session.execute(
                select(RepositoryProvenance.sha256, RepositoryProvenance.url).where(
                    RepositoryProvenance.repository_id == repository_id,
                    RepositoryProvenance.sha256.in_(chunk),
                )
            )
            known.update((digest, url) for digest, url in rows)
        objects = [{"sha256": digest, "url": urls[digest]} for digest in digests]
        for start in range(0, len(objects), _CHUNK // 2):
            session.execute(
                _insert(catalog)(ProvenanceRow)
                .values(objects[start : start + _CHUNK // 2])
                .on_conflict_do_nothing()
            )
        new = [
            {"repository_id": repository_id, "sha256": digest, "url": urls[digest]}
            for digest in digests
            if digest not in known
        ]
        for start in range(0, len(new), _CHUNK // 3):
            session.execute(
                _insert(catalog)(RepositoryProvenance)
                .values(new[start : start + _CHUNK // 3])
                .on_conflict_do_nothing()
            )
        changed += len(new)
        for digest in digests:
            if digest in known and known[digest] != urls[digest]:
                session.execute(
                    update(RepositoryProvenance)
                    .where(
                        RepositoryProvenance.repository_id == repository_id,
                        RepositoryProvenance.sha256 == digest,
                    )
                    .values(url=urls[digest])
                )
                changed += 1
    return changed


def store_body(catalog: Catalog, sha256: str, url: str, body: bytes) -> bool:
    """Store the provenance object fetched from ``url`` for distribution ``sha256``, byte for byte.

    Returns True when the stored bytes changed (new, or the upstream's object changed), False when
    they were already the same.
    """
    digest = hashlib.sha256(body).hexdigest()
    now = datetime.now(UTC)
    with catalog.session() as session:
        row = session.get(ProvenanceRow, (sha256, url))
        if row is None:
            session.add(ProvenanceRow(sha256=sha256, url=url, body=body, body_sha256=digest, fetched=now))
            return True
        if row.body_sha256 == digest:
            return False
        row.body, row.body_sha256, row.fetched = body, digest, now
        return True


def with_provenance(catalog: Catalog, repository_id: int, sha256s: Iterable[str]) -> frozenset[str]:
    """The digests among ``sha256s`` whose provenance repository ``repository_id``'s own remote named
    (fetched, or still to fetch)."""
    wanted = sorted(set(sha256s))
    found: set[str] = set()
    with catalog.reading() as session:
        for chunk in _chunks(wanted):
            found.update(
                session.scalars(
                    select(RepositoryProvenance.sha256).where(
                        RepositoryProvenance.repository_id == repository_id,
                        RepositoryProvenance.sha256.in_(chunk),
                    )
                )
            )
    return frozenset(found)


def provenance_of(catalog: Catalog, repository_id: int, sha256: str) -> StoredProvenance | None:
    """The provenance of distribution ``sha256`` as repository ``repository_id`` serves it, or None
    when its own remote named none."""
    with catalog.reading() as session:
        url = session.scalar(
            select(RepositoryProvenance.url).where(
                RepositoryProvenance.repository_id == repository_id, RepositoryProvenance.sha256 == sha256
            )
        )
        if url is None:
            return None
        row = session.get(ProvenanceRow, (sha256, url))
        if row is None:  # recorded by a catalog before 0016's rows: still to fetch
            return StoredProvenance(sha256, url, None, None)
        return StoredProvenance(row.sha256, row.url, row.body, row.body_sha256)


def provenances_of(
    catalog: Catalog, repository_id: int, sha256s: Iterable[str]
) -> dict[str, StoredProvenance]:
    """``provenance_of`` for many distributions: by digest, those among ``sha256s`` whose provenance
    repository ``repository_id``'s own remote named (``body`` None: not fetched yet)."""
    wanted = sorted(set(sha256s))
    found: dict[str, StoredProvenance] = {}
    with catalog.reading() as session:
        for chunk in _chunks(wanted):
            rows = session.execute(
                select(
                    RepositoryProvenance.sha256,
                    RepositoryProvenance.url,
                    ProvenanceRow.body,
                    ProvenanceRow.body_sha256,
                )
                .outerjoin(
                    ProvenanceRow,
                    (ProvenanceRow.sha256 == RepositoryProvenance.sha256)
                    & (ProvenanceRow.url == RepositoryProvenance.url),
                )
                .where(
                    RepositoryProvenance.repository_id == repository_id,
                    RepositoryProvenance.sha256.in_(chunk),
                )
            )
            found.update(
                (digest, StoredProvenance(digest, url, body, body_sha))
                for digest, url, body, body_sha in rows
            )
    return found
