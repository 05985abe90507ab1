"""OSV advisory records and exports as the PyPI ecosystem's ``all.zip`` lays them out (no fixtures)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["osv", "osv_zip", "since"]


def osv(
    advisory_id: str, project: str, *, modified: str = "2024-05-01T00:00:00Z", **entry: Any
) -> dict[str, Any]:
    """An OSV record naming ``project`` of the PyPI ecosystem (``entry``: versions, ranges)."""
    return {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": modified,
        "summary": f"{advisory_id} summary",
        "affected": [{"package": {"ecosystem": "PyPI", "name": project}, **entry}],
    }


def osv_zip(path: Path, *records: dict[str, Any], extra: dict[str, bytes] | None = None) -> Path:
    """An export as the PyPI ecosystem's ``all.zip`` lays it out: one ``<id>.json`` per record."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def since(version: str) -> list[dict[str, Any]]:
    return [{"type": "ECOSYSTEM", "events": [{"introduced": version}]}]
