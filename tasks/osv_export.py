"""Read a local OSV export: the PyPI ecosystem's zip (``all.zip``), a directory of OSV JSON files, or one.

Nothing is fetched: users in closed networks bring the file. A zip is read member by member (each
member opened, read up to ``MAX_RECORD_BYTES`` and parsed before the next), a directory file by
file in path order, so memory stays bounded whatever the export's size. Each record is parsed by
``mirrorflow.tasks.advisories.parse_advisory``; a file that is not JSON, not an OSV record or too large
raises ``InvalidExport`` naming the file, and the caller (one transaction) imports nothing.

Exception tree::

    MirrorflowError
    └── InvalidExport    .path, .reason
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.advisories import Advisory, InvalidAdvisory, parse_advisory

__all__ = ["MAX_RECORD_BYTES", "InvalidExport", "read_export"]

#: The largest record accepted (the largest PyPI records are a few hundred KB).
MAX_RECORD_BYTES = 16 * 1024 * 1024


class InvalidExport(MirrorflowError):
    """A file of the export that is not an OSV record; nothing was imported."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}; nothing was imported")


def read_export(path: Path) -> Iterator[tuple[str, Advisory]]:
    """Yield ``(where, advisory)`` for each record of the export at ``path`` (a zip, a directory, or
    one ``.json`` record).

    Raises ``InvalidExport`` for a path that is none of these, or for the first bad record.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        for file in files:
            if file.stat().st_size > MAX_RECORD_BYTES:
                raise InvalidExport(str(file), f"is larger than {MAX_RECORD_BYTES} bytes")
            yield str(file), _parsed(str(file), file.read_bytes())
        return
    if not path.exists():
        raise InvalidExport(str(path), "does not exist")
    if not path.is_file():
        raise InvalidExport(str(path), "is neither an OSV zip nor a directory of OSV JSON files")
    if path.suffix == ".json":  # one record, as a user saves a single advisory
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise InvalidExport(str(path), f"is larger than {MAX_RECORD_BYTES} bytes")
        yield str(path), _parsed(str(path), path.read_bytes())
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidExport(str(path), f"is not a zip file ({exc})") from None
    with archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.endswith(".json"):
                continue
            where = f"{path}:{member.filename}"
            if member.file_size > MAX_RECORD_BYTES:
                raise InvalidExport(where, f"is larger than {MAX_RECORD_BYTES} bytes")
            try:
                with archive.open(member) as stream:
                    data = stream.read(MAX_RECORD_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InvalidExport(where, f"cannot be read ({exc})") from None
            if len(data) > MAX_RECORD_BYTES:
                raise InvalidExport(where, f"is larger than {MAX_RECORD_BYTES} bytes")
            yield where, _parsed(where, data)


def _parsed(where: str, data: bytes) -> Advisory:
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidExport(where, f"is not JSON ({exc})") from None
    try:
        return parse_advisory(record)
    except InvalidAdvisory as exc:
        raise InvalidExport(where, f"is not an OSV record: {exc}") from None
