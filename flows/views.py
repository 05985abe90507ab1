"""JSON views of catalog records, in the seed's shape: Pulp's field names, order and hrefs.

Secrets never appear: they are shown as ``hidden_fields`` with ``is_set``, as the seed does, and
the value of a header that carries a credential (``Authorization``, a token) as ``<hidden>``.
The hrefs are those ``mirrorflow serve`` answers (``mirrorflow.server.hrefs``). Fields Pulp does not have
come after Pulp's: ``latest_version`` (a repository), the extra filters (a remote), ``upload_time``,
``yanked``, ``yanked_reason`` and ``stored`` (a package); docs/json.md lists the differences.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mirrorflow.server.hrefs import (
    content_href,
    content_list_href,
    remote_href,
    repository_href,
    version_href,
    versions_href,
)

if TYPE_CHECKING:  # pydantic and SQLAlchemy: imported by the views that use them, not by a listing
    from mirrorflow.storage.catalog import VersionView

__all__ = ["remote_view", "repository_view", "version_view", "package_view", "to_json", "HIDDEN"]

_SUMMARY_KEY = "python.python"
#: What a secret header's value is shown as.
HIDDEN = "<hidden>"

#: A remote's fields in the seed's order (between ``pulp_labels`` and ``hidden_fields``, and after).
_REMOTE_HEAD = ("ca_cert", "client_cert", "tls_validation", "proxy_url")
_REMOTE_MIDDLE = (
    "download_concurrency", "max_retries", "policy", "total_timeout", "connect_timeout",
    "sock_connect_timeout", "sock_read_timeout", "headers", "rate_limit",
)  # fmt: skip
_REMOTE_TAIL = (
    "includes",
    "excludes",
    "prereleases",
    "package_types",
    "keep_latest_packages",
    "exclude_platforms",
)


def remote_view(row: Any) -> dict[str, Any]:
    from mirrorflow.flows.remote_spec import EXTRA_FILTERS, SECRET_FIELDS, RemoteFields
    from mirrorflow.storage.secrets import is_secret_header

    fields = RemoteFields.from_row(row).model_dump()
    headers = fields["headers"]
    if headers:
        headers = [
            {name: HIDDEN if is_secret_header(name) else value for name, value in entry.items()}
            for entry in headers
        ]
    view = {
        "pulp_href": remote_href(row.uuid),
        "prn": f"prn:python.pythonremote:{row.uuid}",
        "pulp_created": row.created,
        "pulp_last_updated": row.last_updated,
        "name": row.name,
        "url": fields["url"],
        **{key: fields[key] for key in _REMOTE_HEAD},
        "pulp_labels": dict(row.labels or {}),
        **{key: fields[key] for key in _REMOTE_MIDDLE},
        "headers": headers,
        "hidden_fields": [{"name": key, "is_set": bool(fields[key])} for key in SECRET_FIELDS],
        **{key: fields[key] for key in _REMOTE_TAIL},
        **{key: fields[key] for key in EXTRA_FILTERS},
    }
    # A field added to RemoteFields shows up (at the end) before anyone updates the lists above.
    return view | {
        key: value for key, value in fields.items() if key not in view and key not in SECRET_FIELDS
    }


def repository_view(row: Any, remote_uuid: str | None) -> dict[str, Any]:
    """A repository; ``remote_uuid`` is its default remote's (None: no default remote)."""
    return {
        "pulp_href": repository_href(row.uuid),
        "prn": f"prn:python.pythonrepository:{row.uuid}",
        "pulp_created": row.created,
        "pulp_last_updated": row.last_updated,
        "versions_href": versions_href(row.uuid),
        "pulp_labels": dict(row.labels or {}),
        "latest_version_href": version_href(row.uuid, row.latest_version),
        "name": row.name,
        "description": row.description,
        "retain_repo_versions": row.retain_repo_versions,
        "remote": remote_href(remote_uuid) if remote_uuid else None,
        # Publish each version a sync commits to ``publish_to`` (static files; served versions need none).
        "autopublish": bool(row.autopublish),
        "latest_version": row.latest_version,
        "publish_to": row.publish_to,
    }


def version_view(version: VersionView, *, with_report: bool = False) -> dict[str, Any]:
    repo = version.repository_uuid

    def part(membership: Any, count: int) -> dict[str, Any]:
        if not count:
            return {}
        return {_SUMMARY_KEY: {"count": count, "href": content_list_href(membership, repo, version.number)}}

    view: dict[str, Any] = {
        "pulp_href": version_href(repo, version.number),
        "prn": f"prn:core.repositoryversion:{version.uuid}",
        "pulp_created": version.created,
        "pulp_last_updated": version.created,  # a version never changes once made
        "number": version.number,
        "repository": repository_href(repo),
        "base_version": version.base_version,
        "content_summary": {
            "added": part("added", version.added),
            "removed": part("removed", version.removed),
            "present": part("present", version.present),
        },
    }
    report = version.report or {}
    stale = {**(report.get("failures") or {}), **(report.get("unverifiable") or {})}
    if report.get("partial") and stale:
        # Made without some projects or files (failure_policy partial, quarantine): which, and why.
        # They kept their previous content; the next sync retries them.
        view["stale"] = dict(sorted(stale.items()))
    if with_report:
        view["report"] = version.report
    return view


def package_view(row: Any) -> dict[str, Any]:
    """A package (one distribution file) as Pulp's python package content, then mirrorflow's fields."""
    return {
        "pulp_href": content_href(row.uuid),
        "prn": f"prn:python.pythonpackagecontent:{row.uuid}",
        "pulp_created": row.created,
        "pulp_last_updated": row.created,  # only the upstream's yank status is refreshed
        "filename": row.filename,
        "packagetype": row.packagetype,
        "name": row.name,
        "version": row.version,
        "sha256": row.sha256,
        "metadata_sha256": row.metadata_sha256,
        "requires_python": row.requires_python,
        "python_version": row.python_version,
        "size": row.size,
        "upload_time": row.upload_time,
        "yanked": row.yanked,
        "yanked_reason": row.yanked_reason,
        "stored": row.artifact_sha256 is not None,
    }


def to_json(data: Any) -> str:
    """The JSON the CLI prints: indented, datetimes as Pulp prints them."""
    return json.dumps(data, indent=2, default=_json_default)


def _json_default(value: Any) -> str:
    """Datetimes as ISO 8601 UTC with a ``Z``, as Pulp prints them; anything else as text."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)
