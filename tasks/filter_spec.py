"""A repository's filter settings, validated once: ``FilterSpec.build(...)`` checks every field.

``mirrorflow.tasks.filters`` applies them (and re-exports these names). Exception tree::

    ValueError
    └── InvalidFilter    .field, .value, .reason (FilterSpec.build; a bad filename is a Skip)

Pure: imports only the standard library, ``packaging`` and other pure ``tasks`` modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.filenames import PACKAGE_TYPES
from mirrorflow.tasks.platforms import PLATFORMS

__all__ = [
    "PLATFORMS",
    "FilterSpec",
    "InvalidFilter",
    "included_project_names",
    "parse_age",
    "validate_requirements",
]

_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidFilter(MirrorflowError, ValueError):
    """A filter setting that cannot be used: names the field, shows the value and says why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}: {value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """Validated filter settings. Build it with :meth:`build`, which checks every field."""

    includes: tuple[Requirement, ...]
    excludes: tuple[Requirement, ...]
    prereleases: bool
    package_types: frozenset[str]
    exclude_platforms: frozenset[str]
    keep_latest_packages: int
    min_upload_age: timedelta | None
    missing_upload_time: str
    python_versions: tuple[Version, ...]
    skip_yanked: bool
    #: Keep the files of projects the upstream quarantined (PEP 792); by default they leave the mirror.
    keep_quarantined: bool = False

    @classmethod
    def build(
        cls,
        *,
        includes: Sequence[str] = (),
        excludes: Sequence[str] = (),
        prereleases: bool = True,
        package_types: Iterable[str] = (),
        exclude_platforms: Iterable[str] = (),
        keep_latest_packages: int = 0,
        min_upload_age: str | timedelta | None = None,
        missing_upload_time: str = "take",
        python_versions: Iterable[str] = (),
        skip_yanked: bool = False,
        keep_quarantined: bool = False,
    ) -> FilterSpec:
        """Return a validated spec; raise :class:`InvalidFilter` naming the first bad field and value."""
        return cls(
            includes=validate_requirements("includes", includes),
            excludes=validate_requirements("excludes", excludes),
            prereleases=_flag("prereleases", prereleases),
            package_types=_choices("package_types", package_types, PACKAGE_TYPES),
            exclude_platforms=_choices("exclude_platforms", exclude_platforms, PLATFORMS),
            keep_latest_packages=_count("keep_latest_packages", keep_latest_packages),
            min_upload_age=_age(min_upload_age),
            missing_upload_time=_one_of("missing_upload_time", missing_upload_time, ("take", "skip")),
            python_versions=tuple(_target_python(v) for v in _strings("python_versions", python_versions)),
            skip_yanked=_flag("skip_yanked", skip_yanked),
            keep_quarantined=_flag("keep_quarantined", keep_quarantined),
        )


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``"7d"``, ``"12h"``, ``"30m"``, ``"2w"`` or ``"90s"``; raise InvalidFilter.

    >>> parse_age("7d"), parse_age("90s")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=90))
    >>> parse_age("7 days")
    Traceback (most recent call last):
    ...
    mirrorflow.tasks.filter_spec.InvalidFilter: min_upload_age: '7 days' is not an age like '7d', '12h', '30m', '2w' or '90s'
    """
    if not isinstance(text, str):
        raise InvalidFilter("min_upload_age", text, "is not a string like '7d'")
    number, unit = text.strip()[:-1], text.strip()[-1:]
    if unit not in _AGE_UNITS or not (number.isascii() and number.isdecimal()):
        raise InvalidFilter("min_upload_age", text, "is not an age like '7d', '12h', '30m', '2w' or '90s'")
    try:
        return timedelta(**{_AGE_UNITS[unit]: int(number)})
    except OverflowError:
        raise InvalidFilter("min_upload_age", text, "is too large") from None


def validate_requirements(field: str, values: Sequence[str]) -> tuple[Requirement, ...]:
    """Parse PEP 508 requirement strings; raise InvalidFilter for invalid ones, markers and URLs.

    Extras are accepted and ignored: a mirror keeps a project's files whatever extras one installs.

    >>> [str(r) for r in validate_requirements("includes", ["Django~=2.0", "scipy"])]
    ['Django~=2.0', 'scipy']
    """
    requirements = []
    for value in _strings(field, values):
        try:
            requirement = Requirement(value)
        except InvalidRequirement as exc:
            raise InvalidFilter(field, value, f"is not a valid PEP 508 requirement: {exc}") from exc
        if requirement.marker is not None:
            # A mirror serves every environment; a marker would silently depend on the syncing machine.
            raise InvalidFilter(field, value, "has an environment marker; markers are not supported here")
        if requirement.url:
            raise InvalidFilter(field, value, "is a URL requirement; name a project of the index instead")
        requirements.append(requirement)
    return tuple(requirements)


def included_project_names(spec: FilterSpec) -> list[NormalizedName]:
    """Return the canonical names of the includes, sorted and deduplicated."""
    return sorted({canonicalize_name(requirement.name) for requirement in spec.includes})


def _strings(field: str, values: Iterable[str]) -> list[str]:
    # A bare string is iterable too: "django" would become seven one-letter requirements.
    if isinstance(values, str):
        raise InvalidFilter(field, values, "must be a list of strings, not one string")
    items = list(values)
    for value in items:
        if not isinstance(value, str):
            raise InvalidFilter(field, value, "is not a string")
    return items


def _choices(field: str, values: Iterable[str], allowed: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_one_of(field, value, allowed) for value in _strings(field, values))


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidFilter(field, value, f"is not one of {', '.join(allowed)}")
    return value


def _flag(field: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise InvalidFilter(field, value, "must be true or false")
    return value


def _count(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidFilter(field, value, "must be a whole number, 0 or more")
    return value


def _age(value: str | timedelta | None) -> timedelta | None:
    if value is None:
        return None
    age = value if isinstance(value, timedelta) else parse_age(value)
    if age < timedelta(0):
        raise InvalidFilter("min_upload_age", value, "must not be negative")
    return age


def _target_python(value: str) -> Version:
    # A CPython release such as "3.12" or "3.12.1"; strings only, since YAML reads 3.10 as the float 3.1.
    try:
        version = Version(value)
    except InvalidVersion:
        version = None
    plain = version is not None and version == Version(version.base_version) and not version.epoch
    if version is None or not plain or len(version.release) not in (2, 3):
        raise InvalidFilter("python_versions", value, "is not a Python version like '3.12'")
    return version
