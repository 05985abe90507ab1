"""The air-gap export format (``docs/airgap.md``): its table of contents, records and chunk plan.

Pure code (standard library only): what ``mirrorflow.storage.export`` writes and ``mirrorflow.storage.import_`` reads,
and the checks that refuse a damaged or foreign export before anything is stored.

An export is a directory::

    toc.json              the table of contents (``Toc``), written last
    chunk-00000.tar       records/packages.jsonl, records/removed.jsonl,
                          records/statuses.jsonl, records/provenance.jsonl (format version 2)
    chunk-00001.tar ...   artifacts/<sha256>: the files, each a plain ustar member

Format version 2 adds the version's PEP 792 project statuses (``StatusRecord``) and the PEP 740
provenance objects the repository serves for the exported files (``ProvenanceRecord``); a reader
of version 2 reads version 1 exports too (no statuses, no provenance: the import changes neither).

Errors::

    ExportError                    base; one line naming the field (or chunk) and the value
    +-- InvalidExport              a TOC, record or chunk that cannot be read as this format
    |   +-- InvalidOption          an option of export or import (``to``, ``from``, ``chunk_size``)
    +-- CorruptChunk               a chunk whose bytes are not what the TOC says; .chunk
    +-- ExportGap                  an incremental export made against another version
    +-- MissingContent             files of the version that are not stored (on_demand)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.records import NewPackage

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "RECORDS_CHUNK",
    "PACKAGES_MEMBER",
    "PROVENANCE_MEMBER",
    "READABLE_VERSIONS",
    "REMOVED_MEMBER",
    "STATUSES_MEMBER",
    "TOC_NAME",
    "ChunkEntry",
    "CorruptChunk",
    "ExportError",
    "ExportGap",
    "InvalidExport",
    "InvalidOption",
    "MissingContent",
    "PackageRecord",
    "ProvenanceRecord",
    "StatusRecord",
    "Toc",
    "TransferProgress",
    "artifact_member",
    "chunk_name",
    "parse_size",
    "plan_chunks",
    "sha256_of_member",
]

FORMAT = "mirrorflow-export"
#: Bumped only when a reader of the previous version could misread an export of this one.
#: 2: the records chunk carries project statuses and provenance (a reader of 1 would drop them).
FORMAT_VERSION = 2
#: The format versions this mirrorflow imports.
READABLE_VERSIONS = (1, 2)
TOC_NAME = "toc.json"
RECORDS_CHUNK = "chunk-00000.tar"
PACKAGES_MEMBER = "records/packages.jsonl"
REMOVED_MEMBER = "records/removed.jsonl"
STATUSES_MEMBER = "records/statuses.jsonl"
PROVENANCE_MEMBER = "records/provenance.jsonl"
_ARTIFACT_PREFIX = "artifacts/"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK_RE = re.compile(r"chunk-[0-9]{5,}\.tar")


class ExportError(MirrorflowError):
    """Base of the export and import errors; the message is one line for the user."""


class InvalidExport(ExportError):
    """A TOC, record or chunk member that is not this format: names the field and the value."""

    def __init__(self, where: str, field: str, value: object, reason: str) -> None:
        self.where, self.field, self.value = where, field, value
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"{where}: {field} {shown} {reason}")


class InvalidOption(InvalidExport):
    """An option of export or import that cannot be used, phrased as the CLI's other field errors
    (``to: '/dev/null/usb' cannot be created: Not a directory``); ``where`` is ``"option"``."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.where, self.field, self.value = "option", field, value
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        ExportError.__init__(self, f"{field}: {shown} {reason}")


class CorruptChunk(ExportError):
    """A chunk is missing, or its bytes do not hash to the TOC's sha256; nothing was imported."""

    def __init__(self, chunk: str, reason: str) -> None:
        self.chunk = chunk
        super().__init__(f"chunk {chunk!r} {reason}; nothing was imported: copy it again")


class ExportGap(ExportError):
    """An incremental export applies on top of one version of its source, which the target lacks."""

    def __init__(self, *, source: str, needs: int, target: str, holds: int | None) -> None:
        self.source, self.needs, self.target, self.holds = source, needs, target, holds
        held = f"version {holds} of {source}" if holds is not None else f"no version of {source}"
        super().__init__(f"this export needs version {needs} of {source}; {target} holds {held}")


class MissingContent(ExportError):
    """Files of the version are not stored (synced on_demand or streamed): refused by name."""

    def __init__(self, repository: str, version: int, filenames: Sequence[str]) -> None:
        self.repository, self.version, self.filenames = repository, version, list(filenames)
        shown = ", ".join(repr(name) for name in self.filenames[:3])
        more = f" and {len(self.filenames) - 3} more" if len(self.filenames) > 3 else ""
        super().__init__(
            f"{len(self.filenames)} file(s) of {repository!r} version {version} are not stored "
            f"(on_demand): {shown}{more}; rerun with --fetch-missing to fetch them from the upstream"
        )


class TransferProgress(Protocol):
    """Told the bytes an export or import will move (``start``), then each step (``advance``)."""

    def start(self, total: int) -> None: ...
    def advance(self, count: int) -> None: ...


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")
MIN_CHUNK_SIZE = 2**10
MAX_CHUNK_SIZE = 2**40


def parse_size(field: str, text: str) -> int:
    """Read a size such as ``2GiB``, ``500MB`` or ``65536`` as bytes (1 KiB to 1 TiB).

    >>> parse_size("chunk_size", "2GiB"), parse_size("chunk_size", "1.5k"), parse_size("x", "4096")
    (2147483648, 1536, 4096)
    >>> parse_size("chunk_size", "2 parsecs")
    Traceback (most recent call last):
    ...
    mirrorflow.storage.export_format.InvalidOption: chunk_size: '2 parsecs' is not a size such as 2GiB, 500MB or 65536

    Raises ``InvalidOption`` naming ``field`` and showing ``text``.
    """
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InvalidOption(field, text, "is not a size such as 2GiB, 500MB or 65536")
    size = int(float(match.group(1)) * _UNITS[unit])
    if not MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE:
        raise InvalidOption(field, text, "must be from 1KiB to 1TiB")
    return size


def chunk_name(index: int) -> str:
    """The file name of chunk ``index``.

    >>> chunk_name(3)
    'chunk-00003.tar'
    """
    return f"chunk-{index:05d}.tar"


def artifact_member(sha256: str) -> str:
    return f"{_ARTIFACT_PREFIX}{sha256}"


def sha256_of_member(where: str, name: str) -> str:
    """The digest an artifact member's name carries; ``InvalidExport`` for any other name.

    >>> sha256_of_member("chunk-00001.tar", "artifacts/" + "ab" * 32)[:4]
    'abab'
    """
    digest = name.removeprefix(_ARTIFACT_PREFIX)
    if not name.startswith(_ARTIFACT_PREFIX) or not _SHA256_RE.fullmatch(digest):
        raise InvalidExport(where, "member", name, "is not artifacts/<sha256>")
    return digest


def plan_chunks(artifacts: Iterable[tuple[str, int]], chunk_size: int) -> Iterator[list[tuple[str, int]]]:
    """Group ``(sha256, size)`` artifacts, given in digest order, into chunks of about ``chunk_size`` bytes.

    A chunk closes before the artifact that would take it past ``chunk_size``; an artifact larger
    than ``chunk_size`` gets a chunk of its own. The plan depends only on its input, so a rerun of
    an export cuts the same chunks (which is what lets it skip the finished ones). A generator:
    the artifacts are read as the chunks are written, never held all at once.

    >>> list(plan_chunks([("a", 5), ("b", 600), ("c", 3000), ("d", 1)], 4096))
    [[('a', 5), ('b', 600)], [('c', 3000)], [('d', 1)]]
    >>> list(plan_chunks([("b", 1), ("a", 1)], 2048))
    Traceback (most recent call last):
    ...
    ValueError: artifacts out of digest order: 'a' after 'b'
    """
    current: list[tuple[str, int]] = []
    filled = 0
    previous = ""
    for sha256, size in artifacts:
        if sha256 <= previous:
            raise ValueError(f"artifacts out of digest order: {sha256!r} after {previous!r}")
        previous = sha256
        cost = 512 + -(-size // 512) * 512  # a ustar header and the data padded to 512-byte blocks
        if current and filled + cost > chunk_size:
            yield current
            current, filled = [], 0
        current.append((sha256, size))
        filled += cost
    if current:
        yield current


# -- records ----------------------------------------------------------------------------------

_TEXT_FIELDS = ("name", "normalized_name", "version", "filename", "packagetype", "python_version", "url")
_OPTIONAL_TEXT = ("requires_python", "yanked_reason")


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """One line of ``records/packages.jsonl``: a package row, portable between catalogs.

    ``package`` is the row as a sync writes it (its fields are the line's); ``core_metadata`` is the
    digest of its stored PEP 658 metadata (an artifact of the export), and ``metadata_source`` where
    that came from (``upstream`` or ``wheel``).
    """

    package: NewPackage
    core_metadata: str | None
    metadata_source: str | None

    def to_json(self) -> str:
        data: dict[str, Any] = self.package._asdict()
        data["upload_time"] = self.package.upload_time.isoformat() if self.package.upload_time else None
        data["core_metadata"] = self.core_metadata
        data["metadata_source"] = self.metadata_source
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, where: str, line: str) -> PackageRecord:
        """Parse and check one line; fields this version does not know are ignored (a newer writer)."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidExport(where, "line", line, f"is not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise InvalidExport(where, "line", line, "is not a JSON object")
        values: dict[str, Any] = {}
        for field in _TEXT_FIELDS:
            values[field] = _text(where, data, field)
        for field in _OPTIONAL_TEXT:
            value = data.get(field)
            if value is not None and not isinstance(value, str):
                raise InvalidExport(where, field, value, "is not a string")
            values[field] = value
        values["sha256"] = _digest(where, data, "sha256", required=True)
        values["metadata_sha256"] = _digest(where, data, "metadata_sha256", required=False)
        core_metadata = _digest(where, data, "core_metadata", required=False)
        source = data.get("metadata_source")
        if source not in (None, "upstream", "wheel"):
            raise InvalidExport(where, "metadata_source", source, "is not 'upstream' or 'wheel'")
        size = data.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InvalidExport(where, "size", size, "is not a size in bytes")
        values["size"] = size
        for field in ("yanked", "has_metadata"):
            if not isinstance(data.get(field), bool):
                raise InvalidExport(where, field, data.get(field), "is not true or false")
            values[field] = data[field]
        values["upload_time"] = _timestamp(where, data.get("upload_time"))
        if "/" in values["filename"] or values["filename"] in (".", ".."):
            raise InvalidExport(where, "filename", values["filename"], "is not a plain file name")
        return cls(NewPackage(**values), core_metadata, source if core_metadata else None)


def removed_to_json(filename: str, sha256: str) -> str:
    return json.dumps({"filename": filename, "sha256": sha256}, sort_keys=True, separators=(",", ":"))


def removed_from_json(where: str, line: str) -> tuple[str, str]:
    """Parse one line of ``records/removed.jsonl``: ``(filename, sha256)``."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidExport(where, "line", line, f"is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidExport(where, "line", line, "is not a JSON object")
    return _text(where, data, "filename"), _digest(where, data, "sha256", required=True) or ""


def _object(where: str, line: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidExport(where, "line", line, f"is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidExport(where, "line", line, "is not a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One line of ``records/statuses.jsonl``: a project's PEP 792 status at the exported version.

    >>> StatusRecord.from_json("x", StatusRecord("mf-a", "archived", None).to_json())
    StatusRecord(project='mf-a', status='archived', reason=None)
    """

    project: str
    status: str
    reason: str | None

    def to_json(self) -> str:
        data = {"project": self.project, "status": self.status, "reason": self.reason}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, where: str, line: str) -> StatusRecord:
        data = _object(where, line)
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidExport(where, "reason", reason, "is not a string")
        status = _text(where, data, "status")
        if len(status) > 64:
            raise InvalidExport(where, "status", status, "is longer than 64 characters")
        return cls(_text(where, data, "project"), status, reason)


@dataclass(frozen=True, slots=True)
class ProvenanceRecord:
    """One line of ``records/provenance.jsonl``: the provenance object of distribution ``sha256``,
    as its repository serves it: the upstream URL its remote named (never served) and the bytes.

    >>> record = ProvenanceRecord("ab" * 32, "https://index.example/p", b"{}")
    >>> ProvenanceRecord.from_json("x", record.to_json()) == record
    True
    """

    sha256: str
    url: str
    body: bytes

    def to_json(self) -> str:
        data = {
            "sha256": self.sha256,
            "url": self.url,
            "body": base64.b64encode(self.body).decode("ascii"),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, where: str, line: str) -> ProvenanceRecord:
        """Parse and check one line: the body must hash to its ``body_sha256``."""
        data = _object(where, line)
        sha256 = _digest(where, data, "sha256", required=True) or ""
        expected = _digest(where, data, "body_sha256", required=True)
        text = _text(where, data, "body")
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidExport(where, "body", text, "is not base64") from None
        if hashlib.sha256(body).hexdigest() != expected:
            raise InvalidExport(
                where, "body_sha256", expected, f"is not the sha256 of the body of {sha256!r}"
            )
        return cls(sha256, _text(where, data, "url"), body)


def _text(where: str, data: Mapping[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidExport(where, field, value, "is not a non-empty string")
    return value


def _digest(where: str, data: Mapping[str, Any], field: str, *, required: bool) -> str | None:
    value = data.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise InvalidExport(where, field, value, "is not a sha256 (64 lowercase hex digits)")
    return value


def _timestamp(where: str, value: object) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidExport(where, "upload_time", value, "is not an ISO 8601 time with a zone")
    return parsed


# -- table of contents ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkEntry:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Toc:
    """``toc.json``: what the export holds, and what it was made from.

    ``since_version`` is None for a full export; an incremental one applies on top of that
    version of ``repository`` (identified by ``repository_uuid``, as names may differ).
    """

    repository: str
    repository_uuid: str
    version: int
    since_version: int | None
    chunk_size: int
    chunks: tuple[ChunkEntry, ...]
    packages: int
    removed: int
    artifacts: int
    artifact_bytes: int
    writer: str
    #: Format 2's counts (None in a format 1 export).
    statuses: int | None = None
    provenance: int | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        counts = {
            "packages": self.packages,
            "removed": self.removed,
            "artifacts": self.artifacts,
            "artifact_bytes": self.artifact_bytes,
        }
        if self.format_version >= 2:
            counts |= {"statuses": self.statuses or 0, "provenance": self.provenance or 0}
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": self.format_version,
                "source": {
                    "repository": self.repository,
                    "repository_uuid": self.repository_uuid,
                    "version": self.version,
                    "since_version": self.since_version,
                },
                "chunk_size": self.chunk_size,
                "chunks": [{"name": c.name, "sha256": c.sha256, "size": c.size} for c in self.chunks],
                "counts": counts,
                "writer": self.writer,
            },
            indent=2,
            sort_keys=True,
        )

    @property
    def digest(self) -> str:
        """The TOC's own sha256: names this export (the chunks' digests are in it)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Toc:
        """Parse ``toc.json``; raise ``InvalidExport`` naming the field and the value."""
        where = TOC_NAME
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidExport(where, "content", text[:40], f"is not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise InvalidExport(where, "content", text[:40], "is not a JSON object")
        if data.get("format") != FORMAT:
            raise InvalidExport(where, "format", data.get("format"), f"is not {FORMAT!r}")
        format_version = data.get("format_version")
        if format_version not in READABLE_VERSIONS or isinstance(format_version, bool):
            readable = " and ".join(map(str, READABLE_VERSIONS))
            raise InvalidExport(
                where,
                "format_version",
                format_version,
                f"is not supported: this mirrorflow reads format versions {readable}",
            )
        source = data.get("source")
        if not isinstance(source, dict):
            raise InvalidExport(where, "source", source, "is not a JSON object")
        version = _count(where, source, "version")
        since = source.get("since_version")
        if since is not None:
            since = _count(where, source, "since_version")
            if since >= version:
                raise InvalidExport(where, "since_version", since, f"is not below version {version}")
        chunks = data.get("chunks")
        if not isinstance(chunks, list) or not chunks:
            raise InvalidExport(where, "chunks", chunks, "is not a non-empty list")
        entries = tuple(_chunk_entry(where, entry, index) for index, entry in enumerate(chunks))
        counts = data.get("counts")
        if not isinstance(counts, dict):
            raise InvalidExport(where, "counts", counts, "is not a JSON object")
        return cls(
            repository=_text(where, source, "repository"),
            repository_uuid=_text(where, source, "repository_uuid"),
            version=version,
            since_version=since,
            chunk_size=_count(where, data, "chunk_size"),
            chunks=entries,
            packages=_count(where, counts, "packages"),
            removed=_count(where, counts, "removed"),
            artifacts=_count(where, counts, "artifacts"),
            artifact_bytes=_count(where, counts, "artifact_bytes"),
            writer=str(data.get("writer", "")),
            statuses=_count(where, counts, "statuses") if format_version >= 2 else None,
            provenance=_count(where, counts, "provenance") if format_version >= 2 else None,
            format_version=format_version,
        )


def _count(where: str, data: Mapping[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidExport(where, field, value, "is not a whole number >= 0")
    return value


def _chunk_entry(where: str, entry: object, index: int) -> ChunkEntry:
    if not isinstance(entry, dict):
        raise InvalidExport(where, f"chunks[{index}]", entry, "is not a JSON object")
    name = _text(where, entry, "name")
    if name != chunk_name(index) or not _CHUNK_RE.fullmatch(name):
        raise InvalidExport(where, f"chunks[{index}].name", name, f"is not {chunk_name(index)!r}")
    digest = _digest(where, entry, "sha256", required=True) or ""
    return ChunkEntry(name, digest, _count(where, entry, "size"))


def read_lines(where: str, lines: Iterable[bytes]) -> Iterator[str]:
    """Decode a JSON-lines member line by line, skipping blank lines."""
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidExport(where, "line", number, "is not UTF-8") from None
        if line:
            yield line
