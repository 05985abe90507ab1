"""Pure parsers for simple-repository pages: PEP 503 HTML and PEP 691 JSON (with PEP 592, 658/714, 700, 740, 792).

The index client (``mirrorflow.tasks.index_client``) fetches a page and hands its body here; nothing in this
module does I/O. Each parser returns the records of ``mirrorflow.tasks.distributions``:

- ``parse_project_json`` / ``parse_project_html`` -> ``ProjectPage`` (one project's files);
- ``parse_listing_json`` / ``parse_listing_html`` -> ``ProjectListing`` (the ``/simple/`` root).

Errors::

    ValueError
     └── InvalidPage      .url, .reason: the page is not a simple page we can read

A page is rejected as a whole when it is structurally broken (bad JSON, not UTF-8, an API major version
above 1, a file entry without ``filename`` / ``url``, a known key holding the wrong type). Unknown keys
are ignored, as PEP 691 asks. A filename is kept as the index wrote it, even a hostile one (``../x``,
``a\\b``, NUL): that is a per-file problem, and ``mirrorflow.tasks.filters.select_files`` skips such a file with
reason ``invalid-filename`` (``mirrorflow.tasks.filenames.parse_filename`` refuses it) while the page's other
files are synced. Hashes that are not valid lowercase-able sha256 digests become ``None``
rather than errors: the file is still listed, and later steps decide what an unverifiable file means.

The field readers these parsers share (types, digests, serials, URL resolution) live in
``mirrorflow.tasks.simple_fields``; ``InvalidPage`` is defined there and re-exported here.

Imports only the standard library and ``packaging``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import canonicalize_name

from mirrorflow.tasks.distributions import DistFile, ListedProject, ProjectListing, ProjectPage, Sha256
from mirrorflow.tasks.simple_fields import (
    SUPPORTED_API_MAJOR,
    InvalidPage,
    Resolver,
    check_api_version,
    json_field,
    json_upload_time,
    provenance_url,
    read_serial,
    resolve_url,
    serial_from_header,
    sha256_or_none,
    typed_value,
)

__all__ = [
    "InvalidPage",
    "SUPPORTED_API_MAJOR",
    "parse_project_json",
    "parse_project_html",
    "parse_listing_json",
    "parse_listing_html",
    "looks_like_project_page",
    "display_name_of",
]

# -- JSON (PEP 691) ---------------------------------------------------------------------------------

_STR, _INT, _DICT = (str,), (int,), (dict,)
_BOOL_OR_STR, _BOOL_OR_DICT = (bool, str), (bool, dict)


def _load_json(data: bytes, *, page_url: str) -> Mapping[str, Any]:
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidPage(page_url, f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidPage(page_url, f"body is not JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError:
        # No simple page nests more than three levels; a hostile one can nest thousands.
        raise InvalidPage(page_url, "body nests too deeply to be a simple page") from None
    if not isinstance(document, dict):
        raise InvalidPage(page_url, f"top level is {type(document).__name__}, not an object")
    meta = document.get("meta", {})
    if not isinstance(meta, dict):
        raise InvalidPage(page_url, f"'meta' is {meta!r}, not an object")
    check_api_version(meta.get("api-version"), page_url=page_url)
    return document


def _json_file(entry: object, index: int, *, page_url: str, resolve: Resolver) -> DistFile:
    # The hot loop of a sync (one call per listed file): type checks take a fast path and the
    # error text is only built for a bad entry. Checks and errors come in the documented order.
    if not isinstance(entry, dict):
        raise InvalidPage(page_url, f"files[{index}] is {entry!r}, not an object")
    filename = json_field(entry, "filename", _STR, index, page_url)
    url = json_field(entry, "url", _STR, index, page_url)
    if filename is None or url is None:
        missing = "filename" if filename is None else "url"
        raise InvalidPage(page_url, f"files[{index}] has no {missing!r}")
    hashes = json_field(entry, "hashes", _DICT, index, page_url) or {}
    yanked = json_field(entry, "yanked", _BOOL_OR_STR, index, page_url)
    # PEP 714 renamed dist-info-metadata to core-metadata; prefer the new key when both are present.
    metadata_key = "core-metadata" if entry.get("core-metadata") is not None else "dist-info-metadata"
    metadata = json_field(entry, metadata_key, _BOOL_OR_DICT, index, page_url)
    size = json_field(entry, "size", _INT, index, page_url)
    if size is not None and size < 0:
        raise InvalidPage(page_url, f"files[{index}]: size {size!r} is negative")
    return DistFile(
        filename=filename,
        url=resolve(url),
        sha256=sha256_or_none(hashes.get("sha256")),
        requires_python=json_field(entry, "requires-python", _STR, index, page_url) or None,
        yanked=yanked is not None and yanked is not False,
        yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
        size=size,
        upload_time=json_upload_time(json_field(entry, "upload-time", _STR, index, page_url)),
        core_metadata=bool(metadata),
        core_metadata_sha256=sha256_or_none(metadata.get("sha256")) if isinstance(metadata, dict) else None,
        provenance=provenance_url(entry.get("provenance"), resolve),
    )


def _status(value: object) -> tuple[str | None, str | None]:
    """PEP 792's ``project-status`` object as ``(status, reason)``; a malformed one is ignored."""
    if not isinstance(value, dict) or not isinstance(value.get("status"), str):
        return None, None
    reason = value.get("reason")
    return value["status"].strip().lower() or None, reason if isinstance(reason, str) and reason else None


def _meta_status(meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The status as the living spec misplaced it for a while (``meta.project-status`` and
    ``meta.project-status-reason``, strings; corrected to PEP 792's top-level object): an index
    written from that text still means it, and a quarantine is worth reading wherever it is."""
    value, reason = meta.get("project-status"), meta.get("project-status-reason")
    if isinstance(value, dict):
        return _status(value)
    if not isinstance(value, str) or not value.strip():
        return None, None
    return value.strip().lower(), reason if isinstance(reason, str) and reason else None


def parse_project_json(data: bytes, *, page_url: str, last_serial_header: str | None = None) -> ProjectPage:
    """Parse a PEP 691 project page (``application/vnd.pypi.simple.v1+json``).

    ``page_url`` is the URL the page was served from (after redirects): file URLs are resolved against
    it. ``last_serial_header`` is the response's ``X-PyPI-Last-Serial``, used when the body has no
    ``meta._last-serial``. Returns a ``ProjectPage``; raises ``InvalidPage``.
    """
    document = _load_json(data, page_url=page_url)
    name = typed_value(document, "name", (str,), page_url=page_url, where="page")
    if not name:
        raise InvalidPage(page_url, "page has no 'name'")
    files = typed_value(document, "files", (list,), page_url=page_url, where="page")
    if files is None:
        raise InvalidPage(page_url, "page has no 'files' list")
    versions = typed_value(document, "versions", (list,), page_url=page_url, where="page") or []
    if not all(isinstance(version, str) for version in versions):
        raise InvalidPage(page_url, f"'versions' is {versions!r}, expected a list of strings")
    serial = read_serial(document.get("meta", {}).get("_last-serial"))
    resolve = Resolver(page_url)
    status, reason = _status(document.get("project-status"))
    if status is None:
        status, reason = _meta_status(document.get("meta", {}))
    parsed_files = tuple(
        _json_file(entry, index, page_url=page_url, resolve=resolve) for index, entry in enumerate(files)
    )
    return ProjectPage(
        name=canonicalize_name(name),
        display_name=display_name_of(name, parsed_files),
        files=parsed_files,
        last_serial=serial if serial is not None else serial_from_header(last_serial_header),
        versions=tuple(versions),
        status=status,
        status_reason=reason,
    )


def parse_listing_json(
    data: bytes, *, page_url: str, last_serial_header: str | None = None
) -> ProjectListing:
    """Parse a PEP 691 ``/simple/`` listing. Returns a ``ProjectListing``; raises ``InvalidPage``."""
    document = _load_json(data, page_url=page_url)
    entries = typed_value(document, "projects", (list,), page_url=page_url, where="page")
    if entries is None:
        raise InvalidPage(page_url, "listing has no 'projects' list")
    projects = []
    for index, entry in enumerate(entries):
        where = f"projects[{index}]"
        if not isinstance(entry, dict):
            raise InvalidPage(page_url, f"{where} is {entry!r}, not an object")
        name = typed_value(entry, "name", (str,), page_url=page_url, where=where)
        if not name:
            raise InvalidPage(page_url, f"{where} has no 'name'")
        serial = read_serial(entry.get("_last-serial"))
        projects.append(ListedProject(canonicalize_name(name), name, serial))
    meta = document.get("meta", {})
    serial = read_serial(meta.get("_last-serial"))
    api_version = meta.get("api-version")
    return ProjectListing(
        projects=tuple(projects),
        last_serial=serial if serial is not None else serial_from_header(last_serial_header),
        extra={"api-version": api_version} if api_version else {},
    )


def looks_like_project_page(head: bytes, *, json_body: bool) -> bool:
    """Whether the first bytes of a page are a project page rather than a listing.

    Tells the two apart without reading a whole listing (the public index's is tens of MB): a JSON
    project page has ``"files"`` and a listing ``"projects"``; an HTML project page is titled
    ``Links for <name>`` (PEP 503) or links to distribution files with a hash fragment.

    >>> looks_like_project_page(b'{"meta": {}, "projects": [{"name": "a"}', json_body=True)
    False
    >>> looks_like_project_page(b'<html><title>Links for simple</title>', json_body=False)
    True
    """
    text = head.decode("utf-8", "replace")
    if json_body:
        files, projects = text.find('"files"'), text.find('"projects"')
        return files >= 0 and (projects < 0 or files < projects)
    lowered = text.lower()
    return "links for " in lowered or "#sha256=" in lowered


# -- HTML (PEP 503) ---------------------------------------------------------------------------------


class _SimpleHTMLParser(HTMLParser):
    """Collects what a simple page holds: anchors (attributes and text), ``<meta>``, ``<title>``,
    ``<base href>`` and a bandersnatch ``<!--SERIAL n-->`` comment. Entities are already unescaped."""

    _SERIAL_RE = re.compile(r"\s*SERIAL\s+(\d+)\s*")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str] = {}
        self.title = ""
        self.base_href: str | None = None
        self.serial: int | None = None
        self._anchor: tuple[dict[str, str | None], list[str]] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._close_anchor()
            self._anchor = (values, [])
        elif tag == "meta" and values.get("name") and values.get("content") is not None:
            self.meta[str(values["name"]).lower()] = str(values["content"]).strip()
        elif tag == "base" and self.base_href is None and values.get("href"):
            self.base_href = values["href"]
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close_anchor()
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._anchor is not None:
            self._anchor[1].append(data)
        if self._in_title:
            self.title += data

    def handle_comment(self, data: str) -> None:
        match = self._SERIAL_RE.fullmatch(data)
        if match is not None:
            self.serial = int(match.group(1))

    def close(self) -> None:
        super().close()
        self._close_anchor()

    def _close_anchor(self) -> None:
        if self._anchor is not None:
            attrs, text = self._anchor
            self.anchors.append((attrs, "".join(text)))
            self._anchor = None


def _html_hash(fragment: str) -> Sha256 | None:
    """Return the sha256 of a ``#sha256=<hex>`` URL fragment; other algorithms give None."""
    algorithm, _, digest = fragment.partition("=")
    return sha256_or_none(digest) if algorithm.strip().lower() == "sha256" else None


def _html_metadata(attrs: Mapping[str, str | None]) -> tuple[bool, Sha256 | None]:
    """Read PEP 658/714 ``data-core-metadata`` (or the older ``data-dist-info-metadata``)."""
    value = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
    if value is None:
        return False, None
    if value.strip().lower() == "true":
        return True, None
    algorithm, sep, _ = value.strip().partition("=")
    # Neither "true" nor "<hashname>=<hashvalue>" (PEP 714): treat the metadata as not available.
    return (True, _html_hash(value.strip())) if sep and algorithm else (False, None)


def _html_file(attrs: Mapping[str, str | None], text: str, base_url: str, *, page_url: str) -> DistFile:
    href = (attrs["href"] or "").strip()
    try:
        url, fragment = urldefrag(urljoin(base_url, href))
        path = urlsplit(url).path
    except ValueError:
        # A URL urllib cannot parse (``http://[::1``): kept as written, for the unsafe-URL rule to skip.
        url, _, fragment = href.partition("#")
        path = url
    # PEP 503: the anchor text is the filename; fall back to the URL's last segment when it is empty.
    filename = text.strip() or unquote(path.rsplit("/", 1)[-1])
    # PEP 592: the attribute's presence yanks; its value, when not empty, is the reason.
    yanked = "data-yanked" in attrs
    yanked_reason = attrs.get("data-yanked") or None
    core_metadata, core_metadata_sha256 = _html_metadata(attrs)
    return DistFile(
        filename=filename,
        url=url,
        sha256=_html_hash(fragment),
        requires_python=(attrs.get("data-requires-python") or "").strip() or None,
        yanked=yanked,
        yanked_reason=yanked_reason,
        core_metadata=core_metadata,
        core_metadata_sha256=core_metadata_sha256,
        provenance=provenance_url(attrs.get("data-provenance"), functools.partial(resolve_url, base_url)),
    )


def _parse_html(text: str, page_url: str) -> _SimpleHTMLParser:
    parser = _SimpleHTMLParser()
    parser.feed(text)
    parser.close()
    check_api_version(parser.meta.get("pypi:repository-version"), page_url=page_url)
    return parser


_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def display_name_of(name: str, files: Sequence[DistFile]) -> str:
    """The project's name as its upstream displays it: ``name``, unless that is the normalized form.

    A PEP 691 page must give the normalized name (``django``), and many PEP 503 pages do too. The
    files still carry the spelling the project was built with (``Django-2.0.tar.gz``): the newest
    listed sdist's name part, else a wheel's (``_`` read as ``-`` in both), when it names the same
    project and differs from the normalized name (in case or dots).
    Pulp shows the JSON API's name, which is that spelling for most projects.

    >>> files = [DistFile("Django-2.0.tar.gz", "u", None), DistFile("Django-2.0-py3-none-any.whl", "u", None)]
    >>> display_name_of("django", files), display_name_of("shelf-reader", [DistFile("shelf_reader-0.1-py2-none-any.whl", "u", None)])
    ('Django', 'shelf-reader')
    >>> display_name_of("django", [DistFile("evil-1.0.tar.gz", "u", None)]), display_name_of("Links-Kept", files)
    ('django', 'Links-Kept')
    """
    if name != canonicalize_name(name):
        return name  # the page already shows a display spelling
    wheel_spelling = None
    for file in reversed(files):
        filename = file.filename
        if filename.endswith(".whl"):
            if wheel_spelling is None:
                spelling = filename.split("-", 1)[0].replace("_", "-")
                if spelling != name and canonicalize_name(spelling) == name:
                    wheel_spelling = spelling
            continue
        for suffix in _SDIST_SUFFIXES:
            if filename.endswith(suffix):
                # Build tools escape "-" as "_" in file names (PEP 625): read it back, as for wheels;
                # a spelling that then differs only in separators tells nothing the name does not.
                spelling = filename[: -len(suffix)].rpartition("-")[0].replace("_", "-")
                if spelling and spelling != name and canonicalize_name(spelling) == name:
                    return spelling
                break
    return wheel_spelling or name


def _html_display_name(parser: _SimpleHTMLParser, page_url: str) -> str:
    # PEP 503 gives no name field: use "Links for <name>" when the page has it (it keeps the
    # display spelling), else the last path segment of the page URL.
    title = " ".join(parser.title.split())
    if title.lower().startswith("links for ") and title[10:].strip():
        return title[10:].strip()
    segment = unquote(urlsplit(page_url).path.rstrip("/").rsplit("/", 1)[-1])
    if not segment:
        raise InvalidPage(page_url, "cannot tell the project name: no title and no name in the URL")
    return segment


def parse_project_html(text: str, *, page_url: str, last_serial_header: str | None = None) -> ProjectPage:
    """Parse a PEP 503 project page (``text/html`` or ``application/vnd.pypi.simple.v1+html``).

    Reads each ``<a href>``: the ``#sha256=`` fragment, ``data-requires-python``, ``data-yanked``
    (present and empty: yanked without a reason) and ``data-core-metadata`` /
    ``data-dist-info-metadata``; a ``<base href>`` is honoured. The serial is taken from a
    bandersnatch ``<!--SERIAL n-->`` comment, else from ``last_serial_header``.
    Returns a ``ProjectPage``; raises ``InvalidPage``.
    """
    parser = _parse_html(text, page_url)
    try:
        base_url = urljoin(page_url, parser.base_href) if parser.base_href else page_url
    except ValueError:
        raise InvalidPage(page_url, f"<base href={parser.base_href!r}> is not a URL") from None
    display_name = _html_display_name(parser, page_url)
    files = tuple(
        _html_file(attrs, anchor_text, base_url, page_url=page_url)
        for attrs, anchor_text in parser.anchors
        if attrs.get("href")
    )
    serial = parser.serial if parser.serial is not None else serial_from_header(last_serial_header)
    status = parser.meta.get("pypi:project-status", "").lower() or None
    return ProjectPage(
        name=canonicalize_name(display_name),
        display_name=display_name_of(display_name, files),
        files=files,
        last_serial=serial,
        status=status,
        status_reason=parser.meta.get("pypi:project-status-reason") or None if status else None,
    )


def parse_listing_html(text: str, *, page_url: str, last_serial_header: str | None = None) -> ProjectListing:
    """Parse a PEP 503 ``/simple/`` listing: one anchor per project, its text the display name.

    Returns a ``ProjectListing`` (no per-project serials: HTML has none); raises ``InvalidPage``.
    """
    parser = _parse_html(text, page_url)
    projects = []
    for attrs, anchor_text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        try:
            name = anchor_text.strip() or unquote(urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])
        except ValueError:
            continue  # no text and an href urllib cannot parse: no name to list
        if name:
            projects.append(ListedProject(canonicalize_name(name), name))
    serial = parser.serial if parser.serial is not None else serial_from_header(last_serial_header)
    api_version = parser.meta.get("pypi:repository-version")
    return ProjectListing(
        projects=tuple(projects),
        last_serial=serial,
        extra={"api-version": api_version} if api_version else {},
    )
