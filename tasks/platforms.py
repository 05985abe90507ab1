"""Which operating system a distribution file is built for, and which CPython versions can install it.

Two decisions used by :mod:`mirrorflow.tasks.filters`, kept apart because they read wheel tags rather than filter
settings:

- :func:`excluded_platform`: is a file built only for operating systems the repository leaves out?
- :func:`python_mismatch`: can none of the target CPython versions install the file?

Each returns None to keep the file, or a detail string saying why it goes. Wheel tags come from
``packaging.tags.parse_tag`` and compatibility from ``packaging.tags``.

Pure: imports only the standard library, ``packaging`` and :mod:`mirrorflow.tasks.filenames`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from itertools import chain

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import compatible_tags, cpython_tags, parse_tag
from packaging.version import Version

from mirrorflow.tasks.filenames import ParsedFilename

__all__ = [
    "PLATFORMS",
    "excluded_platform",
    "python_mismatch",
    "requires_python_allows",
    "wheel_tag_platform",
]

#: The operating-system families ``exclude_platforms`` may name.
PLATFORMS = ("windows", "macos", "linux", "freebsd")

#: Legacy binary formats that only exist for one operating system.
_LEGACY_TYPE_PLATFORM = {
    "bdist_wininst": "windows",
    "bdist_msi": "windows",
    "bdist_dmg": "macos",
    "bdist_rpm": "linux",
}

#: Prefixes of the platform string of eggs and bdist_dumb archives (``win-amd64``, ``macosx-10.9-x86_64``).
_LEGACY_PREFIX_PLATFORM = (
    (("win32", "win-", "win_"), "windows"),
    (("macosx-",), "macos"),
    (("linux-",), "linux"),
    (("freebsd-",), "freebsd"),
)


def wheel_tag_platform(tag: str) -> str | None:
    """Return the family in :data:`PLATFORMS` of a wheel platform tag, or None (``any``, unknown families).

    >>> [wheel_tag_platform(t) for t in ("win_arm64", "macosx_11_0_universal2", "manylinux_2_17_x86_64")]
    ['windows', 'macos', 'linux']
    >>> wheel_tag_platform("musllinux_1_1_aarch64"), wheel_tag_platform("any"), wheel_tag_platform("cygwin")
    ('linux', None, None)
    """
    if tag == "win32" or tag.startswith("win_"):
        return "windows"
    if tag.startswith("macosx_"):
        return "macos"
    # manylinux1_x86_64 and manylinux2014_* have no underscore after "manylinux"; PEP 600 tags do.
    if tag.startswith(("linux_", "manylinux", "musllinux_")):
        return "linux"
    if tag.startswith("freebsd_"):
        return "freebsd"
    return None


def _legacy_platform(parsed: ParsedFilename) -> str | None:
    by_type = _LEGACY_TYPE_PLATFORM.get(parsed.packagetype)
    if by_type is not None:
        return by_type
    platform = parsed.platforms[0] if parsed.platforms else ""
    return next(
        (family for prefixes, family in _LEGACY_PREFIX_PLATFORM if platform.startswith(prefixes)), None
    )


def excluded_platform(parsed: ParsedFilename, excluded: frozenset[str]) -> str | None:
    """Return why the file is dropped by ``exclude_platforms``, or None to keep it.

    Sdists are never dropped. A wheel is dropped only when every one of its platform tags belongs to an
    excluded family (so a compressed tag set that also names a kept family stays, and ``any`` stays).
    Legacy binaries are judged from their type and the platform part of their filename.
    """
    if not excluded or parsed.packagetype == "sdist":
        return None
    if parsed.packagetype == "bdist_wheel":
        families = [wheel_tag_platform(tag) for tag in parsed.platforms]
        if not families or not all(family in excluded for family in families):
            return None
        named = ", ".join(sorted({f"{family!r}" for family in families if family}))
        return f"platform tags {'.'.join(parsed.platforms)} all excluded by {named}"
    family = _legacy_platform(parsed)
    if family not in excluded:
        return None
    where = f" {parsed.platforms[0]!r}" if parsed.platforms else ""
    return f"{parsed.packagetype}{where} excluded by {family!r}"


@functools.cache
def _interpreter_abis(major: int, minor: int) -> frozenset[tuple[str, str]]:
    """Every (interpreter, abi) pair a standard CPython ``major.minor`` build accepts, on any platform."""
    interpreter = f"cp{major}{minor}"
    # Explicit ABIs keep packaging from reading the running interpreter's build flags. Before 3.8 the ABI
    # carried pymalloc ("m") and, on Python 2, wide-unicode ("mu") flags.
    abis = [interpreter] if (major, minor) >= (3, 8) else [interpreter, f"{interpreter}m", f"{interpreter}mu"]
    tags = chain(
        cpython_tags((major, minor), abis=abis, platforms=["any"]),
        compatible_tags((major, minor), interpreter=interpreter, platforms=["any"]),
    )
    return frozenset((tag.interpreter, tag.abi) for tag in tags)


@functools.lru_cache(maxsize=4096)
def _interpreter_abi_pairs(tag_set: str) -> frozenset[tuple[str, str]]:
    """The (interpreter, abi) pairs of a wheel's tag set such as ``cp312-cp312-manylinux_2_17_x86_64``."""
    return frozenset((tag.interpreter, tag.abi) for tag in parse_tag(tag_set))


def requires_python_allows(requires_python: str | None, target: Version) -> bool:
    """Return True when ``requires_python`` admits ``target``; a missing or invalid value admits everything.

    >>> requires_python_allows(">=3.8", Version("3.12")), requires_python_allows("<3", Version("3.12"))
    (True, False)
    >>> requires_python_allows(">=3.6,<4,", Version("3.12"))  # invalid: keep the file rather than guess
    True
    """
    if not requires_python or not requires_python.strip():
        return True
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True
    return specifier.contains(target, prereleases=True)


def python_mismatch(
    parsed: ParsedFilename, filename: str, requires_python: str | None, targets: Iterable[Version]
) -> str | None:
    """Return why no target CPython can install the file, or None when one can (or there are no targets).

    Wheels need a tag whose interpreter and ABI the target accepts AND a ``requires_python`` that admits
    it; other files follow ``requires_python`` only. A target ``3.11`` is checked as 3.11.0, as pip's
    ``--python-version 3.11`` does.
    """
    targets = tuple(targets)
    if not targets:
        return None
    pairs: frozenset[tuple[str, str]] = frozenset()
    if parsed.packagetype == "bdist_wheel":
        # parse_filename accepted this name already, so its tag set is its last three dash-separated
        # parts: what parse_wheel_filename would parse, here once per distinct tag set.
        pairs = _interpreter_abi_pairs("-".join(filename[:-4].rsplit("-", 3)[1:]))
    for target in targets:
        major, minor = target.release[0], target.release[1]
        tags_ok = parsed.packagetype != "bdist_wheel" or bool(pairs & _interpreter_abis(major, minor))
        if tags_ok and requires_python_allows(requires_python, target):
            return None
    wanted = ", ".join(str(target) for target in targets)
    if parsed.packagetype == "bdist_wheel":
        tags = parsed.python_version
        return f"not installable on Python {wanted} (tags {tags}, requires_python {requires_python!r})"
    return f"requires_python {requires_python!r} excludes Python {wanted}"
