"""Import an export (``mirrorflow.storage.export_format``) as the next version of a repository.

In order, so that nothing becomes visible before everything is checked:

1. read the TOC; refuse another format version, and an incremental export whose base version
   the target does not hold (``ExportGap``), before reading a chunk;
2. check that every chunk is there with its size, then hash the records chunk against the TOC
   and parse its records;
3. read each artifact chunk ONCE: its sha256 is computed as its members stream into the store's
   verifying ``put_chunks`` (a member's sha256 is its name), and compared with the TOC at its end
   (``CorruptChunk`` names the first bad chunk). What is stored then is content-addressed objects
   and artifact rows, each verified, which no version references yet: nothing is visible;
4. record the packages and stage the version's exact membership (staging rows are private), then
   commit it in ONE transaction (``ContentWriter.commit_version``, mirror semantics), with the
   export's PEP 792 project statuses (format 2): the new version holds exactly those (a version 1
   export changes none). The PEP 740 provenance objects it carries are stored for the target
   repository (``mirrorflow.storage.provenance``, outside the versions) just before the commit, so
   serve shows them with the files.

Idempotent and resumable: the staging id is derived from the target and the TOC's digest, so a
rerun after a crash restages the same rows; artifacts already stored are not written again; and
the committed version carries an ``import`` marker in its report (source repository uuid and
version), so importing the same export twice makes no second version. An incremental export
applies only on top of a version whose marker names its base version.
"""

from __future__ import annotations

import hashlib
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite

from mirrorflow.storage.artifacts import ArtifactStore, DigestMismatch, artifact_key
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.export_format import (
    PACKAGES_MEMBER,
    PROVENANCE_MEMBER,
    RECORDS_CHUNK,
    REMOVED_MEMBER,
    STATUSES_MEMBER,
    TOC_NAME,
    ChunkEntry,
    CorruptChunk,
    ExportGap,
    InvalidExport,
    InvalidOption,
    PackageRecord,
    ProvenanceRecord,
    StatusRecord,
    Toc,
    TransferProgress,
    read_lines,
    removed_from_json,
    sha256_of_member,
)
from mirrorflow.storage.export_tar import BLOCK, read_members
from mirrorflow.storage.locks import holding
from mirrorflow.storage.models import CoreMetadata, Package, Repository, RepositoryContent, RepositoryVersion
from mirrorflow.storage.project_statuses import Status, statuses_at
from mirrorflow.storage.provenance import record_urls, store_body

__all__ = ["ImportResult", "import_export", "read_toc"]

_BATCH = 1000
_NAMESPACE = uuid.UUID("3f1c7e52-8d0b-4b8e-9a51-6c2d4e7f9a10")
#: How long a rerun waits for a sync (or another import) of the target to finish.
LOCK_WAIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ImportResult:
    repository: str
    # The repository's latest version: the one made, or (``changed`` false) the one that already
    # held the export, as a sync without changes names the current version.
    version: int
    changed: bool
    added: int
    removed: int
    present: int
    chunks: int
    artifacts_stored: int
    artifacts_present: int
    provenance: int = 0  # provenance objects stored new or changed


def read_toc(directory: Path) -> Toc:
    """The export's TOC; ``InvalidExport`` when ``directory`` holds no finished export."""
    path = directory / TOC_NAME
    if not path.is_file():
        raise InvalidOption("from", str(directory), "holds no toc.json: not an export, or one not finished")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOption("from", str(directory), f"has an unreadable toc.json ({exc})") from None
    return Toc.from_json(text)


def _marker(toc: Toc) -> dict[str, Any]:
    return {
        "repository": toc.repository,
        "repository_uuid": toc.repository_uuid,
        "version": toc.version,
        "since_version": toc.since_version,
        "toc_sha256": toc.digest,
    }


def _held(catalog: Catalog, repository: str, toc: Toc) -> int | None | bool:
    """Which version of the export's source the target's latest version is (its import marker).

    Returns None when it holds none, and False when the target does not exist.
    """
    with catalog.reading() as session:
        repo = session.scalar(select(Repository).where(Repository.name == repository))
        if repo is None:
            return False
        report = session.scalar(
            select(RepositoryVersion.report).where(
                RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == repo.latest_version
            )
        )
    marker = (report or {}).get("import")
    if isinstance(marker, dict) and marker.get("repository_uuid") == toc.repository_uuid:
        version = marker.get("version")
        return version if isinstance(version, int) else None
    return None


def _check_chunks(directory: Path, toc: Toc) -> None:
    """Every chunk is there with the TOC's size: a missing or truncated copy fails before any work."""
    for entry in toc.chunks:
        path = directory / entry.name
        if not path.is_file():
            raise CorruptChunk(entry.name, f"is missing from {str(directory)!r}")
        size = path.stat().st_size
        if size != entry.size:
            raise CorruptChunk(entry.name, f"has {size} bytes, the table of contents says {entry.size}")


def _check_digest(entry: ChunkEntry, digest: Any) -> None:
    if digest.hexdigest() != entry.sha256:
        raise CorruptChunk(
            entry.name, f"has sha256 {digest.hexdigest()!r}, the table of contents says {entry.sha256!r}"
        )


def _verify_chunk(directory: Path, entry: ChunkEntry, progress: TransferProgress | None) -> None:
    digest = hashlib.sha256()
    with open(directory / entry.name, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            if progress is not None:
                progress.advance(len(block))
    _check_digest(entry, digest)


def _members(path: Path) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """The regular-file members of a chunk, streamed in order (``InvalidExport`` for anything else)."""
    try:
        with tarfile.open(path, mode="r|") as tar:
            for info in tar:
                handle = tar.extractfile(info) if info.isfile() else None
                if handle is None:
                    raise InvalidExport(path.name, "member", info.name, "is not a regular file")
                yield info, handle
    except tarfile.TarError as exc:
        raise CorruptChunk(path.name, f"is not a tar file ({exc})") from None


@dataclass(frozen=True, slots=True)
class _Records:
    """The records chunk: packages and provenance (streamed: each reads the chunk again), removals,
    and statuses (None: a format 1 export, which carries none)."""

    packages: Iterator[PackageRecord]
    removed: list[tuple[str, str]]
    statuses: list[StatusRecord] | None
    provenance: Iterator[ProvenanceRecord]


def _records(directory: Path, toc: Toc) -> _Records:
    """The records chunk's contents, its members checked against the TOC's format version."""
    path = directory / RECORDS_CHUNK
    removed: list[tuple[str, str]] = []
    statuses: list[StatusRecord] = []
    found = set()
    for info, handle in _members(path):
        found.add(info.name)
        where = f"{RECORDS_CHUNK}:{info.name}"
        if info.name == REMOVED_MEMBER:
            removed = [removed_from_json(where, line) for line in read_lines(where, handle)]
        elif info.name == STATUSES_MEMBER:
            statuses = [StatusRecord.from_json(where, line) for line in read_lines(where, handle)]
        elif info.name == PROVENANCE_MEMBER:  # checked now (read again to store): none stored if one is bad
            for line in read_lines(where, handle):
                ProvenanceRecord.from_json(where, line)
    expected = {PACKAGES_MEMBER, REMOVED_MEMBER}
    if toc.format_version >= 2:
        expected |= {STATUSES_MEMBER, PROVENANCE_MEMBER}
    if found != expected:
        raise InvalidExport(RECORDS_CHUNK, "members", sorted(found), f"are not {', '.join(sorted(expected))}")

    def lines(member: str) -> Iterator[tuple[str, str]]:
        where = f"{RECORDS_CHUNK}:{member}"
        for info, handle in _members(path):
            if info.name == member:
                for line in read_lines(where, handle):
                    yield where, line

    return _Records(
        (PackageRecord.from_json(where, line) for where, line in lines(PACKAGES_MEMBER)),
        removed,
        statuses if toc.format_version >= 2 else None,
        (ProvenanceRecord.from_json(where, line) for where, line in lines(PROVENANCE_MEMBER)),
    )


def _status_changes(
    catalog: Catalog, repo: Repository, statuses: list[StatusRecord] | None
) -> dict[str, Status]:
    """What makes the target's latest statuses the export's: each project whose status differs."""
    if statuses is None:  # a format 1 export says nothing about statuses
        return {}
    with catalog.reading() as session:
        held: dict[str, Status] = dict(statuses_at(session, repo.id, repo.latest_version))
    wanted: dict[str, Status] = {r.project: (r.status, r.reason) for r in statuses}
    return {
        name: wanted.get(name)
        for name in sorted(held.keys() | wanted.keys())
        if held.get(name) != wanted.get(name)
    }


def _store_provenance(catalog: Catalog, repository_id: int, records: Iterator[ProvenanceRecord]) -> int:
    """Store the export's provenance objects for the target repository; how many changed."""
    changed = 0
    batch: list[ProvenanceRecord] = []

    def flush() -> int:
        record_urls(catalog, repository_id, {r.sha256: r.url for r in batch})
        return sum(store_body(catalog, r.sha256, r.url, r.body) for r in batch)

    for record in records:
        batch.append(record)
        if len(batch) >= _BATCH:
            changed += flush()
            batch = []
    if batch:
        changed += flush()
    return changed


def _store_artifacts(
    directory: Path, toc: Toc, store: ArtifactStore, writer: ContentWriter, progress: TransferProgress | None
) -> tuple[int, int]:
    """Store the artifacts of every chunk, reading each chunk once: its sha256 is computed as its
    members stream into the store, which verifies each against its name (``put_chunks``).

    A chunk whose digest differs from the TOC's raises ``CorruptChunk`` at its end, inside its
    ``deferred`` scope, so what it spooled is dropped. Artifacts of earlier chunks stay stored:
    each was verified on its own, is content-addressed, and no version references it (a rerun
    after the chunk is copied again reuses them).
    """
    stored = present = 0
    for entry in toc.chunks[1:]:
        rows: list[tuple[str, int, str]] = []
        digest = hashlib.sha256()
        advance = progress.advance if progress is not None else None
        with store.deferred() as putter, open(directory / entry.name, "rb") as handle:
            for name, size, blocks in read_members(handle, entry.name, digest, advance):
                sha256 = sha256_of_member(entry.name, name)
                if store.exists(sha256):
                    present += 1
                    rows.append((sha256, size, _key(sha256)))
                    continue  # read_members reads (and hashes) the bytes left
                try:
                    done = putter.put_chunks(blocks, sha256=sha256, size=size)
                except DigestMismatch as exc:
                    raise CorruptChunk(
                        entry.name, f"holds {name!r}, whose bytes hash to {exc.actual_sha256!r}"
                    ) from exc
                rows.append((done.sha256, done.size, done.key))
                stored += 1
            _check_digest(entry, digest)
        writer.record_artifacts(rows)  # after the deferred block: the objects are durable now
    return stored, present


def _key(sha256: str) -> str:
    return artifact_key(sha256)


def _stage_batch(
    catalog: Catalog, writer: ContentWriter, sync_id: str, repository_id: int, batch: Sequence[PackageRecord]
) -> int:
    digests = {r.package.sha256 for r in batch} | {r.core_metadata for r in batch if r.core_metadata}
    known = writer.known_artifacts(digests)
    for record in batch:
        for digest in (record.package.sha256, record.core_metadata):
            if digest is not None and digest not in known:
                raise InvalidExport(
                    RECORDS_CHUNK,
                    "sha256",
                    digest,
                    f"of {record.package.filename!r} is in no chunk and not stored here",
                )
    ids = writer.upsert_packages([record.package for record in batch])
    writer.link_artifacts(record.package.sha256 for record in batch)
    metadata = [
        {
            "package_id": ids[(r.package.filename, r.package.sha256)],
            "sha256": r.core_metadata,
            "source": r.metadata_source or "wheel",
        }
        for r in batch
        if r.core_metadata
    ]
    if metadata:
        dialect = catalog.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        with catalog.session() as session:
            session.execute(insert(cast(Table, CoreMetadata.__table__)).on_conflict_do_nothing(), metadata)
    writer.stage(sync_id, repository_id, ids.values())
    return len(ids)


def _stage_kept(
    catalog: Catalog, writer: ContentWriter, sync_id: str, repo: Repository, removed: set[tuple[str, str]]
) -> None:
    """Stage what the target holds now, minus the removals (an incremental export's base)."""
    with catalog.reading() as session:
        rows = session.execute(
            select(Package.id, Package.filename, Package.sha256)
            .join(RepositoryContent, RepositoryContent.package_id == Package.id)
            .where(RepositoryContent.repository_id == repo.id, RepositoryContent.version_removed.is_(None))
        )
        kept = [id_ for id_, filename, sha256 in rows if (filename, sha256) not in removed]
    for start in range(0, len(kept), _BATCH):
        writer.stage(sync_id, repo.id, kept[start : start + _BATCH])


def import_export(
    catalog: Catalog,
    store: ArtifactStore,
    *,
    directory: Path,
    repository: str,
    progress: TransferProgress | None = None,
) -> ImportResult:
    """Import the export in ``directory`` as the next version of ``repository`` (created if need be).

    Raises ``InvalidExport``, ``CorruptChunk`` or ``ExportGap`` before any version (or the
    repository) is made, and ``RepositoryBusy`` when a sync of the target holds it; on any error
    no version is made. ``progress`` is told the chunks' total bytes, then the bytes read.
    """
    toc = read_toc(directory)
    held = _held(catalog, repository, toc)
    if held is not False and held == toc.version:
        version = catalog.get_version(repository)
        return ImportResult(repository, version.number, False, 0, 0, version.present, len(toc.chunks), 0, 0)
    if toc.since_version is not None and held != toc.since_version:
        raise ExportGap(
            source=toc.repository,
            needs=toc.since_version,
            target=repository,
            holds=held if type(held) is int else None,
        )
    _check_chunks(directory, toc)
    if progress is not None:
        progress.start(sum(entry.size for entry in toc.chunks))
    _verify_chunk(directory, toc.chunks[0], progress)
    records = _records(directory, toc)  # the records chunk's members are checked before anything is written
    writer = ContentWriter(catalog)
    stored, present = _store_artifacts(directory, toc, store, writer, progress)
    if held is False:
        catalog.create_repository(repository, description=f"imported from {toc.repository}")
    sync_id = str(uuid.uuid5(_NAMESPACE, f"{repository}\0{toc.digest}"))
    with holding(
        catalog, repository, holder=f"import {sync_id}", wait=LOCK_WAIT_SECONDS, lease=timedelta(minutes=5)
    ):
        repo = catalog.get_repository(repository)
        batch: list[PackageRecord] = []
        for record in records.packages:
            batch.append(record)
            if len(batch) >= _BATCH:
                _stage_batch(catalog, writer, sync_id, repo.id, batch)
                batch = []
        if batch:
            _stage_batch(catalog, writer, sync_id, repo.id, batch)
        if toc.since_version is not None:
            _stage_kept(catalog, writer, sync_id, repo, set(records.removed))
        provenance = _store_provenance(catalog, repo.id, records.provenance)
        view = writer.commit_version(
            repository=repository,
            sync_id=sync_id,
            mirror=True,
            report={"import": _marker(toc)},
            scope="all",
            status_changes=_status_changes(catalog, repo, records.statuses),
        )
    if view is None:
        latest = catalog.get_version(repository)
        return ImportResult(
            repository,
            latest.number,
            False,
            0,
            0,
            latest.present,
            len(toc.chunks),
            stored,
            present,
            provenance,
        )
    return ImportResult(
        repository,
        view.number,
        True,
        view.added,
        view.removed,
        view.present,
        len(toc.chunks),
        stored,
        present,
        provenance,
    )
