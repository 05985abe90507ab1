"""Which projects and files a repository keeps: filter settings, validated once, applied in a fixed order.

``FilterSpec.build(...)`` validates the user's settings; ``wanted_projects`` picks the projects to fetch;
``select_files`` decides, for one project page, which files to keep. Every dropped file gets exactly one
:class:`Skip` naming the first rule that dropped it; the rules apply in the order of :class:`SkipReason`'s
members, as ``docs/filters.md`` explains with examples.

Exception tree::

    ValueError
    └── InvalidFilter    .field, .value, .reason (FilterSpec.build; a bad filename is a Skip)

Pure: imports only the standard library, ``packaging`` and other pure ``tasks`` modules.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from storage.errors import MirrorflowError
from tasks.distributions import DistFile
from tasks.filenames import PACKAGE_TYPES, InvalidFilename, ParsedFilename, parse_filename
from tasks.platforms import PLATFORMS, excluded_platform, python_mismatch

__all__ = [
    "PLATFORMS",
    "Candidate",
    "FilterSpec",
    "InvalidFilter",
    "Selection",
    "Skip",
    "SkipReason",
    "included_project_names",
    "parse_age",
    "select_files",
    "validate_requirements",
    "wanted_projects",
]

_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class InvalidFilter(MirrorflowError, ValueError):
    """A filter setting that cannot be used: names the field, shows the value and says why."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}: {value!r} {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class SkipReason(enum.StrEnum):
    """Why a file was not kept; the members are listed in the order the rules apply."""

    INVALID_FILENAME = "invalid-filename"
    WRONG_PROJECT = "wrong-project"
    NOT_INCLUDED = "not-included"
    EXCLUDED = "excluded"
    PRERELEASE = "prerelease"
    PACKAGE_TYPE = "package-type"
    PLATFORM = "platform"
    PYTHON_VERSION = "python-version"
    YANKED = "yanked"
    TOO_NEW = "too-new"
    KEEP_LATEST = "keep-latest"


@dataclass(frozen=True, slots=True)
class Skip:
    """A file that was not kept, with the first rule that dropped it and a human-readable detail."""

    file: DistFile
    reason: SkipReason
    detail: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file that passed every rule, with what its filename says."""

    file: DistFile
    parsed: ParsedFilename


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome for one project: kept files sorted by (version, filename), skips sorted by filename."""

    kept: tuple[Candidate, ...]
    skipped: tuple[Skip, ...]

    def counts(self) -> dict[str, int]:
        """Return the number of skips per reason value, in rule order, leaving out reasons with none."""
        counter = Counter(skip.reason for skip in self.skipped)
        return {reason.value: counter[reason] for reason in SkipReason if counter[reason]}


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
        )


def parse_age(text: str) -> timedelta:
    """Parse an age such as ``"7d"``, ``"12h"``, ``"30m"``, ``"2w"`` or ``"90s"``; raise InvalidFilter.

    >>> parse_age("7d"), parse_age("90s")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=90))
    >>> parse_age("7 days")
    Traceback (most recent call last):
    ...
    tasks.filters.InvalidFilter: min_upload_age: '7 days' is not an age like '7d', '12h', '30m', '2w' or '90s'
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


def wanted_projects(names: Iterable[NormalizedName], spec: FilterSpec) -> list[NormalizedName]:
    """Return the listed projects to sync, sorted and deduplicated: all of them, or only the included ones.

    A name-only exclude (``"scipy"``) removes its project; an exclude with a specifier drops only versions.
    """
    dropped = {canonicalize_name(r.name) for r in spec.excludes if not r.specifier}
    included = set(included_project_names(spec)) if spec.includes else None
    return sorted({name for name in names if name not in dropped and (included is None or name in included)})


def select_files(
    project: NormalizedName, files: Sequence[DistFile], spec: FilterSpec, *, now: datetime
) -> Selection:
    """Return which of one project's files to keep, and one :class:`Skip` (first rule) per other file.

    The result does not depend on the order of ``files``. Naive datetimes are taken as UTC.
    """
    context = _Context.create(canonicalize_name(project), spec, now)
    survivors: list[Candidate] = []
    skipped: list[Skip] = []
    for file in files:
        outcome = _judge(file, context)
        if isinstance(outcome, Skip):
            skipped.append(outcome)
        else:
            survivors.append(outcome)
    kept, too_old = _keep_latest(survivors, spec.keep_latest_packages)
    skipped.extend(too_old)
    return Selection(
        kept=tuple(sorted(kept, key=lambda c: (c.parsed.version, c.file.filename, c.file.url))),
        skipped=tuple(sorted(skipped, key=lambda s: (s.file.filename, s.file.url))),
    )


@dataclass(frozen=True, slots=True)
class _Context:
    """What every rule needs for one project, computed once per ``select_files`` call."""

    project: NormalizedName
    spec: FilterSpec
    includes: tuple[Requirement, ...]
    excludes: tuple[Requirement, ...]
    cutoff: datetime | None

    @classmethod
    def create(cls, project: NormalizedName, spec: FilterSpec, now: datetime) -> _Context:
        includes = tuple(r for r in spec.includes if canonicalize_name(r.name) == project)
        excludes = tuple(r for r in spec.excludes if canonicalize_name(r.name) == project)
        cutoff = None if spec.min_upload_age is None else _utc(now) - spec.min_upload_age
        return cls(project, spec, includes, excludes, cutoff)


def _judge(file: DistFile, context: _Context) -> Candidate | Skip:
    try:
        parsed = parse_filename(file.filename, project=context.project)
    except InvalidFilename as exc:
        return Skip(file, SkipReason.INVALID_FILENAME, exc.reason)
    candidate = Candidate(file, parsed)
    for reason, rule in _RULES:
        detail = rule(candidate, context)
        if detail is not None:
            return Skip(file, reason, detail)
    return candidate


def _wrong_project(c: Candidate, ctx: _Context) -> str | None:
    if c.parsed.name == ctx.project:
        return None
    return f"filename names project {c.parsed.name!r}, not {ctx.project!r}"


def _not_included(c: Candidate, ctx: _Context) -> str | None:
    if not ctx.spec.includes:
        return None
    if not ctx.includes:
        return f"project {ctx.project!r} is not in includes"
    # Several includes of one project are OR-ed; a name alone has an empty specifier, which matches all.
    if any(r.specifier.contains(c.parsed.version, prereleases=True) for r in ctx.includes):
        return None
    return f"{c.parsed.version} matches no include ({', '.join(repr(str(r)) for r in ctx.includes)})"


def _excluded(c: Candidate, ctx: _Context) -> str | None:
    for requirement in ctx.excludes:
        if requirement.specifier.contains(c.parsed.version, prereleases=True):
            return f"{c.parsed.version} matches exclude {str(requirement)!r}"
    return None


def _prerelease(c: Candidate, ctx: _Context) -> str | None:
    if ctx.spec.prereleases or not c.parsed.version.is_prerelease:
        return None
    return f"{c.parsed.version} is a pre-release or development release"


def _package_type(c: Candidate, ctx: _Context) -> str | None:
    packagetype = c.file.packagetype or c.parsed.packagetype
    if not ctx.spec.package_types or packagetype in ctx.spec.package_types:
        return None
    return f"{packagetype} is not in package_types"


def _yanked(c: Candidate, ctx: _Context) -> str | None:
    if not (ctx.spec.skip_yanked and c.file.yanked):
        return None
    return f"yanked: {c.file.yanked_reason}" if c.file.yanked_reason else "yanked"


def _too_new(c: Candidate, ctx: _Context) -> str | None:
    if ctx.cutoff is None:
        return None
    if c.file.upload_time is None:
        return "no upload time" if ctx.spec.missing_upload_time == "skip" else None
    if _utc(c.file.upload_time) <= ctx.cutoff:
        return None
    return f"uploaded {_utc(c.file.upload_time).isoformat()}, after the cutoff {ctx.cutoff.isoformat()}"


# The documented order: keep it in step with SkipReason and docs/filters.md.
_RULES: tuple[tuple[SkipReason, Callable[[Candidate, _Context], str | None]], ...] = (
    (SkipReason.WRONG_PROJECT, _wrong_project),
    (SkipReason.NOT_INCLUDED, _not_included),
    (SkipReason.EXCLUDED, _excluded),
    (SkipReason.PRERELEASE, _prerelease),
    (SkipReason.PACKAGE_TYPE, _package_type),
    (SkipReason.PLATFORM, lambda c, ctx: excluded_platform(c.parsed, ctx.spec.exclude_platforms)),
    (
        SkipReason.PYTHON_VERSION,
        lambda c, ctx: python_mismatch(
            c.parsed, c.file.filename, c.file.requires_python, ctx.spec.python_versions
        ),
    ),
    (SkipReason.YANKED, _yanked),
    (SkipReason.TOO_NEW, _too_new),
)


def _keep_latest(survivors: list[Candidate], count: int) -> tuple[list[Candidate], list[Skip]]:
    if count == 0:
        return survivors, []
    newest = set(sorted({c.parsed.version for c in survivors}, reverse=True)[:count])
    older = [c for c in survivors if c.parsed.version not in newest]
    why = f"not among the {count} newest versions"
    skips = [Skip(c.file, SkipReason.KEEP_LATEST, f"{c.parsed.version} {why}") for c in older]
    return [c for c in survivors if c.parsed.version in newest], skips


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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
