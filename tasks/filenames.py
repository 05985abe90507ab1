"""Parse the filename of a distribution file: project name, version, package type, Python and platform.

The upstream index lists files by name; this module turns a name into a :class:`ParsedFilename` or refuses
it. Wheels and ``.tar.gz`` / ``.zip`` sdists are parsed by ``packaging``; the legacy formats that the index
still serves (eggs, Windows installers, disk images, RPMs, "dumb" binary archives and the other sdist
archive suffixes) get small parsers here that split off their platform and release parts and then leave
the name and the version to ``packaging`` as well. PEP 440 is never re-implemented.

A mirror keeps what the upstream lists. Real indexes list files that ``packaging`` refuses although they
are safe: wheels whose project part is not normalized (``Drift__Core-1.0.0-cp36-cp36m-win_amd64.whl``),
sdists with a dash inside the version (``foo-1.0-beta.tar.gz``). Given the project whose page listed the
file, :func:`parse_filename` reads such a name again: the project's own spelling, then the longest
dash-separated run that ``packaging`` accepts as a version. The result says so (``by_project``). Unsafe
names (path separators, control characters, dot names, overlong names) and unknown extensions are
refused either way.

Exception tree::

    ValueError
    └── InvalidFilename      .filename, .reason

Pure: imports only the standard library and ``packaging``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    is_normalized_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from mirrorflow.storage.errors import MirrorflowError

__all__ = ["MAX_FILENAME_LENGTH", "PACKAGE_TYPES", "InvalidFilename", "ParsedFilename", "parse_filename"]

#: Every package type the index's JSON API reports, sorted.
PACKAGE_TYPES = (
    "bdist_dmg",
    "bdist_dumb",
    "bdist_egg",
    "bdist_msi",
    "bdist_rpm",
    "bdist_wheel",
    "bdist_wininst",
    "sdist",
)

#: Archive suffixes shared by sdists and bdist_dumb archives.
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".zip", ".tar")

#: What separates the version from the platform in a bdist_dumb name (``foo-1.0.linux-x86_64.tar.gz``).
_DUMB_PLATFORM_MARKERS = (".linux-", ".macosx-", ".win", ".freebsd-", ".cygwin-")


class InvalidFilename(MirrorflowError, ValueError):
    """A filename that is not a distribution filename we understand (or is unsafe to store)."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"invalid distribution filename {filename!r}: {reason}")
        self.filename = filename
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedFilename:
    """What a distribution filename says about its file.

    ``python_version`` is what the JSON API reports: ``"source"`` for sdists, the wheel's python tag(s)
    (``"py3"``, ``"cp311"``, ``"py2.py3"``), an egg's ``"py2.7"``, else ``"any"``. ``platforms`` holds the
    wheel's platform tags (``("any",)`` for pure wheels and eggs), a legacy binary's platform string from
    the filename (``("win-amd64",)``, ``("noarch",)``), or ``()`` for sdists and platform-less files.
    """

    name: NormalizedName
    version: Version
    packagetype: str
    python_version: str
    platforms: tuple[str, ...]
    #: True when ``packaging`` refused the name and it was read knowing the project that listed it.
    by_project: bool = False


#: The longest filename accepted (a common file system limit).
MAX_FILENAME_LENGTH = 255


def parse_filename(filename: str, *, project: NormalizedName | None = None) -> ParsedFilename:
    """Parse a distribution filename.

    Returns a :class:`ParsedFilename`; raises :class:`InvalidFilename` for unsafe names (path separators,
    NUL and other control characters, ``.``/``..``-like names), unknown extensions, invalid project names
    and invalid versions. With ``project`` (the normalized name of the project whose page lists the
    file), a name that ``packaging`` refuses, or reads as another project's, is read again as
    ``<project's spelling>-<version>...``; when that works the result has ``by_project`` set.

    >>> parsed = parse_filename("Foo_Bar.baz-1.0c1.tar.gz")
    >>> parsed.name, parsed.version, parsed.packagetype, parsed.python_version, parsed.platforms
    ('foo-bar-baz', <Version('1.0rc1')>, 'sdist', 'source', ())
    >>> parsed = parse_filename("Drift__Core-1.0.0-cp36-cp36m-win_amd64.whl", project="drift-core")
    >>> parsed.name, parsed.version, parsed.platforms, parsed.by_project
    ('drift-core', <Version('1.0.0')>, ('win_amd64',), True)
    """
    _check_safe(filename)
    lowered = filename.lower()
    found = next(((suffix, parse) for suffix, parse in _PARSERS if lowered.endswith(suffix)), None)
    if found is None:
        raise InvalidFilename(filename, "unknown file extension")
    suffix, parse = found
    stem = filename[: -len(suffix)]
    try:
        parsed = parse(filename, stem, _split_name_version)
    except InvalidFilename:
        if project is None:
            raise
        return _by_project(filename, stem, parse, project, strict=None)
    if project is None or parsed.name == project:
        return parsed
    return _by_project(filename, stem, parse, project, strict=parsed)


_Split = Callable[[str, str], "tuple[NormalizedName, Version]"]
_Parser = Callable[[str, str, _Split], ParsedFilename]


def _by_project(
    filename: str, stem: str, parse: _Parser, project: NormalizedName, *, strict: ParsedFilename | None
) -> ParsedFilename:
    """Read ``filename`` again as a file of ``project``; fall back to ``strict`` (or re-raise) if that fails."""
    try:
        return replace(parse(filename, stem, _project_splitter(project)), by_project=True)
    except InvalidFilename:
        if strict is not None:
            return strict  # it names another project: the wrong-project rule decides
        return parse(filename, stem, _split_name_version)  # raises packaging's own reason


def _project_splitter(project: NormalizedName) -> _Split:
    """A ``name-version`` splitter that knows the project: the first prefix spelling ``project``
    followed by ``-`` or ``_``, then the longest dash-separated run that is a valid version."""

    def split(filename: str, head: str) -> tuple[NormalizedName, Version]:
        for index, char in enumerate(head):
            if char not in "-_" or _canonical_name(head[:index]) != project:
                continue
            pieces = head[index + 1 :].split("-")
            for count in range(len(pieces), 0, -1):
                text = "-".join(pieces[:count])
                # A wheel escapes "-" as "_": "0.0.1_1" was the release "0.0.1-1" (0.0.1.post1).
                for candidate in dict.fromkeys((text, text.replace("_", "-"))):
                    try:
                        return project, Version(candidate)
                    except InvalidVersion:
                        continue
        raise InvalidFilename(filename, f"no valid version follows the project name {project!r}")

    return split


#: A C0 control character or DEL (one C-level scan instead of a Python loop over the characters).
_CONTROL_CHAR_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_safe(filename: str) -> None:
    # Filenames become object keys and paths on disk: refuse anything that could leave a directory.
    if not filename.strip("."):
        raise InvalidFilename(filename, "is empty or only dots")
    if len(filename) > MAX_FILENAME_LENGTH:
        # Also bounds versions: a 5,000-digit release number would overflow int() in packaging.
        raise InvalidFilename(filename, f"is longer than {MAX_FILENAME_LENGTH} characters")
    for char in ("/", "\\", "\x00"):
        if char in filename:
            raise InvalidFilename(filename, f"contains {char!r}")
    if _CONTROL_CHAR_RE.search(filename) is not None:
        raise InvalidFilename(filename, "contains a control character")


def _project_name(filename: str, raw: str) -> NormalizedName:
    name = _canonical_name(raw)
    if name is None:
        raise InvalidFilename(filename, f"{raw!r} is not a valid project name")
    return name


@functools.lru_cache(maxsize=4096)
def _canonical_name(raw: str) -> NormalizedName | None:
    # Every file of a project repeats its name: canonicalize each spelling once (bounded cache).
    name = canonicalize_name(raw)
    return name if is_normalized_name(name) else None


def _split_name_version(filename: str, head: str) -> tuple[NormalizedName, Version]:
    # A PEP 440 version holds no dash, so the last dash separates name and version (as packaging does).
    name_part, dash, version_part = head.rpartition("-")
    if not dash or not name_part:
        raise InvalidFilename(filename, "no '-' between project name and version")
    try:
        version = Version(version_part)
    except InvalidVersion:
        raise InvalidFilename(filename, f"invalid version {version_part!r}") from None
    return _project_name(filename, name_part), version


def _is_python_tag(part: str) -> bool:
    """Return True for an egg's or installer's python part such as ``py2.7``.

    >>> _is_python_tag("py2.7"), _is_python_tag("py3"), _is_python_tag("pyyaml")
    (True, True, False)
    """
    rest = part[2:]
    return part.startswith("py") and bool(rest) and all(c.isdigit() or c == "." for c in rest)


def _parse_wheel(filename: str, stem: str, split: _Split) -> ParsedFilename:
    if split is not _split_name_version:
        return _parse_wheel_by_project(filename, stem, split)
    # packaging builds a frozenset of Tags per wheel, the costliest part of a sync's filtering,
    # and a sync meets a few hundred distinct tag sets in hundreds of thousands of wheels: the tag
    # set is checked once per spelling (``_valid_tags``), and the name, version and build parts
    # once per release (``_wheel_head``: a release's wheels for several platforms share them).
    # A filename packaging refuses is parsed whole, for packaging's own message.
    head, tags = _split_tag_set(stem)
    try:
        try:
            if not (tags and _valid_tags(tags)):
                raise InvalidWheelFilename(tags)
            name, version = _wheel_head(head)
        except InvalidWheelFilename:
            name, version, _build, _tags = parse_wheel_filename(f"{stem}.whl")  # packaging's own message
    except InvalidWheelFilename as exc:
        raise InvalidFilename(filename, str(exc)) from exc
    # parse_wheel_filename checked the layout; read the tags back in filename order (its set is unordered).
    parts = stem.split("-")
    return ParsedFilename(
        name=_project_name(filename, name),
        version=version,
        packagetype="bdist_wheel",
        python_version=parts[-3],
        platforms=tuple(parts[-1].split(".")),
    )


def _parse_wheel_by_project(filename: str, stem: str, split: _Split) -> ParsedFilename:
    # A wheel packaging refused: its last three dash-separated parts are still its tags.
    parts = stem.rsplit("-", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise InvalidFilename(filename, "a wheel needs python, abi and platform tags")
    name, version = split(filename, parts[0])  # a build tag after the version is not part of it
    return ParsedFilename(name, version, "bdist_wheel", parts[1], tuple(parts[3].split(".")))


def _split_tag_set(stem: str) -> tuple[str, str]:
    """Split a wheel's stem into ``name-version[-build]`` and ``python-abi-platform`` (or "", "")."""
    parts = stem.rsplit("-", 3)
    if len(parts) != 4:
        return "", ""
    return parts[0], "-".join(parts[1:])


@functools.lru_cache(maxsize=4096)
def _wheel_head(head: str) -> tuple[str, Version]:
    """packaging's name and version of a wheel's ``name-version[-build]`` (with a fixed tag set)."""
    name, version, _build, _tags = parse_wheel_filename(f"{head}-py3-none-any.whl")
    return name, version


@functools.lru_cache(maxsize=4096)
def _valid_tags(tags: str) -> bool:
    """Whether packaging accepts ``tags`` (``python-abi-platform``) as a wheel's tag set."""
    try:
        parse_wheel_filename(f"x-0-{tags}.whl")
    except InvalidWheelFilename:
        return False
    return True


def _parse_egg(filename: str, stem: str, split: _Split) -> ParsedFilename:
    # name-version-pyX.Y[-platform].egg; the platform may itself hold dashes (macosx-10.9-x86_64).
    parts = stem.split("-")
    index = next((i for i in range(2, len(parts)) if _is_python_tag(parts[i])), None)
    if index is None:
        raise InvalidFilename(filename, "an egg needs a 'pyX.Y' part after its version")
    name, version = split(filename, "-".join(parts[:index]))
    platform = "-".join(parts[index + 1 :])
    return ParsedFilename(name, version, "bdist_egg", parts[index], (platform,) if platform else ("any",))


def _parse_windows_installer(filename: str, stem: str, split: _Split, packagetype: str) -> ParsedFilename:
    # bdist_wininst / bdist_msi: name-version.win32[-pyX.Y] or name-version.win-amd64[-pyX.Y]
    head, dot, tail = stem.rpartition(".win")
    if not dot and split is not _split_name_version:
        # Read knowing the project: an installer named freely ("pyreadline-1.5-win32-setup.exe").
        name, version = split(filename, stem)
        return ParsedFilename(
            name, version, packagetype, "any", ("win-amd64",) if "amd64" in stem else ("win32",)
        )
    if not dot:
        raise InvalidFilename(filename, "a Windows installer needs a '.win32' or '.win-amd64' platform part")
    platform, dash, python = f"win{tail}".partition("-py")
    if dash and not _is_python_tag(f"py{python}"):
        raise InvalidFilename(filename, f"invalid python part {'py' + python!r}")
    name, version = split(filename, head)
    return ParsedFilename(name, version, packagetype, "any", (platform,))


def _parse_dmg(filename: str, stem: str, split: _Split) -> ParsedFilename:
    # name-version[-pyX.Y][-macosx-10.9-x86_64].dmg; bdist_dmg writes "-py2.7-macosx10.6".
    head, dash, tail = stem.rpartition("-macosx")
    platforms = (f"macosx{tail}",) if dash else ()
    head = head if dash else stem
    rest, _, last = head.rpartition("-")
    python = last if rest and _is_python_tag(last) else "any"
    name, version = split(filename, rest if python != "any" else head)
    return ParsedFilename(name, version, "bdist_dmg", python, platforms)


def _parse_rpm(filename: str, stem: str, split: _Split) -> ParsedFilename:
    # name-version-release.arch.rpm; the source rpm (arch "src") is bdist_rpm's too.
    rest, dot, arch = stem.rpartition(".")
    head, dash, release = rest.rpartition("-")
    if not (dot and arch and dash and release):
        raise InvalidFilename(filename, "an rpm needs a 'name-version-release.arch.rpm' name")
    name, version = split(filename, head)
    return ParsedFilename(name, version, "bdist_rpm", "any", (arch,))


def _parse_dumb(filename: str, stem: str, split: _Split) -> ParsedFilename | None:
    """Parse ``name-version.platform`` or return None when no platform marker splits off a valid version."""
    for marker in _DUMB_PLATFORM_MARKERS:
        head, found, tail = stem.rpartition(marker)
        if not found:
            continue
        try:
            name, version = split(filename, head)
        except InvalidFilename:
            continue
        return ParsedFilename(name, version, "bdist_dumb", "any", (f"{marker[1:]}{tail}",))
    return None


def _parse_archive(filename: str, stem: str, split: _Split) -> ParsedFilename:
    # packaging knows only the .tar.gz and .zip suffixes: the caller split the real one off already.
    if split is not _split_name_version:
        dumb = _parse_dumb(filename, stem, split)
        name, version = (dumb.name, dumb.version) if dumb is not None else split(filename, stem)
        return dumb or ParsedFilename(name, version, "sdist", "source", ())
    try:
        name, version = parse_sdist_filename(f"{stem}.tar.gz")
    except InvalidSdistFilename as exc:
        # Not an sdist; a "dumb" binary archive has a platform after its version.
        dumb = _parse_dumb(filename, stem, split)
        if dumb is not None:
            return dumb
        split(filename, stem)  # raises with the precise reason
        raise InvalidFilename(filename, str(exc)) from exc  # pragma: no cover - kept for safety
    return ParsedFilename(_project_name(filename, name), version, "sdist", "source", ())


_PARSERS: tuple[tuple[str, _Parser], ...] = (
    (".whl", _parse_wheel),
    (".egg", _parse_egg),
    (".exe", lambda filename, stem, split: _parse_windows_installer(filename, stem, split, "bdist_wininst")),
    (".msi", lambda filename, stem, split: _parse_windows_installer(filename, stem, split, "bdist_msi")),
    (".dmg", _parse_dmg),
    (".rpm", _parse_rpm),
    *((suffix, _parse_archive) for suffix in _ARCHIVE_SUFFIXES),
)
