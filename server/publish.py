"""Publish a repository version as static files that any web server, S3 website or CDN can serve.

The tree under ``DIR``::

    simple/index.html, index.v1_html, index.v1_json            the project listing (PEP 503 / 691)
    simple/<project>/index.html, index.v1_html, index.v1_json  each project's page
    files/<sha256>/<filename>                                  the distribution files
    files/<sha256>/<filename>.metadata                         PEP 658 core metadata of wheels
    nginx.conf                                                 a server block negotiating by Accept
    .mirrorflow-publication                                    what was published (one JSON line)

A plain static server (``python -m http.server``) serves ``index.html`` (PEP 503 HTML, which pip and
uv read); nginx with ``nginx.conf`` serves JSON to clients that prefer it, as bandersnatch's tree
does. Pages link files relatively (``../../files/...``), so the tree serves from any URL prefix.
A page advertises core metadata only where the tree holds it.

Publishing builds the whole tree beside ``DIR`` (``DIR.partial``) and then swaps it in, so a reader
never sees a version half written (the swap is two renames: for that instant ``DIR`` is absent).
Files already published under ``DIR`` are hard-linked into the new tree rather than copied again.

Errors (``PublishError``, one line, naming the field and value): a version that does not exist, a
file of the version that is not stored (on_demand files never fetched), a ``DIR`` that exists and is
not a publication.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mirrorflow.server.pages import HTML, HTML_V1, JSON_V1, render_listing, render_project
from mirrorflow.storage.artifacts import ArtifactStore, ArtifactStoreError
from mirrorflow.storage.catalog import NotFound
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.records import PageFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.core_metadata import WheelMetadataError, metadata_from_wheel

__all__ = ["MARKER", "PublishError", "Published", "publish"]

MARKER = ".mirrorflow-publication"

# The page files, by the media type each holds.
_PAGES = (("index.html", HTML), ("index.v1_html", HTML_V1), ("index.v1_json", JSON_V1))


class PublishError(MirrorflowError):
    """A version that cannot be published: ``field``, ``value`` and why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value!r}: {reason}")
        self.field, self.value, self.reason = field, value, reason


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish`` wrote: the repository, version, directory and counts."""

    repository: str
    version: int
    to: Path
    projects: int
    files: int
    metadata: int
    linked: int


def publish(
    serving: ServingCatalog, store: ArtifactStore, repository: str, version: int | None, to: Path
) -> Published:
    """Write version ``version`` (None: the latest) of ``repository`` under ``to``. Raises ``PublishError``."""
    try:
        state = serving.repository(repository)
    except NotFound:
        raise PublishError("repository", repository, "no such repository") from None
    number = state.latest_version if version is None else version
    if not state.has_version(number):
        raise PublishError("version", number, f"repository {repository!r} has no such version")
    if to.exists() and any(to.iterdir()) and not (to / MARKER).is_file():
        raise PublishError("to", str(to), "exists and holds something other than a publication")
    projects = serving.projects(state.id, number, pull_through=False)
    pages = {p.normalized_name: serving.project_files(state.id, number, p.normalized_name) for p in projects}
    missing = [f.filename for files in pages.values() for f in files if f.artifact_sha256 is None]
    if missing:
        raise PublishError(
            "version",
            number,
            f"{len(missing)} file(s) are not stored (first: {missing[0]!r}); fetch them first "
            "(a sync with policy 'immediate', or request them from mirrorflow serve)",
        )
    partial = to.with_name(to.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    writer = _Writer(store, partial, previous=to)
    for normalized, files in pages.items():
        files = [writer.file(f) for f in files]
        serial = max(f.package_id for f in files)
        for name, media_type in _PAGES:
            body = render_project(
                files[0].name,
                normalized,
                files,
                serial=serial,
                media_type=media_type,
                files_prefix="../../files/",
            )
            writer.write(Path("simple", normalized, name), body)
    serial = max((p.serial for p in projects), default=0)
    for name, media_type in _PAGES:
        writer.write(Path("simple", name), render_listing(projects, serial=serial, media_type=media_type))
    writer.write(Path("nginx.conf"), _nginx_conf(to).encode())
    marker = {"repository": repository, "version": number, "projects": len(projects)}
    writer.write(Path(MARKER), (json.dumps(marker) + "\n").encode())
    _swap(partial, to)
    return Published(repository, number, to, len(projects), writer.files, writer.metadata, writer.linked)


class _Writer:
    def __init__(self, store: ArtifactStore, root: Path, *, previous: Path) -> None:
        self.store, self.root, self.previous = store, root, previous
        self.files = self.metadata = self.linked = 0

    def write(self, relative: Path, body: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def file(self, file: PageFile) -> PageFile:
        """Write a file (and a wheel's core metadata); return it as the page lists it."""
        relative = Path("files", file.sha256, file.filename)
        self._copy(relative, file.sha256)
        self.files += 1
        digest = file.core_metadata_sha256
        if digest is not None:
            self._copy(relative.with_name(file.filename + ".metadata"), digest)
        elif file.filename.endswith(".whl"):
            digest = self._metadata_from_wheel(relative, file)
        if digest is None:  # the tree holds no metadata of it: the page offers none
            return file._replace(has_metadata=False, metadata_sha256=None, artifact_sha256=None)
        self.metadata += 1
        return file._replace(core_metadata_sha256=digest)

    def _copy(self, relative: Path, sha256: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.previous / relative, target)  # published before: content-addressed, unchanged
            self.linked += 1
            return
        except OSError:
            pass
        try:
            with target.open("wb") as out:
                for chunk in self.store.open_chunks(sha256):
                    out.write(chunk)
        except ArtifactStoreError as exc:
            raise PublishError("file", str(relative), f"cannot be read from the store: {exc}") from exc

    def _metadata_from_wheel(self, relative: Path, file: PageFile) -> str | None:
        try:
            with (self.root / relative).open("rb") as wheel:
                data = metadata_from_wheel(iter(lambda: wheel.read(1 << 16), b""), filename=file.filename)
        except WheelMetadataError:
            return None  # a wheel without readable metadata: published without it
        if file.metadata_sha256 is not None and hashlib.sha256(data).hexdigest() != file.metadata_sha256:
            return None  # it is not what the index said it is: not offered
        self.write(relative.with_name(file.filename + ".metadata"), data)
        return hashlib.sha256(data).hexdigest()


def _swap(partial: Path, to: Path) -> None:
    if not to.exists():
        partial.rename(to)
        return
    old = to.with_name(to.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    to.rename(old)
    partial.rename(to)
    shutil.rmtree(old, ignore_errors=True)


def _nginx_conf(root: Path) -> str:
    """A server block for nginx's ``http {}``: the page by ``Accept`` (JSON when preferred first)."""
    root_text = quote(str(root.resolve()), safe="/._-~")
    return f"""# mirrorflow publication: include this file in nginx's http {{}} block (set listen and root).
map $http_accept $mirrorflow_page {{
    default index.html;
    "~application/vnd\\.pypi\\.simple\\.(v1|latest)\\+json" index.v1_json;
    "~application/vnd\\.pypi\\.simple\\.(v1|latest)\\+html" index.v1_html;
}}
server {{
    listen 8080;
    root {root_text};
    location /simple/ {{
        index $mirrorflow_page;
        types {{
            text/html html;
            application/vnd.pypi.simple.v1+html v1_html;
            application/vnd.pypi.simple.v1+json v1_json;
        }}
        add_header Vary Accept;
    }}
    location /files/ {{
        types {{ application/zip whl; application/gzip gz; text/plain metadata; }}
        default_type application/octet-stream;
    }}
}}
"""
