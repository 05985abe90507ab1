"""Render the pages of a fixture index: PEP 503 HTML and PEP 691 JSON (with PEP 592, 658/714, 700 and 740).

The pages are written the way a real index serves them: HTML anchors carry ``#sha256=``,
``data-requires-python`` (escaped), ``data-yanked`` and ``data-core-metadata`` /
``data-dist-info-metadata``, with a bandersnatch-style ``<!--SERIAL n-->`` comment; JSON pages carry
``meta._last-serial``, ``size``, ``upload-time`` and ``versions``. File URLs are relative to the page
(``../../files/ab/<file>``) so that clients must resolve them.

``render_legacy_json`` writes a project's document of the legacy JSON API (``/pypi/<project>/json``:
``info``, ``last_serial``, ``releases``, ``urls``), which mirroring tools such as bandersnatch read.
Its file URLs are paths on the server (``/packages/ab/<file>``, the public index's file-host layout,
which bandersnatch requires); the server makes them absolute, as that API's URLs are.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from mirrorflow.fixtureindex.builder import FixtureFile

__all__ = ["API_VERSION", "legacy_package_type", "render_legacy_json", "render_listing", "render_project"]

#: The simple API version the fixture pages declare (PEP 700 fields need 1.1).
API_VERSION = "1.1"
#: The version of a page that carries a PEP 792 project status.
STATUS_API_VERSION = "1.4"

Entry = tuple["FixtureFile", str, "bytes | None"]


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None  # Legacy .egg / .exe / ... files: no version PEP 700 can list from the name.


def _file_url(filename: str, digest: str) -> str:
    return f"../../files/{digest[:2]}/{quote(filename)}"


def _json_file(file: FixtureFile, digest: str, metadata: bytes | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": _file_url(file.filename, digest),
        "hashes": {"sha256": digest},
        "requires-python": file.requires_python,
        "size": len(file.content),
    }
    if file.yanked is not False:
        entry["yanked"] = file.yanked if isinstance(file.yanked, str) and file.yanked else True
    if file.upload_time is not None:
        entry["upload-time"] = file.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if metadata is not None:
        # PEP 714: serve both keys, the new one and the one older clients look for.
        hashes = {"sha256": hashlib.sha256(metadata).hexdigest()}
        entry["core-metadata"] = hashes
        entry["dist-info-metadata"] = hashes
    if file.provenance is not None:  # PEP 740 (simple API 1.3)
        entry["provenance"] = _file_url(file.filename, digest) + ".provenance"
    return entry


def _html_anchor(file: FixtureFile, digest: str, metadata: bytes | None) -> str:
    attrs = [f'href="{html.escape(_file_url(file.filename, digest))}#sha256={digest}"']
    if file.requires_python is not None:
        attrs.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.yanked is not False:
        reason = file.yanked if isinstance(file.yanked, str) else ""
        attrs.append(f'data-yanked="{html.escape(reason)}"')
    if metadata is not None:
        value = f"sha256={hashlib.sha256(metadata).hexdigest()}"
        attrs += [f'data-core-metadata="{value}"', f'data-dist-info-metadata="{value}"']
    if file.provenance is not None:
        attrs.append(f'data-provenance="{html.escape(_file_url(file.filename, digest))}.provenance"')
    return f"    <a {' '.join(attrs)}>{html.escape(file.filename)}</a><br />"


def render_project(
    display_name: str,
    entries: Sequence[Entry],
    *,
    last_serial: int,
    status: str | None = None,
    reason: str | None = None,
) -> tuple[str, str]:
    """Return ``(html, json)`` for one project's page.

    With a PEP 792 ``status`` the page declares API 1.4 and carries it (JSON ``project-status``,
    HTML ``pypi:project-status`` meta tags); a quarantined project's page lists no file.
    """
    if status == "quarantined":
        entries = ()
    versions = {v for v in (_version_of(file.filename) for file, _, _ in entries) if v is not None}
    api_version = API_VERSION if status is None else STATUS_API_VERSION
    document: dict[str, Any] = {
        "meta": {"api-version": api_version, "_last-serial": last_serial},
        "name": canonicalize_name(display_name),
        "versions": [str(version) for version in sorted(versions)],
        "files": [_json_file(file, digest, metadata) for file, digest, metadata in entries],
    }
    status_tags = []
    if status is not None:
        document["project-status"] = {"status": status, **({"reason": reason} if reason else {})}
        status_tags.append(f'    <meta name="pypi:project-status" content="{html.escape(status)}">')
        if reason:
            status_tags.append(
                f'    <meta name="pypi:project-status-reason" content="{html.escape(reason)}">'
            )
    title = html.escape(f"Links for {display_name}")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            f'    <meta name="pypi:repository-version" content="{api_version}">',
            *status_tags,
            f"    <title>{title}</title>",
            "  </head>",
            "  <body>",
            f"    <h1>{title}</h1>",
            *(_html_anchor(file, digest, metadata) for file, digest, metadata in entries),
            "  </body>",
            "</html>",
            f"<!--SERIAL {last_serial}-->",
            "",
        ]
    )
    return page, json.dumps(document, indent=1) + "\n"


def render_listing(projects: Iterable[tuple[str, int]], *, last_serial: int) -> tuple[str, str]:
    """Return ``(html, json)`` for the ``/simple/`` listing of ``(display name, last serial)`` pairs."""
    projects = sorted(projects, key=lambda item: canonicalize_name(item[0]))
    document = {
        "meta": {"api-version": API_VERSION, "_last-serial": last_serial},
        "projects": [{"name": name, "_last-serial": serial} for name, serial in projects],
    }
    anchors = [
        f'    <a href="{quote(canonicalize_name(name))}/">{html.escape(name)}</a><br />'
        for name, _ in projects
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
            "    <title>Simple index</title>",
            "  </head>",
            "  <body>",
            *anchors,
            "  </body>",
            "</html>",
            "",
        ]
    )
    return page, json.dumps(document, indent=1) + "\n"


#: The legacy JSON API's ``packagetype`` of each distribution suffix (anything else is an sdist).
_PACKAGE_TYPES = {
    ".whl": "bdist_wheel",
    ".egg": "bdist_egg",
    ".exe": "bdist_wininst",
    ".msi": "bdist_msi",
    ".dmg": "bdist_dmg",
    ".rpm": "bdist_rpm",
}


def legacy_package_type(filename: str) -> str:
    """Return the legacy JSON API's ``packagetype`` for ``filename``.

    >>> legacy_package_type("demo-1.0-py3-none-any.whl"), legacy_package_type("demo-1.0.tar.gz")
    ('bdist_wheel', 'sdist')
    """
    for suffix, package_type in _PACKAGE_TYPES.items():
        if filename.endswith(suffix):
            return package_type
    return "sdist"


def _release_of(display_name: str, filename: str) -> str:
    """The release a file belongs to: its version, or for a name ``packaging`` refuses, a best guess.

    The guess is the text after the project name up to the next ``-`` (``Demo-0.9.win32.exe`` gives
    ``0.9.win32``): the public index knows each file's release from its upload; a fixture only has names.
    """
    version = _version_of(filename)
    if version is not None:
        return str(version)
    head = filename[: len(display_name)]
    rest = (
        filename[len(display_name) + 1 :]
        if canonicalize_name(head) == canonicalize_name(display_name)
        else filename
    )
    for suffix in (".tar.gz", ".tar.bz2", ".tgz", ".zip", *_PACKAGE_TYPES):
        rest = rest.removesuffix(suffix)
    return rest.split("-", 1)[0]


def _python_version(filename: str, package_type: str) -> str | None:
    if package_type == "sdist":
        return "source"
    if package_type == "bdist_wheel":
        return filename.split("-")[-3]  # the python tag: name-version[-build]-python-abi-platform.whl
    return None


def _legacy_file(file: FixtureFile, digest: str) -> dict[str, Any]:
    package_type = legacy_package_type(file.filename)
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": f"/packages/{digest[:2]}/{quote(file.filename)}",
        "digests": {"md5": hashlib.md5(file.content, usedforsecurity=False).hexdigest(), "sha256": digest},
        "size": len(file.content),
        "packagetype": package_type,
        "python_version": _python_version(file.filename, package_type),
        "requires_python": file.requires_python,
        "yanked": file.yanked is not False,
        "yanked_reason": file.yanked if isinstance(file.yanked, str) and file.yanked else None,
    }
    if file.upload_time is not None:  # The public index always has one; a fixture file may not.
        uploaded = file.upload_time.astimezone(UTC)
        entry["upload_time"] = uploaded.strftime("%Y-%m-%dT%H:%M:%S")
        entry["upload_time_iso_8601"] = uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return entry


def render_legacy_json(display_name: str, entries: Sequence[Entry], *, last_serial: int) -> str:
    """Return the legacy JSON API document of one project (file URLs as server paths, see above)."""
    releases: dict[str, list[dict[str, Any]]] = {}
    for file, digest, _ in entries:
        releases.setdefault(_release_of(display_name, file.filename), []).append(_legacy_file(file, digest))
    parsed = [Version(v) for v in releases if _parses(v)]
    latest = str(max(parsed)) if parsed else (next(iter(releases), None))
    document = {
        "info": {"name": display_name, "version": latest, "summary": None, "requires_python": None},
        "last_serial": last_serial,
        "releases": releases,
        "urls": releases.get(latest, []) if latest is not None else [],
        "vulnerabilities": [],
    }
    return json.dumps(document, indent=1) + "\n"


def _parses(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True
