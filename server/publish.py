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

``DIR`` is a symbolic link to a complete tree, and only ever to one: each publication is built
as a new tree under ``.DIR.trees/`` beside it (named ``v<version>.<n>``), and when that tree is
complete ``DIR`` is swapped to it by ``os.replace`` of a new link over the old one, one atomic
rename. A reader resolving ``DIR`` finds the previous tree or the new one, never a missing or half
written one. (A link at ``DIR`` itself, rather than ``DIR/current``, keeps ``DIR`` the web
server's root.) The tree before is kept, for readers still inside it; older ones are removed.

Publishing is incremental: a page whose bytes are those of the tree before, and every file and
``.metadata`` file that tree holds (content-addressed, so unchanged), are hard-linked from it, not
written; only changed pages and new files are written (``Published.written`` counts them). One
publisher at a time per ``DIR`` (a lock file in ``.DIR.trees/``). A ``DIR`` published as a plain
directory by an older mirrorflow is moved into ``.DIR.trees/`` once (for that instant it is absent).

The repository's blocklist (``mirrorflow.tasks.blocklist``) applies as ``mirrorflow serve`` applies
it: a file it blocks is not written and no page links it (in any version, older ones included), and
a project whose every file it blocks has no page and is not listed. A blocked file need not be
stored to publish (``Published.blocked`` counts them).

Errors (``PublishError``, one line, naming the field and value): a version that does not exist, a
file of the version that is not stored (on_demand files never fetched), a ``DIR`` that exists and is
not a publication (or a link to somewhere other than its trees).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mirrorflow.server.advisories import ServedAdvisories
from mirrorflow.server.pages import HTML, HTML_V1, JSON_V1, render_listing, render_project
from mirrorflow.storage.artifacts import ArtifactStore, ArtifactStoreError
from mirrorflow.storage.catalog import NotFound
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.records import PageFile, ProjectEntry, RepositoryState
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.core_metadata import WheelMetadataError, metadata_from_wheel

__all__ = ["MARKER", "PAGES", "PublishError", "Published", "load_version", "publish"]

MARKER = ".mirrorflow-publication"

# The page files, by the media type each holds.
PAGES = (("index.html", HTML), ("index.v1_html", HTML_V1), ("index.v1_json", JSON_V1))


class PublishError(MirrorflowError):
    """A version that cannot be published: ``field``, ``value`` and why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {value!r}: {reason}")
        self.field, self.value, self.reason = field, value, reason


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish`` wrote: the repository, version, directory, the tree ``to`` now links to, counts.

    ``files`` and ``metadata`` count the distribution and ``.metadata`` files of the version;
    ``linked`` those of them hard-linked from the tree before; ``written`` every file written anew
    (files, ``.metadata`` files and pages alike); ``pages_linked`` the pages unchanged since then.
    """

    repository: str
    version: int
    to: Path
    tree: Path
    projects: int
    files: int
    metadata: int
    linked: int
    written: int
    pages_linked: int
    blocked: int = 0


def publish(
    serving: ServingCatalog, store: ArtifactStore, repository: str, version: int | None, to: Path
) -> Published:
    """Write version ``version`` (None: the latest) of ``repository`` and point ``to`` at it.

    Returns what was written; raises ``PublishError`` (and then ``to`` is as it was).
    """
    trees = to.with_name(f".{to.name}.trees")
    _current_tree(to, trees)  # refused before anything is read or written
    number, projects, pages, blocked = load_version(serving, repository, version)
    statuses = serving.project_statuses(serving.repository(repository).id, number)  # PEP 792
    try:
        trees.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, on a read-only file system, without permission
        raise PublishError("to", str(to), f"cannot be created: {exc.strerror or exc}") from exc
    with _locked(trees):
        previous = _current_tree(to, trees)
        if previous is not None and not to.is_symlink():  # a plain directory, from before the links
            previous = _adopt(to, trees)
        tree = trees / f"v{number}.{_next_sequence(trees)}"
        tree.mkdir()
        writer = _Writer(store, tree, previous=previous)
        try:
            _write_tree(writer, repository, number, projects, pages, to, statuses)
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)  # never pointed to: readers never saw it
            raise
        _point(to, tree)
        _prune(trees, keep={tree.name} | ({previous.name} if previous is not None else set()))
    return Published(
        repository,
        number,
        to,
        tree,
        len(projects),
        writer.files,
        writer.metadata,
        writer.linked,
        writer.written,
        writer.pages_linked,
        blocked,
    )


def load_version(
    serving: ServingCatalog, repository: str, version: int | None
) -> tuple[int, list[ProjectEntry], dict[str, list[PageFile]], int]:
    """The version to publish: its number, projects, files by project, and how many files it blocks.

    Raises ``PublishError`` for an unknown repository or version, or a file that is not stored.
    """
    try:
        state = serving.repository(repository)
    except NotFound:
        raise PublishError("repository", repository, "no such repository") from None
    number = state.latest_version if version is None else version
    if not state.has_version(number):
        raise PublishError("version", number, f"repository {repository!r} has no such version")
    projects, pages, blocked = _version_pages(serving, state, number)
    missing = [f.filename for files in pages.values() for f in files if f.artifact_sha256 is None]
    if missing:
        raise PublishError(
            "version",
            number,
            f"{len(missing)} file(s) are not stored (first: {missing[0]!r}); fetch them first "
            "(a sync with policy 'immediate', or request them from mirrorflow serve)",
        )
    return number, projects, pages, blocked


def _version_pages(
    serving: ServingCatalog, state: RepositoryState, number: int
) -> tuple[list[ProjectEntry], dict[str, list[PageFile]], int]:
    """The version's projects and their files, without what ``mirrorflow serve`` refuses; and how many
    that leaves out: the repository's blocklist and the advisories its prefixes block
    (``mirrorflow.server.advisories``), in every version, as serve applies them.

    A project left with no file is left out of the listing too, and its serial is recomputed
    from the files that remain (as ``mirrorflow serve`` renders them).
    """
    listed = serving.projects(state.id, number, pull_through=False)
    pages = {p.normalized_name: serving.project_files(state.id, number, p.normalized_name) for p in listed}
    blocklist = Blocklist.parse(state.blocklist) if state.blocklist else None
    advisories = ServedAdvisories(serving.catalog)
    advisories.refresh([state])
    if blocklist is None and not state.advisories:
        return listed, pages, 0

    def refused(f: PageFile) -> bool:
        if blocklist is not None and blocklist.blocks(f.name, f.filename, f.version) is not None:
            return True
        return advisories.blocking(state, f.name, f.version) is not None

    kept: dict[str, list[PageFile]] = {}
    blocked = 0
    for normalized, files in pages.items():
        allowed = [f for f in files if not refused(f)]
        blocked += len(files) - len(allowed)
        if allowed:
            kept[normalized] = allowed
    projects = [
        ProjectEntry(p.normalized_name, p.display_name, max(f.package_id for f in kept[p.normalized_name]))
        for p in listed
        if p.normalized_name in kept
    ]
    return projects, kept, blocked


def _write_tree(
    writer: _Writer,
    repository: str,
    number: int,
    projects: list[ProjectEntry],
    pages: dict[str, list[PageFile]],
    to: Path,
    statuses: dict[str, tuple[str, str | None]],
) -> None:
    """Write the whole tree; the marker last, so a tree holding it is complete.

    Pages carry their project's PEP 792 status (``statuses``); a quarantined project, which holds no
    file, gets no page: a static tree lists what it serves.
    """
    for normalized, files in pages.items():
        files = [writer.file(f) for f in files]
        serial = max(f.package_id for f in files)
        for name, media_type in PAGES:
            body = render_project(
                files[0].name,
                normalized,
                files,
                serial=serial,
                media_type=media_type,
                files_prefix="../../files/",
                status=statuses.get(normalized),
            )
            writer.write(Path("simple", normalized, name), body)
    serial = max((p.serial for p in projects), default=0)
    for name, media_type in PAGES:
        writer.write(Path("simple", name), render_listing(projects, serial=serial, media_type=media_type))
    writer.write(Path("nginx.conf"), _nginx_conf(to).encode())
    marker = {"repository": repository, "version": number, "projects": len(projects)}
    writer.write(Path(MARKER), (json.dumps(marker) + "\n").encode())


def _current_tree(to: Path, trees: Path) -> Path | None:
    """The tree ``to`` links to now (None: nothing published yet); refuse what is not a publication."""
    if to.is_symlink():
        target = Path(os.path.realpath(to))
        if target.parent != trees.resolve() or not (target / MARKER).is_file():
            raise PublishError(
                "to", str(to), f"is a link to {str(target)!r}, not to a tree of {str(trees)!r}"
            )
        return target
    if not to.exists() or (to.is_dir() and not any(to.iterdir())):
        return None
    if to.is_dir() and (to / MARKER).is_file():
        return to
    raise PublishError("to", str(to), "exists and holds something other than a publication")


@contextlib.contextmanager
def _locked(trees: Path) -> Iterator[None]:
    with (trees / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _adopt(to: Path, trees: Path) -> Path:
    """Move a plain-directory publication into ``trees`` (the one moment ``to`` is absent)."""
    version = json.loads((to / MARKER).read_text()).get("version", 0)
    adopted = trees / f"v{version}.{_next_sequence(trees)}"
    to.rename(adopted)
    _point(to, adopted)
    return adopted


def _next_sequence(trees: Path) -> int:
    numbers = [
        int(p.name.rpartition(".")[2]) for p in trees.glob("v*.*") if p.name.rpartition(".")[2].isdigit()
    ]
    return max(numbers, default=0) + 1


def _point(to: Path, tree: Path) -> None:
    """Make ``to`` a link to ``tree`` in one rename (a relative link: the pair moves together)."""
    link = to.with_name(f".{to.name}.link-{tree.name}")
    link.unlink(missing_ok=True)
    link.symlink_to(Path(tree.parent.name, tree.name))
    os.replace(link, to)


def _prune(trees: Path, *, keep: set[str]) -> None:
    """Remove every tree but ``keep`` (the current and the one before; also trees a crash left)."""
    for path in trees.iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


class _Writer:
    """Writes one tree, linking from ``previous`` (the tree before) what is unchanged."""

    def __init__(self, store: ArtifactStore, root: Path, *, previous: Path | None) -> None:
        self.store, self.root, self.previous = store, root, previous
        self.files = self.metadata = self.linked = self.written = self.pages_linked = 0

    def write(self, relative: Path, body: bytes) -> None:
        """Write a page (or link the tree before's, when its bytes are these)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        before = self._before(relative)
        unchanged = before is not None and before.stat().st_size == len(body) and before.read_bytes() == body
        if unchanged and before is not None and self._link(before, path):
            self.pages_linked += 1
            return
        path.write_bytes(body)
        self.written += 1

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

    def _before(self, relative: Path) -> Path | None:
        if self.previous is None:
            return None
        path = self.previous / relative
        return path if path.is_file() else None

    def _link(self, before: Path, target: Path) -> bool:
        try:
            os.link(before, target)
        except OSError:  # a file system without hard links: written instead
            return False
        return True

    def _copy(self, relative: Path, sha256: str) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        before = self._before(relative)
        if before is not None and self._link(before, target):  # content-addressed: unchanged
            self.linked += 1
            return
        try:
            with target.open("wb") as out:
                for chunk in self.store.open_chunks(sha256):
                    out.write(chunk)
        except ArtifactStoreError as exc:
            raise PublishError("file", str(relative), f"cannot be read from the store: {exc}") from exc
        self.written += 1

    def _metadata_from_wheel(self, relative: Path, file: PageFile) -> str | None:
        metadata = relative.with_name(file.filename + ".metadata")
        before = self._before(metadata)
        if before is not None:  # read from this very wheel (same digest) and checked when written
            data = before.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if file.metadata_sha256 in (None, digest) and self._link(before, self.root / metadata):
                self.linked += 1
                return digest
        try:
            with (self.root / relative).open("rb") as wheel:
                data = metadata_from_wheel(iter(lambda: wheel.read(1 << 16), b""), filename=file.filename)
        except WheelMetadataError:
            return None  # a wheel without readable metadata: published without it
        if file.metadata_sha256 is not None and hashlib.sha256(data).hexdigest() != file.metadata_sha256:
            return None  # it is not what the index said it is: not offered
        (self.root / metadata).write_bytes(data)
        self.written += 1
        return hashlib.sha256(data).hexdigest()


def _nginx_conf(root: Path) -> str:
    """A server block for nginx's ``http {}``: the page by ``Accept`` (JSON when preferred first)."""
    # The link's own path, not the tree it resolves to: nginx follows the link at each request.
    root_text = quote(os.path.abspath(root), safe="/._-~")
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
