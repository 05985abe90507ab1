"""Export one repository version as self-describing tar chunks (``mirrorflow.storage.export_format``).

Streaming throughout: records are read from the catalog in pages and spooled to a temporary
file, artifacts are listed in digest order in pages and copied from the store into the chunk
being written, one at a time; memory does not grow with the repository.

Resumable: ``.export-state.json`` in the target directory remembers the chunks already written
with their sha256, under a *plan digest* (the records chunk's digest, the artifact list and the
chunk size). A rerun whose plan is the same re-hashes each finished chunk and skips it when it is
intact; everything else is written again (as ``<chunk>.part``, renamed when complete). The TOC
is written last, so a directory without ``toc.json`` is an unfinished export.

What the version shows besides its files crosses with it, in the records chunk: every PEP 792
project status the version holds (an incremental export too: the import sets exactly these), and
the PEP 740 provenance objects the repository serves for the exported files (those its own remote
named, ``mirrorflow.storage.provenance``; an incremental export carries those of the files it
adds). A provenance named but never fetched (``on_demand``) cannot cross (the other side has no
upstream to fetch it from): it is left out and counted (``ExportResult.provenance_missing``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, or_, select

from mirrorflow.storage.artifacts import ArtifactStore
from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.export_format import (
    PACKAGES_MEMBER,
    PROVENANCE_MEMBER,
    RECORDS_CHUNK,
    REMOVED_MEMBER,
    STATUSES_MEMBER,
    TOC_NAME,
    ChunkEntry,
    ExportError,
    InvalidOption,
    MissingContent,
    PackageRecord,
    ProvenanceRecord,
    StatusRecord,
    Toc,
    TransferProgress,
    artifact_member,
    chunk_name,
    plan_chunks,
    removed_to_json,
)
from mirrorflow.storage.export_tar import BLOCK, ChunkWriter
from mirrorflow.storage.models import (
    Artifact,
    CoreMetadata,
    Package,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)
from mirrorflow.storage.project_statuses import statuses_at
from mirrorflow.storage.provenance import provenances_of
from mirrorflow.storage.records import NewPackage

__all__ = [
    "ExportResult",
    "MissingFile",
    "export_version",
    "missing_files",
    "resolve_versions",
    "unstored_packages",
]

STATE_NAME = ".export-state.json"
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ExportResult:
    toc: Toc
    written: int  # chunks written by this run
    skipped: int  # chunks a previous run had finished, found intact
    bytes_written: int
    provenance_missing: int = 0  # provenance the repository names but never fetched: not carried


@dataclass(frozen=True, slots=True)
class MissingFile:
    """A file of the export that is not stored: where the upstream had it."""

    filename: str
    sha256: str
    size: int | None
    url: str


@dataclass(frozen=True, slots=True)
class _Selection:
    repository_id: int
    repository: str
    repository_uuid: str
    version: int
    since: int | None


def resolve_versions(catalog: Catalog, repository: str, version: int | None, since: int | None) -> _Selection:
    """Check the repository and the versions; raise ``NotFound`` or ``InvalidExport``."""
    with catalog.reading() as session:
        repo = session.scalar(select(Repository).where(Repository.name == repository))
        if repo is None:
            raise NotFound("repository", repository)
        number = repo.latest_version if version is None else version
        for wanted in (number, since):
            if wanted is None:
                continue
            found = session.scalar(
                select(RepositoryVersion.id).where(
                    RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == wanted
                )
            )
            if found is None:
                raise NotFound("version", f"{repository}/{wanted}")
        if since is not None and since >= number:
            raise InvalidOption("since_version", since, f"must be below the exported version {number}")
        return _Selection(repo.id, repo.name, repo.uuid, number, since)


def _present(repository_id: int, number: int) -> Any:
    return select(RepositoryContent.package_id).where(
        RepositoryContent.repository_id == repository_id,
        RepositoryContent.version_added <= number,
        or_(RepositoryContent.version_removed.is_(None), RepositoryContent.version_removed > number),
    )


def _exported(sel: _Selection) -> Any:
    """The package ids the export carries: present at the version (and not at ``since``)."""
    condition: Any = Package.id.in_(_present(sel.repository_id, sel.version))
    if sel.since is not None:
        condition = and_(condition, Package.id.not_in(_present(sel.repository_id, sel.since)))
    return condition


def missing_files(catalog: Catalog, sel: _Selection) -> list[MissingFile]:
    """The exported files that have no stored artifact (synced on_demand, or streamed)."""
    with catalog.reading() as session:
        rows = session.execute(
            select(Package.filename, Package.sha256, Package.size, Package.url)
            .where(_exported(sel), Package.artifact_sha256.is_(None))
            .order_by(Package.filename)
        )
        return [MissingFile(*row) for row in rows]


def unstored_packages(catalog: Catalog, package_ids: Iterable[int]) -> list[MissingFile]:
    """The packages of ``package_ids`` that have no stored artifact, by filename: where the
    upstream had them (``mirrorflow repository publish --fetch-missing`` fetches them)."""
    ids = sorted(set(package_ids))
    found: list[MissingFile] = []
    with catalog.reading() as session:
        for start in range(0, len(ids), _PAGE):  # under SQLite's limit on bound parameters
            rows = session.execute(
                select(Package.filename, Package.sha256, Package.size, Package.url).where(
                    Package.id.in_(ids[start : start + _PAGE]), Package.artifact_sha256.is_(None)
                )
            )
            found.extend(MissingFile(*row) for row in rows)
    return sorted(found, key=lambda file: file.filename)


def _records(catalog: Catalog, sel: _Selection) -> Iterator[PackageRecord]:
    last = 0
    while True:
        with catalog.reading() as session:
            rows = list(
                session.execute(
                    select(Package, CoreMetadata.sha256, CoreMetadata.source)
                    .outerjoin(CoreMetadata, CoreMetadata.package_id == Package.id)
                    .where(_exported(sel), Package.id > last)
                    .order_by(Package.id)
                    .limit(_PAGE)
                )
            )
            session.expunge_all()
        if not rows:
            return
        for package, core_sha, source in rows:
            row = NewPackage._make(getattr(package, field) for field in NewPackage._fields)
            yield PackageRecord(row, core_metadata=core_sha, metadata_source=source if core_sha else None)
        last = rows[-1][0].id


def _statuses(catalog: Catalog, sel: _Selection) -> Iterator[StatusRecord]:
    """Every project status of the version (not only the changes since ``since``), by project."""
    with catalog.reading() as session:
        statuses = statuses_at(session, sel.repository_id, sel.version)
    for project in sorted(statuses):
        yield StatusRecord(project, *statuses[project])


class _Provenance:
    """The provenance objects of the exported files that the repository serves, by file digest;
    ``missing`` counts, once iterated, those it names but never fetched."""

    def __init__(self, catalog: Catalog, sel: _Selection) -> None:
        self.catalog, self.sel, self.missing = catalog, sel, 0

    def __iter__(self) -> Iterator[ProvenanceRecord]:
        self.missing = 0
        last = ""
        while True:
            with self.catalog.reading() as session:
                digests = list(
                    session.scalars(
                        select(Package.sha256)
                        .where(_exported(self.sel), Package.sha256 > last)
                        .order_by(Package.sha256)
                        .distinct()
                        .limit(_PAGE)
                    )
                )
            if not digests:
                return
            named = provenances_of(self.catalog, self.sel.repository_id, digests)
            for digest in sorted(named):
                stored = named[digest]
                if stored.body is None:
                    self.missing += 1
                else:
                    yield ProvenanceRecord(digest, stored.url, stored.body)
            last = digests[-1]


def _removed(catalog: Catalog, sel: _Selection) -> Iterator[tuple[str, str]]:
    if sel.since is None:
        return
    last = 0
    gone = and_(
        Package.id.in_(_present(sel.repository_id, sel.since)),
        Package.id.not_in(_present(sel.repository_id, sel.version)),
    )
    while True:
        with catalog.reading() as session:
            rows = list(
                session.execute(
                    select(Package.id, Package.filename, Package.sha256)
                    .where(gone, Package.id > last)
                    .order_by(Package.id)
                    .limit(_PAGE)
                )
            )
        if not rows:
            return
        for _, filename, sha256 in rows:
            yield filename, sha256
        last = rows[-1][0]


def _artifacts(catalog: Catalog, sel: _Selection) -> Iterator[tuple[str, int]]:
    """The exported artifacts (files and their stored core metadata), ``(sha256, size)`` by digest."""
    files = select(Package.artifact_sha256).where(_exported(sel), Package.artifact_sha256.is_not(None))
    metadata = select(CoreMetadata.sha256).where(
        CoreMetadata.package_id.in_(select(Package.id).where(_exported(sel)))
    )
    last = ""
    while True:
        with catalog.reading() as session:
            rows = list(
                session.execute(
                    select(Artifact.sha256, Artifact.size)
                    .where(
                        or_(Artifact.sha256.in_(files), Artifact.sha256.in_(metadata)), Artifact.sha256 > last
                    )
                    .order_by(Artifact.sha256)
                    .limit(_PAGE)
                )
            )
        if not rows:
            return
        for sha256, size in rows:
            yield sha256, int(size)
        last = rows[-1][0]


# -- writing ----------------------------------------------------------------------------------


def _verified_blocks(store: ArtifactStore, sha256: str, size: int) -> Iterator[bytes]:
    """The stored artifact's bytes in ``BLOCK``s, checked against its sha256 and size: a damaged
    store raises ``ExportError`` before a byte past ``size`` is yielded, or at the end."""
    digest, read = hashlib.sha256(), 0
    chunks = store.open_chunks(sha256, chunk_size=BLOCK)
    try:
        for block in chunks:
            read += len(block)
            if read > size:
                break
            digest.update(block)
            yield block
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if read != size or digest.hexdigest() != sha256:
        raise ExportError(
            f"artifact {sha256!r} in the store is damaged (size {read}, expected "
            f"{size}); nothing exported from it: run 'mirrorflow repository verify --repair'"
        )


def _write_chunk(path: Path, fill: Callable[[ChunkWriter], None]) -> ChunkEntry:
    """Write a chunk as ``<path>.part``, make it durable, then publish it under ``path``.

    One ``fsync`` per chunk (not per file): a chunk is what the resume state records as done.
    """
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as raw:
            writer = ChunkWriter(raw)
            fill(writer)
            writer.close()
            raw.flush()
            os.fsync(raw.fileno())
            entry = ChunkEntry(path.name, writer.sha256, writer.size)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
    return entry


def _spool_lines(lines: Iterable[str], directory: Path) -> tuple[IO[bytes], int, int]:
    spool = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115  (returned open, closed by the caller)
    count = 0
    for line in lines:
        spool.write(line.encode() + b"\n")
        count += 1
    size = spool.tell()
    spool.seek(0)
    return spool, size, count


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


_OURS = (TOC_NAME, STATE_NAME)


def _check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InvalidOption("to", str(directory), "is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, on a read-only file system, without permission
        raise InvalidOption("to", str(directory), f"cannot be created: {exc.strerror or exc}") from exc
    for entry in directory.iterdir():
        name = entry.name
        if name in _OURS or (name.startswith("chunk-") and name.endswith((".tar", ".tar.part"))):
            continue
        raise InvalidOption(
            "to",
            str(directory),
            f"holds {name!r}, which is not part of an export: use an empty directory",
        )


def export_version(
    catalog: Catalog,
    store: ArtifactStore,
    *,
    repository: str,
    version: int | None,
    since_version: int | None,
    directory: Path,
    chunk_size: int,
    writer: str,
    progress: TransferProgress | None = None,
) -> ExportResult:
    """Export version ``version`` (the latest when None) of ``repository`` into ``directory``.

    With ``since_version``, only the packages added since then and the removals. ``progress`` is
    told the artifact bytes to copy, then each file's bytes as it is copied (or a whole chunk's,
    found intact). Raises ``NotFound``, ``InvalidExport`` (options), ``MissingContent`` (files not
    stored: fetch them first) or ``ExportError`` (a damaged stored artifact); nothing is published as complete then.
    """
    sel = resolve_versions(catalog, repository, version, since_version)
    missing = missing_files(catalog, sel)
    if missing:
        raise MissingContent(sel.repository, sel.version, [m.filename for m in missing])
    _check_directory(directory)
    (directory / TOC_NAME).unlink(missing_ok=True)  # unfinished until written again, last

    packages, package_size, package_count = _spool_lines(
        (r.to_json() for r in _records(catalog, sel)), directory
    )
    removed, removed_size, removed_count = _spool_lines(
        (removed_to_json(f, s) for f, s in _removed(catalog, sel)), directory
    )
    statuses, statuses_size, statuses_count = _spool_lines(
        (r.to_json() for r in _statuses(catalog, sel)), directory
    )
    provenance_records = _Provenance(catalog, sel)
    provenance, provenance_size, provenance_count = _spool_lines(
        (r.to_json() for r in provenance_records), directory
    )
    with packages, removed, statuses, provenance:
        records_hash = hashlib.sha256()
        for spool in (packages, removed, statuses, provenance):
            while block := spool.read(BLOCK):
                records_hash.update(block)
            spool.seek(0)
        plan = hashlib.sha256(f"{records_hash.hexdigest()}:{chunk_size}:".encode())
        artifact_count = artifact_bytes = 0
        for sha256, size in _artifacts(catalog, sel):
            plan.update(f"{sha256}:{size};".encode())
            artifact_count += 1
            artifact_bytes += size
        state = _State.load(directory, plan.hexdigest())
        if progress is not None:
            progress.start(artifact_bytes)

        def fill_records(chunk: ChunkWriter) -> None:
            chunk.add(PACKAGES_MEMBER, package_size, iter(lambda: packages.read(BLOCK), b""))
            chunk.add(REMOVED_MEMBER, removed_size, iter(lambda: removed.read(BLOCK), b""))
            chunk.add(STATUSES_MEMBER, statuses_size, iter(lambda: statuses.read(BLOCK), b""))
            chunk.add(PROVENANCE_MEMBER, provenance_size, iter(lambda: provenance.read(BLOCK), b""))

        entries = [
            state.reuse(directory / RECORDS_CHUNK)
            or state.done(_write_chunk(directory / RECORDS_CHUNK, fill_records))
        ]

    for index, members in enumerate(plan_chunks(_artifacts(catalog, sel), chunk_size), start=1):
        path = directory / chunk_name(index)
        entry = state.reuse(path)
        if entry is None:

            def fill(chunk: ChunkWriter, members: list[tuple[str, int]] = members) -> None:
                for sha256, size in members:
                    chunk.add(artifact_member(sha256), size, _verified_blocks(store, sha256, size))
                    if progress is not None:
                        progress.advance(size)

            entry = state.done(_write_chunk(path, fill))
        elif progress is not None:
            progress.advance(sum(size for _, size in members))
        entries.append(entry)

    for stale in directory.glob("chunk-*.tar*"):  # chunks of an earlier, larger plan
        if stale.name not in {e.name for e in entries}:
            stale.unlink()
    toc = Toc(
        repository=sel.repository,
        repository_uuid=sel.repository_uuid,
        version=sel.version,
        since_version=sel.since,
        chunk_size=chunk_size,
        chunks=tuple(entries),
        packages=package_count,
        removed=removed_count,
        artifacts=artifact_count,
        artifact_bytes=artifact_bytes,
        writer=writer,
        statuses=statuses_count,
        provenance=provenance_count,
    )
    # The state file stays: a rerun of a finished export re-hashes its chunks and writes none.
    _atomic_write(directory / TOC_NAME, toc.to_json())
    return ExportResult(toc, state.written, state.skipped, state.bytes_written, provenance_records.missing)


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".part")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class _State:
    """The chunks finished under one plan (``.export-state.json``), rewritten after each chunk."""

    def __init__(self, directory: Path, plan: str, chunks: dict[str, dict[str, Any]]) -> None:
        self.path, self.plan, self.chunks = directory / STATE_NAME, plan, chunks
        self.written = self.skipped = self.bytes_written = 0

    @classmethod
    def load(cls, directory: Path, plan: str) -> _State:
        try:
            data = json.loads((directory / STATE_NAME).read_text())
        except (OSError, ValueError):
            data = {}
        chunks = data.get("chunks") if isinstance(data, dict) and data.get("plan") == plan else None
        return cls(directory, plan, chunks if isinstance(chunks, dict) else {})

    def reuse(self, path: Path) -> ChunkEntry | None:
        """The finished chunk at ``path`` when it is intact (re-hashed), else None."""
        known = self.chunks.get(path.name)
        if not isinstance(known, dict) or not path.is_file():
            return None
        if path.stat().st_size != known.get("size"):
            return None
        digest, size = _hash_file(path)
        if digest != known.get("sha256"):
            return None
        self.skipped += 1
        return ChunkEntry(path.name, digest, size)

    def done(self, entry: ChunkEntry) -> ChunkEntry:
        self.chunks[entry.name] = {"sha256": entry.sha256, "size": entry.size}
        self.written += 1
        self.bytes_written += entry.size
        _atomic_write(self.path, json.dumps({"plan": self.plan, "chunks": self.chunks}))
        return entry
