"""Render simple-index pages: PEP 503 HTML and PEP 691 JSON, with PEP 592, 658/714 and 700 fields.

Pure: takes records, returns bytes. Also the ``Accept`` negotiation (PEP 691, q-values; HTML when the
client states no preference) and the ETag of a body.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from packaging.version import InvalidVersion, Version

from storage.serving import ProjectEntry, ServedFile

__all__ = [
    "API_VERSION",
    "HTML",
    "HTML_V1",
    "JSON_V1",
    "core_metadata_of",
    "etag_of",
    "etag_matches",
    "negotiate",
    "render_listing",
    "render_project",
]

API_VERSION = "1.1"
JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"

# What each served type answers to; "latest" is PEP 691's alias of the newest version (v1).
_OFFERS: dict[str, tuple[str, ...]] = {
    HTML: ("text/html",),
    HTML_V1: (HTML_V1, "application/vnd.pypi.simple.latest+html"),
    JSON_V1: (JSON_V1, "application/vnd.pypi.simple.latest+json"),
}
_HTML_FIRST = (HTML, HTML_V1, JSON_V1)

FileUrl = Callable[[ServedFile], str]


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        if not pieces[0]:
            continue
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        ranges.append((pieces[0].lower(), q))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """Return the media type to serve for an ``Accept`` header, or None when nothing is acceptable.

    The most specific matching range gives an offer its q; the highest q wins; ties go to the more
    specific match, then to HTML (PEP 503 is the default format).

    >>> negotiate(None), negotiate("*/*")
    ('text/html', 'text/html')
    >>> negotiate("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.1")
    'application/vnd.pypi.simple.v1+json'
    >>> negotiate("text/html;q=0.1, application/vnd.pypi.simple.latest+json")
    'application/vnd.pypi.simple.v1+json'
    >>> negotiate("application/json") is None
    True
    """
    if accept is None or not accept.strip():
        return HTML
    ranges = _ranges(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for order, offer in enumerate(_HTML_FIRST):
        match: tuple[int, float] | None = None  # (specificity, q)
        for media_range, q in ranges:
            major = media_range.split("/", 1)[0]
            if media_range in _OFFERS[offer]:
                specificity = 2
            elif media_range == f"{major}/*" and any(o.startswith(f"{major}/") for o in _OFFERS[offer]):
                specificity = 1
            elif media_range == "*/*":
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, q)
        if match is None or match[1] <= 0:
            continue
        rank = (match[1], match[0], -order)
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen


def etag_of(body: bytes) -> str:
    """Return a strong ETag for a page body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, ``*`` matches)."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def core_metadata_of(file: ServedFile) -> dict[str, str] | bool:
    """Return what to advertise for a file's PEP 658 metadata: its hashes, True (no hash known) or False.

    Offered when stored, when the upstream offers it, or when the wheel itself is stored (the
    server reads ``METADATA`` out of it).
    """
    if file.core_metadata_sha256 is not None:
        return {"sha256": file.core_metadata_sha256}
    if file.has_metadata:
        return {"sha256": file.metadata_sha256} if file.metadata_sha256 else True
    return file.filename.endswith(".whl") and file.artifact_sha256 is not None


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _versions(files: Iterable[ServedFile]) -> list[str]:
    versions: set[Version] = set()
    for file in files:
        try:
            versions.add(Version(file.version))
        except InvalidVersion:
            continue
    return [str(version) for version in sorted(versions)]


def _json_file(file: ServedFile, url: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": url,
        "hashes": {"sha256": file.sha256},
        "requires-python": file.requires_python,
    }
    if file.size is not None:
        entry["size"] = file.size
    if file.upload_time is not None:
        entry["upload-time"] = _time(file.upload_time)
    if file.yanked:
        entry["yanked"] = file.yanked_reason or True
    metadata = core_metadata_of(file)
    if metadata:
        entry["core-metadata"] = metadata
        entry["dist-info-metadata"] = metadata  # PEP 714: the old key, for older clients
    return entry


def _anchor(file: ServedFile, url: str) -> str:
    attrs = [f'href="{html.escape(url)}#sha256={file.sha256}"']
    if file.requires_python:
        attrs.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.yanked:
        attrs.append(f'data-yanked="{html.escape(file.yanked_reason or "")}"')
    metadata = core_metadata_of(file)
    if metadata:
        value = f"sha256={metadata['sha256']}" if isinstance(metadata, dict) else "true"
        attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
    return f"    <a {' '.join(attrs)}>{html.escape(file.filename)}</a><br />"


def _html_page(title: str, lines: Iterable[str], serial: int) -> bytes:
    head = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f'    <meta name="pypi:last-serial" content="{serial}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
    ]
    tail = ["  </body>", "</html>", f"<!--SERIAL {serial}-->", ""]
    return "\n".join([*head, *lines, *tail]).encode()


def render_project(
    display_name: str,
    normalized_name: str,
    files: Sequence[ServedFile],
    *,
    serial: int,
    media_type: str,
    file_url: FileUrl,
) -> bytes:
    """Return one project's page in ``media_type`` (JSON_V1, HTML_V1 or HTML)."""
    if media_type == JSON_V1:
        document = {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "name": normalized_name,
            "versions": _versions(files),
            "files": [_json_file(file, file_url(file)) for file in files],
        }
        return json.dumps(document, separators=(",", ":")).encode()
    anchors = (_anchor(file, file_url(file)) for file in files)
    return _html_page(f"Links for {display_name}", anchors, serial)


def render_listing(projects: Sequence[ProjectEntry], *, serial: int, media_type: str) -> bytes:
    """Return the ``/simple/`` listing; project links are relative (``<name>/``)."""
    if media_type == JSON_V1:
        document = {
            "meta": {"api-version": API_VERSION, "_last-serial": serial},
            "projects": [{"name": p.display_name, "_last-serial": p.serial} for p in projects],
        }
        return json.dumps(document, separators=(",", ":")).encode()
    anchors = (
        f'    <a href="{html.escape(p.normalized_name)}/">{html.escape(p.display_name)}</a><br />'
        for p in projects
    )
    return _html_page("Simple index", anchors, serial)
