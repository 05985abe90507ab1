"""Publish a repository version as static files that any web server, S3 website or CDN can serve.

The tree under ``DIR``::

    simple/index.html, index.v1_html, index.v1_json            the project listing (PEP 503 / 691)
    simple/<project>/index.html, index.v1_html, index.v1_json  each project's page
    files/<sha256>/<filename>                                  the distribution files
    files/<sha256>/<filename>.metadata                         PEP 658 core metadata of wheels
    files/<sha256>/<filename>.provenance                       PEP 740 provenance objects
    nginx.conf                                                 a server block negotiating by Accept
    .mirrorflow-publication                                    what was published (one JSON line)

A plain static server (``python -m http.server``) serves ``index.html`` (PEP 503 HTML, which pip and
uv read); nginx with ``nginx.conf`` serves JSON to clients that prefer it, as bandersnatch's tree
does. Pages link files relatively (``../../files/...``), so the tree serves from any URL prefix.
A page advertises core metadata only where the tree holds it.

Pages say what ``mirrorflow serve``'s pages say for the same version (``version_pages``): each
project's PEP 792 status (API 1.4 where a status exists; a quarantined project holding no file has
a page with its status and no file, and is not listed, as serve answers), and PEP 740
``provenance`` / ``data-provenance`` links to ``<file>.provenance``, the object byte for byte, for
the provenance the repository serves (the one its own remote named, ``mirrorflow.storage.provenance``).
A provenance named but never fetched (``on_demand``, fetched by serve on first request) is neither
written nor advertised (``Published.provenance_missing``): a static tree cannot fetch it.

``DIR`` is a symbolic link to a complete tree, and only ever to one: each publication is built
as a new tree under ``.DIR.trees/`` beside it (named ``v<version>.<n>``), and when that tree is
complete ``DIR`` is swapped to it by ``os.replace`` of a new link over the old one, one atomic
rename. A reader resolving ``DIR`` finds the previous tree or the new one, never a missing or half
written one. (A link at ``DIR`` itself, rather than ``DIR/current``, keeps ``DIR`` the web
server's root.) The tree before is kept, for readers still inside it; older ones are removed.

Publishing is incremental: a page or ``.provenance`` file whose bytes are those of the tree
before, and every file and ``.metadata`` file that tree holds (content-addressed, so unchanged),
are hard-linked from it, not written; only changed pages and new files are written (``Published.written`` counts them). One
publisher at a time per ``DIR`` (a lock file in ``.DIR.trees/``). A ``DIR`` published as a plain
directory by an older mirrorflow is moved into ``.DIR.trees/`` once (for that instant it is absent).

The repository's blocklist (``mirrorflow.tasks.blocklist``) applies as ``mirrorflow serve`` applies
it: a file it blocks is not written and no page links it (in any version, older ones included), and
a project whose every file it blocks has no page and is not listed. A blocked file need not be
stored to publish (``Published.blocked`` counts them).

Errors (``PublishError``, one line, naming the field and value): a version that does not exist, a
file of the version that is not stored (on_demand files never fetched: ``unstored_files`` names
them, and ``mirrorflow repository publish --fetch-missing`` fetches them first), a ``DIR`` that exists
and is not a publication (or a link to somewhere other than its trees).
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
from mirrorflow.server.provenance import PROVENANCE_SUFFIX
from mirrorflow.server.refusals import Refusals
from mirrorflow.storage.artifacts import ArtifactStore, ArtifactStoreError
from mirrorflow.storage.catalog import NotFound
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.provenance import provenances_of
from mirrorflow.storage.records import PageFile, ProjectEntry, RepositoryState
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.core_metadata import WheelMetadataError, metadata_from_wheel

__all__ = [
    "FILES_PREFIX",
    "MARKER",
    "PAGES",
    "PublishError",
    "Published",
    "VersionToPublish",
    "load_version",
    "publish",
    "unstored_files",
    "version_pages",
]

MARKER = ".mirrorflow-publication"

# The page files, by the media type each holds.
PAGES = (("index.html", HTML), ("index.v1_html", HTML_V1), ("index.v1_json", JSON_V1))
#: How a page links the files (relative: the tree serves from any URL prefix).
FILES_PREFIX = "../../files/"


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
    (files, ``.metadata`` and ``.provenance`` files and pages alike); ``pages_linked`` the pages
    unchanged since then. ``provenance`` counts the ``.provenance`` files; ``provenance_missing``
    the provenance the repository names but never fetched (not published, not advertised).
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
    provenance: int = 0
    provenance_missing: int = 0


def publish(
    serving: ServingCatalog, store: ArtifactStore, repository: str, version: int | None, to: Path
) -> Published:
    """Write version ``version`` (None: the latest) of ``repository`` and point ``to`` at it.

    Returns what was written; raises ``PublishError`` (and then ``to`` is as it was).
    """
    trees = to.with_name(f".{to.name}.trees")
    _current_tree(to, trees)  # refused before anything is read or written
    loaded = load_version(serving, repository, version)
    try:
        trees.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # under a file, on a read-only file system, without permission
        raise PublishError("to", str(to), f"cannot be created: {exc.strerror or exc}") from exc
    with _locked(trees):
        previous = _current_tree(to, trees)
        if previous is not None and not to.is_symlink():  # a plain directory, from before the links
            previous = _adopt(to, trees)
        tree = trees / f"v{loaded.number}.{_next_sequence(trees)}"
        tree.mkdir()
        writer = _Writer(store, tree, previous=previous)
        try:
            _write_tree(writer, repository, loaded, to)
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)  # never pointed to: readers never saw it
            raise
        _point(to, tree)
        _prune(trees, keep={tree.name} | ({previous.name} if previous is not None else set()))
    return Published(
        repository,
        loaded.number,
        to,
        tree,
        len(loaded.projects),
        writer.files,
        writer.metadata,
        writer.linked,
        writer.written,
        writer.pages_linked,
        loaded.blocked,
        writer.provenance,
        loaded.provenance_missing,
    )


@dataclass(frozen=True, slots=True)
class VersionToPublish:
    """A version as ``mirrorflow serve`` shows it, ready to write as static files.

    ``pages``: the files of each listed project, without what serve refuses (``blocked`` counts
    them). ``statuses``: each project's PEP 792 status at the version. ``status_only``: the projects
    serve answers with a status page and no file (quarantined, holding no file in the version).
    ``provenance``: the PEP 740 objects, by distribution digest, that the repository serves for the
    files of ``pages`` (those its own remote named) and that are fetched; ``provenance_missing``
    counts those named but never fetched (``on_demand``: serve fetches them on first request,
    a static tree cannot), which the pages then do not advertise. ``serials``: the serial of every
    page, as serve shows it (``mirrorflow.storage.records.ProjectEntry``).
    """

    number: int
    projects: list[ProjectEntry]
    pages: dict[str, list[PageFile]]
    blocked: int
    statuses: dict[str, tuple[str, str | None]]
    status_only: list[str]
    provenance: dict[str, bytes]
    provenance_missing: int
    serials: dict[str, int]


def load_version(serving: ServingCatalog, repository: str, version: int | None) -> VersionToPublish:
    """The version to publish, as serve shows it (``VersionToPublish``).

    Raises ``PublishError`` for an unknown repository or version, or a file that is not stored.
    """
    state, number = _version(serving, repository, version)
    projects, pages, held, blocked = _version_pages(serving, state, number)
    missing = [f.filename for files in pages.values() for f in files if f.artifact_sha256 is None]
    if missing:
        raise PublishError(
            "version",
            number,
            f"{len(missing)} file(s) are not stored (first: {missing[0]!r}); fetch them first: "
            "rerun publish with --fetch-missing to fetch them from the upstream (or sync with policy "
            "'immediate', or request them from mirrorflow serve)",
        )
    statuses = serving.project_statuses(state.id, number)
    # As serve answers: a project holding no file at all in the version, quarantined, has a page.
    status_only = sorted(n for n, s in statuses.items() if s[0] == "quarantined" and n not in held)
    named = provenances_of(serving.catalog, state.id, (f.sha256 for fs in pages.values() for f in fs))
    provenance = {digest: p.body for digest, p in named.items() if p.body is not None}
    serials = {p.normalized_name: p.serial for p in projects}
    serials.update((n, serving.project_page(state.id, number, n).serial) for n in status_only)
    return VersionToPublish(
        number,
        projects,
        pages,
        blocked,
        statuses,
        status_only,
        provenance,
        len(named) - len(provenance),
        serials,
    )


def unstored_files(serving: ServingCatalog, repository: str, version: int | None) -> list[PageFile]:
    """The files version ``version`` (None: the latest) would publish that are not stored (synced
    on_demand or streamed, never fetched); what the blocklist and advisories leave out is not
    among them. Raises ``PublishError`` for an unknown repository or version."""
    state, number = _version(serving, repository, version)
    _, pages, _, _ = _version_pages(serving, state, number)
    return [f for files in pages.values() for f in files if f.artifact_sha256 is None]


def _version(serving: ServingCatalog, repository: str, version: int | None) -> tuple[RepositoryState, int]:
    """The repository's state and the version's number (None: the latest); raises ``PublishError``."""
    try:
        state = serving.repository(repository)
    except NotFound:
        raise PublishError("repository", repository, "no such repository") from None
    number = state.latest_version if version is None else version
    if not state.has_version(number):
        raise PublishError("version", number, f"repository {repository!r} has no such version")
    return state, number


def version_pages(
    version: VersionToPublish, pages: dict[str, list[PageFile]]
) -> Iterator[tuple[str, bytes, str]]:
    """Every page of ``version`` as ``(key, body, media type)``: the projects' (``pages``: their files
    as the publication holds them), then the listing's, so a writer that writes in this order lists
    a project only once its page is there.

    Rendered as ``mirrorflow serve`` renders them (PEP 792 status, PEP 740 provenance where the
    publication holds it); file URLs are relative (``../../files/``).
    """
    for normalized in [*pages, *version.status_only]:
        files = pages.get(normalized, [])
        for name, media_type in PAGES:
            body = render_project(
                files[0].name if files else normalized,
                normalized,
                files,
                serial=version.serials.get(normalized, 0),
                media_type=media_type,
                files_prefix=FILES_PREFIX,
                provenance=version.provenance.keys(),
                status=version.statuses.get(normalized),
            )
            yield f"simple/{normalized}/{name}", body, media_type
    serial = max((p.serial for p in version.projects), default=0)
    for name, media_type in PAGES:
        yield (
            f"simple/{name}",
            render_listing(version.projects, serial=serial, media_type=media_type),
            media_type,
        )


def _version_pages(
    serving: ServingCatalog, state: RepositoryState, number: int
) -> tuple[list[ProjectEntry], dict[str, list[PageFile]], set[str], int]:
    """The version's projects and their files, without what ``mirrorflow serve`` refuses; every
    project holding a file before that; and how many files that leaves out: the repository's
    blocklist and the advisories its prefixes block (``mirrorflow.server.advisories``), in every
    version, as serve applies them.

    A project left with no file is left out of the listing too, and its serial is recomputed
    from the files that remain (``mirrorflow.server.refusals``: serve's rule).
    """
    listed = serving.projects(state.id, number, pull_through=False)
    pages = {p.normalized_name: serving.project_files(state.id, number, p.normalized_name) for p in listed}
    held = set(pages)
    advisories = ServedAdvisories(serving.catalog)
    advisories.refresh([state])
    refusals = Refusals(state, Blocklist.parse(state.blocklist), advisories)
    if not refusals:
        return listed, pages, held, 0
    kept: dict[str, list[PageFile]] = {}
    blocked = 0
    for normalized, files in pages.items():
        allowed = refusals.kept(files)
        blocked += len(files) - len(allowed)
        if allowed:
            kept[normalized] = allowed
    return refusals.listed(serving, number, listed, pull_through=False), kept, held, blocked


def _write_tree(writer: _Writer, repository: str, version: VersionToPublish, to: Path) -> None:
    """Write the whole tree; the marker last, so a tree holding it is complete."""
    pages = {
        normalized: [writer.file(f, version.provenance.get(f.sha256)) for f in files]
        for normalized, files in version.pages.items()
    }
    for key, body, _ in version_pages(version, pages):
        writer.write(Path(key), body)
    writer.write(Path("nginx.conf"), _nginx_conf(to).encode())
    marker = {"repository": repository, "version": version.number, "projects": len(version.projects)}
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
        self.files = self.metadata = self.linked = self.written = self.pages_linked = self.provenance = 0

    def write(self, relative: Path, body: bytes, *, page: bool = True) -> None:
        """Write a page or a small file (or link the tree before's, when its bytes are these)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        before = self._before(relative)
        unchanged = before is not None and before.stat().st_size == len(body) and before.read_bytes() == body
        if unchanged and before is not None and self._link(before, path):
            if page:
                self.pages_linked += 1
            else:
                self.linked += 1
            return
        path.write_bytes(body)
        self.written += 1

    def file(self, file: PageFile, provenance: bytes | None) -> PageFile:
        """Write a file (a wheel's core metadata, its ``provenance`` object); return it as the page lists it."""
        relative = Path("files", file.sha256, file.filename)
        self._copy(relative, file.sha256)
        self.files += 1
        if provenance is not None:  # not content-addressed by its key (an upstream may add attestations)
            self.write(relative.with_name(file.filename + PROVENANCE_SUFFIX), provenance, page=False)
            self.provenance += 1
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
        types {{ application/zip whl; application/gzip gz; text/plain metadata; application/json provenance; }}
        default_type application/octet-stream;
    }}
}}
"""
