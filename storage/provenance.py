"""PEP 740 provenance objects, kept in the catalog beside (not inside) the repository versions.

One row per distribution digest: the upstream's URL for the file's provenance object, and, once
fetched, the object's bytes exactly as the upstream sent them with their own sha256. A version is
immutable; an upstream's provenance is not (attestations can be added to a file already uploaded),
so the rows live outside the versions, keyed by the distribution's sha256: every repository and
every version that holds the file serves the same, latest provenance. The object attests that
digest, whichever index listed it, so sharing the row across remotes is sound.

- ``record_urls`` (a sync's fetch stage, pull-through): the URL the upstream names now, body kept;
- ``store_body`` (the sync, ``immediate``; the server on first request, ``on_demand``);
- ``with_provenance`` (the page renderer: which files to give a ``provenance`` URL);
- ``provenance_of`` (the server, ``repository verify --provenance``).

A row with a URL and no body is a provenance still to fetch: the next sync, or the first request,
fetches it. The upstream's URL is only ever used to fetch; it never appears in a served page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, LargeBinary, String, Text, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.models import Base, UTCDateTime

__all__ = [
    "ProvenanceRow",
    "StoredProvenance",
    "provenance_of",
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
    url: Mapped[str] = mapped_column(Text)
    #: The provenance object's bytes as the upstream sent them; None until fetched.
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    body_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fetched: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256"),
        CheckConstraint("(body IS NULL) = (body_sha256 IS NULL)", name="body_digest"),
    )


@dataclass(frozen=True, slots=True)
class StoredProvenance:
    """A distribution's provenance row: the upstream URL and, when fetched, the bytes and their sha256."""

    sha256: str
    url: str
    body: bytes | None
    body_sha256: str | None


def _insert(catalog: Catalog) -> Any:
    return postgresql.insert if catalog.engine.dialect.name == "postgresql" else sqlite.insert


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def record_urls(catalog: Catalog, urls: Mapping[str, str]) -> int:
    """Record the upstream's provenance URL of each distribution digest; return how many rows changed.

    A new digest gets a row without a body (to fetch). A digest whose URL changed gets the new URL
    and keeps its body until a fetch replaces it. Idempotent: the same URLs twice change nothing.
    """
    if not urls:
        return 0
    digests = sorted(urls)
    changed = 0
    with catalog.session() as session:
        known: dict[str, str] = {}
        for chunk in _chunks(digests):
            rows = session.execute(
                select(ProvenanceRow.sha256, ProvenanceRow.url).where(ProvenanceRow.sha256.in_(chunk))
            )
            known.update((digest, url) for digest, url in rows)
        new = [{"sha256": digest, "url": urls[digest]} for digest in digests if digest not in known]
        if new:
            session.execute(_insert(catalog)(ProvenanceRow).values(new).on_conflict_do_nothing())
            changed += len(new)
        for digest in digests:
            if digest in known and known[digest] != urls[digest]:
                session.execute(
                    update(ProvenanceRow).where(ProvenanceRow.sha256 == digest).values(url=urls[digest])
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
        row = session.get(ProvenanceRow, sha256)
        if row is None:
            session.add(ProvenanceRow(sha256=sha256, url=url, body=body, body_sha256=digest, fetched=now))
            return True
        if row.body_sha256 == digest and row.url == url:
            return False
        row.url, row.body, row.body_sha256, row.fetched = url, body, digest, now
        return True


def with_provenance(catalog: Catalog, sha256s: Iterable[str]) -> frozenset[str]:
    """The digests among ``sha256s`` that have a provenance (fetched, or known and still to fetch)."""
    wanted = sorted(set(sha256s))
    found: set[str] = set()
    with catalog.reading() as session:
        for chunk in _chunks(wanted):
            found.update(session.scalars(select(ProvenanceRow.sha256).where(ProvenanceRow.sha256.in_(chunk))))
    return frozenset(found)


def provenance_of(catalog: Catalog, sha256: str) -> StoredProvenance | None:
    """The provenance row of distribution ``sha256``, or None when the upstream named none."""
    with catalog.reading() as session:
        row = session.get(ProvenanceRow, sha256)
        if row is None:
            return None
        return StoredProvenance(row.sha256, row.url, row.body, row.body_sha256)
