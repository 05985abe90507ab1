"""JSON views of catalog records, with the seed's field names where they make sense.

Secrets never appear: they are shown as ``hidden_fields`` with ``is_set``, as the seed does, and
the value of a header that carries a credential (``Authorization``, a token) as ``<hidden>``.
"""

from __future__ import annotations

from typing import Any

from flows.remote_spec import SECRET_FIELDS, RemoteFields
from storage.catalog import VersionView
from storage.secrets import is_secret_header

__all__ = ["remote_view", "repository_view", "version_view", "package_view"]

_SUMMARY_KEY = "python.python"
#: What a secret header's value is shown as.
HIDDEN = "<hidden>"


def remote_view(row: Any) -> dict[str, Any]:
    fields = RemoteFields.from_row(row).model_dump()
    shown = {key: value for key, value in fields.items() if key not in SECRET_FIELDS}
    if shown.get("headers"):
        shown["headers"] = [
            {name: HIDDEN if is_secret_header(name) else value for name, value in entry.items()}
            for entry in shown["headers"]
        ]
    url = shown.pop("url")
    return {
        "prn": f"prn:mirrorflow.remote:{row.uuid}",
        "created": row.created,
        "last_updated": row.last_updated,
        "name": row.name,
        "url": url,
        **shown,
        "hidden_fields": [{"name": key, "is_set": bool(fields[key])} for key in SECRET_FIELDS],
    }


def repository_view(row: Any, remote_name: str | None) -> dict[str, Any]:
    return {
        "prn": f"prn:mirrorflow.repository:{row.uuid}",
        "created": row.created,
        "last_updated": row.last_updated,
        "name": row.name,
        "description": row.description,
        "retain_repo_versions": row.retain_repo_versions,
        "remote": remote_name,
        "latest_version": row.latest_version,
    }


def version_view(version: VersionView, *, with_report: bool = False) -> dict[str, Any]:
    def part(count: int) -> dict[str, Any]:
        return {_SUMMARY_KEY: {"count": count}} if count else {}

    view: dict[str, Any] = {
        "prn": f"prn:mirrorflow.repositoryversion:{version.uuid}",
        "created": version.created,
        "number": version.number,
        "repository": version.repository,
        "base_version": version.base_version,
        "content_summary": {
            "added": part(version.added),
            "removed": part(version.removed),
            "present": part(version.present),
        },
    }
    if with_report:
        view["report"] = version.report
    return view


def package_view(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "filename": row.filename,
        "packagetype": row.packagetype,
        "python_version": row.python_version,
        "requires_python": row.requires_python,
        "sha256": row.sha256,
        "size": row.size,
        "upload_time": row.upload_time,
        "yanked": row.yanked,
        "yanked_reason": row.yanked_reason,
        "stored": row.artifact_sha256 is not None,
    }
