"""Render simple-index pages: PEP 503 HTML and PEP 691 JSON, with PEP 592, 658/714 and 700 fields.

Pure: takes records, returns bytes. Also the ``Accept`` negotiation (PEP 691, q-values; HTML when the
client states no preference) and the ETag of a body.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _json_string
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from mirrorflow.storage.records import PageFile, ProjectEntry, ServedFile

__all__ = [
    "API_VERSION",
    "HTML",
    "HTML_V1",
    "JSON_V1",
    "core_metadata_of",
    "etag_of",
    "etag_matches",
    "negotiate",
    "page_file",
    "render_listing",
    "render_project",
    "upload_time",
]

API_VERSION = "1.3"  # 1.3: PEP 740 provenance
#: The version of a project page that carries a PEP 792 status (the spec's: 1.4).
STATUS_API_VERSION = "1.4"
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


def core_metadata_of(file: PageFile) -> dict[str, str] | bool:
    """Return what to advertise for a file's PEP 658 metadata: its hashes, True (no hash known) or False.

    Offered when stored, when the upstream offers it, or when the wheel itself is stored (the
    server reads ``METADATA`` out of it).
    """
    return _metadata_of(
        file.filename,
        file.metadata_sha256,
        file.has_metadata,
        file.artifact_sha256,
        file.core_metadata_sha256,
    )


def _metadata_of(
    filename: str, upstream: str | None, offered: bool, artifact: str | None, stored: str | None
) -> dict[str, str] | bool:
    if stored is not None:
        return {"sha256": stored}
    if offered:
        return {"sha256": upstream} if upstream else True
    return filename.endswith(".whl") and artifact is not None


def upload_time(moment: datetime) -> str:
    """Return an upload time as PEP 700 writes it, in UTC with microseconds.

    (The same text ``mirrorflow.storage.serving.upload_time_text`` has the database write.)

    >>> upload_time(datetime(2024, 4, 9, 12, 0, tzinfo=UTC))
    '2024-04-09T12:00:00.000000Z'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def page_file(file: ServedFile) -> PageFile:
    """Return a ``ServedFile`` (a pull-through file) as a page lists it."""
    package = file.package
    moment = None if package.upload_time is None else upload_time(package.upload_time)
    return PageFile(
        file.package_id, package.name, package.version, package.filename, package.requires_python,
        package.sha256, package.size, moment, package.yanked, package.yanked_reason,
        package.metadata_sha256, package.has_metadata, file.artifact_sha256, file.core_metadata_sha256,
    )  # fmt: skip


# Characters ``quote`` never escapes and neither HTML nor JSON needs escaped: a filename made only
# of these (nearly all) goes into URLs and pages as it is.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def _versions(files: Iterable[PageFile]) -> list[str]:
    """Return the distinct valid versions, oldest first (PEP 700), each distinct string parsed once.

    Versions equal under PEP 440 (``1.0``, ``1.0.0``) are listed once, as the first file spells it.

    >>> rows = [PageFile(1, "a", v, "f", None, "0", None, None, False, None, None, False, None, None)
    ...         for v in ("2.0", "1.0", "nonsense", "1.0.0", "v10", "1.0")]
    >>> _versions(rows)
    ['1.0', '2.0', '10']
    """
    parsed = []
    for text in dict.fromkeys(file.version for file in files):
        try:
            parsed.append(Version(text))
        except InvalidVersion:
            continue
    parsed.sort()  # stable: equal versions end up adjacent, the first spelling first
    versions: list[str] = []
    previous = None
    for version in parsed:
        if version != previous:
            versions.append(str(version))
            previous = version
    return versions


def _metadata_attr(metadata: dict[str, str] | bool) -> str:
    value = f"sha256={metadata['sha256']}" if isinstance(metadata, dict) else "true"
    return f' data-core-metadata="{value}" data-dist-info-metadata="{value}"'


def _anchors(files: Sequence[PageFile], prefix: str, provenance: Collection[str]) -> list[str]:
    """Return the PEP 503 anchor lines; ``prefix`` is the (already quoted) files URL prefix."""
    prefix = html.escape(prefix)
    escaped: dict[str, str] = {}  # requires-python and yank reasons repeat across files
    lines = []
    # Unpacked by position (PageFile's field order): attribute access per field costs more.
    for (_, _, _, filename, requires, sha256, _, _, yanked, reason,
         upstream, offered, artifact, stored) in files:  # fmt: skip
        if _PLAIN(filename):
            quoted = text = filename
        else:
            quoted, text = quote(filename), html.escape(filename)
        # A quoted filename and a sha256 hold no character HTML escapes.
        line = f'    <a href="{prefix}{sha256}/{quoted}#sha256={sha256}"'
        if requires:
            value = escaped.get(requires)
            if value is None:
                value = escaped[requires] = html.escape(requires)
            line += f' data-requires-python="{value}"'
        if yanked:
            reason = reason or ""
            value = escaped.get(reason)
            if value is None:
                value = escaped[reason] = html.escape(reason)
            line += f' data-yanked="{value}"'
        metadata = _metadata_of(filename, upstream, offered, artifact, stored)
        if metadata:
            line += _metadata_attr(metadata)
        if sha256 in provenance:  # PEP 740: this mirror's URL for it, never the upstream's
            line += f' data-provenance="{prefix}{sha256}/{quoted}.provenance"'
        lines.append(f"{line}>{text}</a><br />")
    return lines


def _json_files(files: Sequence[PageFile], prefix: str, provenance: Collection[str]) -> str:
    """Return the PEP 691 ``files`` array as JSON text, exactly as ``json.dumps`` (compact) writes it.

    Written directly rather than through dicts and ``json.dumps``: for 5,000 files that was most
    of the page's time. Strings that can hold anything are escaped by the ``json`` module's own
    escaper; the rest are hex digests, URLs of quoted characters, numbers and the upload time
    text, none of which JSON escapes.
    """
    prefix = _json_string(prefix)[1:-1]
    escaped: dict[str | None, str] = {None: "null"}
    entries = []
    # Unpacked by position (PageFile's field order): attribute access per field costs more.
    for (_, _, _, filename, requires, sha256, size, uploaded, yanked, reason,
         upstream, offered, artifact, stored) in files:  # fmt: skip
        if _PLAIN(filename):
            quoted, name = filename, f'"{filename}"'
        else:
            quoted, name = quote(filename), _json_string(filename)
        requires_text = escaped.get(requires)
        if requires_text is None:  # a text not seen yet (None is "null" from the start)
            assert requires is not None
            requires_text = escaped[requires] = _json_string(requires)
        entry = (
            f'{{"filename":{name},"url":"{prefix}{sha256}/{quoted}",'
            f'"hashes":{{"sha256":"{sha256}"}},"requires-python":{requires_text}'
        )
        if size is not None:
            entry += f',"size":{size:d}'
        if uploaded is not None:
            entry += f',"upload-time":"{uploaded}"'
        if yanked:
            entry += f',"yanked":{_json_string(reason) if reason else "true"}'
        metadata = _metadata_of(filename, upstream, offered, artifact, stored)
        if metadata:
            value = (
                f'{{"sha256":{_json_string(metadata["sha256"])}}}' if isinstance(metadata, dict) else "true"
            )
            # PEP 714: dist-info-metadata is the old key, for older clients
            entry += f',"core-metadata":{value},"dist-info-metadata":{value}'
        if sha256 in provenance:  # PEP 740: this mirror's URL for it, never the upstream's
            entry += f',"provenance":"{prefix}{sha256}/{quoted}.provenance"'
        entries.append(entry + "}")
    return "[" + ",".join(entries) + "]"


def _html_page(
    title: str, lines: Iterable[str], serial: int, status: tuple[str, str | None] | None = None
) -> bytes:
    status_tags = []
    if status is not None:
        status_tags.append(f'    <meta name="pypi:project-status" content="{html.escape(status[0])}">')
        if status[1]:
            status_tags.append(
                f'    <meta name="pypi:project-status-reason" content="{html.escape(status[1])}">'
            )
    head = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION if status is None else STATUS_API_VERSION}">',
        *status_tags,
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
    files: Sequence[PageFile],
    *,
    serial: int,
    media_type: str,
    files_prefix: str,
    provenance: Collection[str] = frozenset(),
    status: tuple[str, str | None] | None = None,
) -> bytes:
    """Return one project's page in ``media_type`` (JSON_V1, HTML_V1 or HTML).

    A file's URL is ``files_prefix`` + ``<sha256>/<quoted filename>``; ``files_prefix`` must be
    URL-quoted already (e.g. ``/<quoted repository>/files/``). A file whose sha256 is in
    ``provenance`` gets PEP 740's ``provenance`` (JSON) / ``data-provenance`` (HTML): its URL
    with ``.provenance`` appended, in the same form as the file's own URL. ``status``: the project's
    PEP 792 status and reason, as the upstream gave them: the page then declares API 1.4 and carries
    them (JSON ``project-status``, HTML ``pypi:project-status`` meta tags).
    """
    if media_type == JSON_V1:
        head: dict[str, object] = {
            "meta": {
                "api-version": API_VERSION if status is None else STATUS_API_VERSION,
                "_last-serial": serial,
            },
            "name": normalized_name,
            "versions": _versions(files),
        }
        if status is not None:
            head["project-status"] = {"status": status[0], **({"reason": status[1]} if status[1] else {})}
        text = json.dumps(head, separators=(",", ":"))
        return f'{text[:-1]},"files":{_json_files(files, files_prefix, provenance)}}}'.encode()
    return _html_page(f"Links for {display_name}", _anchors(files, files_prefix, provenance), serial, status)


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
