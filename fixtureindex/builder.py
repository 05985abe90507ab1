"""Build fixture indexes: real, installable wheels and sdists, and a static PEP 503 / PEP 691 tree.

``make_wheel`` / ``make_sdist`` / ``make_legacy`` produce distribution bytes (deterministic: the same
arguments give the same bytes, so digests are stable across runs). ``build_index`` writes::

    <root>/files/<sha256[:2]>/<filename>              the distribution
    <root>/files/<sha256[:2]>/<filename>.metadata     PEP 658 metadata, next to each wheel
    <root>/files/<sha256[:2]>/<filename>.provenance   PEP 740 provenance object, for files given one
    <root>/simple/index.html, index.json              the project listing
    <root>/simple/<project>/index.html, index.json    each project's page (files linked relatively)
    <root>/pypi/<project>/json                        the legacy JSON API's document (``/pypi/<project>/json``)
    <root>/index-state.json                           serials, read by ``mirrorflow.fixtureindex.server``

Test and demo code only: nothing in ``tasks`` or ``storage`` imports this package.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirrorflow.fixtureindex.pages import render_legacy_json, render_listing, render_project

__all__ = [
    "FixtureFile",
    "FixtureProject",
    "Index",
    "build_index",
    "make_legacy",
    "make_sdist",
    "make_wheel",
    "metadata_text",
]

_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_TAR_MTIME = 1577836800  # 2020-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class FixtureFile:
    """One distribution file of a fixture project.

    ``metadata`` is the PEP 658 core metadata served next to the file; when None and the file is a
    wheel, ``build_index`` extracts the wheel's ``METADATA``. ``provenance`` is the PEP 740 provenance
    object served next to the file (and named by the pages), when given.
    """

    filename: str
    content: bytes
    requires_python: str | None = None
    yanked: bool | str = False
    upload_time: datetime | None = None
    metadata: bytes | None = None
    provenance: bytes | None = None


@dataclass(frozen=True, slots=True)
class FixtureProject:
    """A project of a fixture index: its display name and files."""

    name: str
    files: Sequence[FixtureFile]
    #: PEP 792: the project's status (``archived``, ``quarantined``, ``deprecated``; None: active) and why.
    #: A quarantined project's page lists no file, as the index must not offer them.
    status: str | None = None
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Index:
    """A built fixture index: where it is, its global serial and each project's last serial."""

    root: Path
    last_serial: int
    serials: dict[str, int]


def _module_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def _dist_name(name: str) -> str:
    # Wheel filename escaping (PEP 427 / binary distribution format): runs of -_. become "_".
    return re.sub(r"[-_.]+", "_", name)


def metadata_text(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    provides_extra: Iterable[str] = (),
) -> str:
    """Return core metadata (Metadata-Version 2.1) for a fixture distribution."""
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Fixture distribution {name} {version} for mirrorflow tests",
    ]
    lines += [f"Provides-Extra: {extra}" for extra in provides_extra]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires_dist]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    return "\n".join(lines) + "\n\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def make_wheel(
    name: str,
    version: str,
    *,
    python_tag: str = "py3",
    abi_tag: str = "none",
    platform_tag: str = "any",
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    provides_extra: Iterable[str] = (),
) -> tuple[str, bytes]:
    """Build a real, pip-installable wheel. Returns ``(filename, content)``.

    The wheel holds ``<module>/__init__.py`` (with ``__version__``) and a ``.dist-info`` with
    ``METADATA``, ``WHEEL`` and a ``RECORD`` of correct sha256 hashes.
    """
    version = str(Version(version))
    tag = f"{python_tag}-{abi_tag}-{platform_tag}"
    filename = f"{_dist_name(name)}-{version}-{tag}.whl"
    dist_info = f"{_dist_name(name)}-{version}.dist-info"
    wheel_lines = ["Wheel-Version: 1.0", "Generator: mirrorflow-fixtureindex", "Root-Is-Purelib: true"]
    wheel_lines += [f"Tag: {expanded}" for expanded in sorted(str(t) for t in parse_tag(tag))]
    members = {
        f"{_module_name(name)}/__init__.py": f'"""Fixture {name}."""\n\n__version__ = "{version}"\n',
        f"{dist_info}/METADATA": metadata_text(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            provides_extra=provides_extra,
        ),
        f"{dist_info}/WHEEL": "\n".join(wheel_lines) + "\n",
    }
    record = [f"{path},{_record_hash(text.encode())},{len(text.encode())}" for path, text in members.items()]
    members[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, text in members.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text)
    return filename, buffer.getvalue()


def make_sdist(
    name: str, version: str, *, requires_dist: Iterable[str] = (), requires_python: str | None = None
) -> tuple[str, bytes]:
    """Build a real sdist pip can build (setuptools backend). Returns ``(filename, content)``.

    The filename keeps ``name`` as given (``shelf-reader-0.1.tar.gz``, as older sdists are named).
    """
    version = str(Version(version))
    base = f"{name}-{version}"
    requires_dist = list(requires_dist)
    project = [f'name = "{name}"', f'version = "{version}"', f"dependencies = {json.dumps(requires_dist)}"]
    if requires_python is not None:
        project.append(f"requires-python = {json.dumps(requires_python)}")
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        "[project]\n" + "\n".join(project) + "\n\n"
        f'[tool.setuptools]\npackages = ["{_module_name(name)}"]\n'
    )
    members = {
        f"{base}/PKG-INFO": metadata_text(
            name, version, requires_dist=requires_dist, requires_python=requires_python
        ),
        f"{base}/pyproject.toml": pyproject,
        f"{base}/{_module_name(name)}/__init__.py": f'"""Fixture {name}."""\n\n__version__ = "{version}"\n',
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), _TAR_MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return f"{base}.tar.gz", compressed.getvalue()


def make_legacy(filename: str) -> bytes:
    """Return placeholder bytes for a legacy file (``.egg``, ``.exe``, ``.msi``, ``.dmg``, ``.rpm``)."""
    return f"mirrorflow fixture legacy distribution {filename}\n".encode() * 4


def _wheel_metadata(file: FixtureFile) -> bytes | None:
    if file.metadata is not None or not file.filename.endswith(".whl"):
        return file.metadata
    with zipfile.ZipFile(io.BytesIO(file.content)) as archive:
        for member in archive.namelist():
            if member.count("/") == 1 and member.endswith(".dist-info/METADATA"):
                return archive.read(member)
    return None


def build_index(projects: Iterable[FixtureProject], root: Path, *, first_serial: int = 0) -> Index:
    """Write the static tree of a fixture index under ``root`` and return its ``Index``.

    Serials are assigned in order, one per file (and one more for a project with a status), from
    ``first_serial``: each project's last serial is that of its last file and the global serial is
    ``first_serial`` plus the number of files. A later state of an index starts past the last one.
    """
    root = Path(root)
    serial = first_serial
    serials: dict[str, int] = {}
    listing: list[tuple[str, int]] = []
    for project in projects:
        name = canonicalize_name(project.name)
        if name in serials:
            raise ValueError(f"project {project.name!r} appears twice in the fixture catalog")
        entries = []
        for file in project.files:
            serial += 1
            digest = hashlib.sha256(file.content).hexdigest()
            directory = root / "files" / digest[:2]
            directory.mkdir(parents=True, exist_ok=True)
            (directory / file.filename).write_bytes(file.content)
            metadata = _wheel_metadata(file)
            if metadata is not None:
                (directory / f"{file.filename}.metadata").write_bytes(metadata)
            if file.provenance is not None:
                (directory / f"{file.filename}.provenance").write_bytes(file.provenance)
            entries.append((file, digest, metadata))
        if project.status is not None:
            serial += 1  # a status change is an event of the index: the project's serial moves
        serials[name] = serial
        listing.append((project.name, serial))
        page_dir = root / "simple" / name
        page_dir.mkdir(parents=True, exist_ok=True)
        html, json_page = render_project(
            project.name, entries, last_serial=serial, status=project.status, reason=project.status_reason
        )
        (page_dir / "index.html").write_text(html, encoding="utf-8")
        (page_dir / "index.json").write_text(json_page, encoding="utf-8")
        legacy_dir = root / "pypi" / name
        legacy_dir.mkdir(parents=True, exist_ok=True)
        legacy = render_legacy_json(project.name, entries, last_serial=serial)
        (legacy_dir / "json").write_text(legacy, encoding="utf-8")
    (root / "simple").mkdir(parents=True, exist_ok=True)
    html, json_page = render_listing(listing, last_serial=serial)
    (root / "simple" / "index.html").write_text(html, encoding="utf-8")
    (root / "simple" / "index.json").write_text(json_page, encoding="utf-8")
    state = {"last_serial": serial, "projects": serials}
    (root / "index-state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    return Index(root=root, last_serial=serial, serials=serials)
