"""Dependency closure: the includes a remote's explicit includes bring in, transitively (issue 19).

With ``include_dependencies``, each project an include selects brings in the requirements of its
selected releases (``Requires-Dist``) for the *target environments*: every Python version of
``python_versions`` (or, without them, every CPython not end-of-life on the sync's date:
:data:`CPYTHON_RELEASES`) crossed with every platform ``exclude_platforms`` leaves, CPython, on
x86_64 and arm64. A requirement whose marker can be true in at least one of them becomes an
*implicit include* ``name<specifier>[extras]``; the implicit includes are OR-ed with the explicit
ones, and the projects they name are evaluated again, until nothing new comes in (:class:`Closure`).
Every other filter applies to dependencies as to any include, and an explicit exclude wins.

Pure: the standard library and ``packaging`` (markers, requirements, versions); the I/O (pages,
metadata) is ``mirrorflow.tasks.dependencies``' and the loop over rounds the flow's. ``docs/closure.md``
explains the semantics with examples.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from packaging.markers import Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirrorflow.tasks.filter_spec import PLATFORMS, FilterSpec

__all__ = [
    "CPYTHON_RELEASES",
    "Closure",
    "ClosureReport",
    "ProjectDependencies",
    "ReleaseDependencies",
    "dependencies_in",
    "marker_possible",
    "supported_pythons",
    "target_environments",
]

#: CPython feature releases: (version, first release, end of life). Source: the Python developer's
#: guide, "Status of Python versions" (devguide.python.org/versions), and each release's schedule
#: PEP (596, 619, 664, 693, 719, 745, 790), read 2026-12-03. End of life is the last day of the
#: month the devguide gives (3.9: 2025-10). Update this table when a release ships or ends.
CPYTHON_RELEASES: tuple[tuple[str, date, date], ...] = (
    ("3.8", date(2019, 10, 14), date(2024, 10, 7)),
    ("3.9", date(2020, 10, 5), date(2025, 10, 31)),
    ("3.10", date(2021, 10, 4), date(2026, 10, 31)),
    ("3.11", date(2022, 10, 24), date(2027, 10, 31)),
    ("3.12", date(2023, 10, 2), date(2028, 10, 31)),
    ("3.13", date(2024, 10, 7), date(2029, 10, 31)),
    ("3.14", date(2025, 10, 7), date(2030, 10, 31)),
    ("3.15", date(2026, 10, 1), date(2031, 10, 31)),
)

#: Per platform family: (sys_platform, platform_system, os_name, machines). FreeBSD's sys_platform
#: carries its major version; 14 is the current one. Machines as each system's ``platform.machine()``
#: spells x86_64 and arm64.
_PLATFORM_ENV: Mapping[str, tuple[str, str, str, tuple[str, ...]]] = {
    "windows": ("win32", "Windows", "nt", ("AMD64", "ARM64")),
    "macos": ("darwin", "Darwin", "posix", ("x86_64", "arm64")),
    "linux": ("linux", "Linux", "posix", ("x86_64", "aarch64")),
    "freebsd": ("freebsd14", "FreeBSD", "posix", ("amd64", "arm64")),
}

#: Requires-Dist lines kept parsed (``Closure._applicable``); the cache is emptied when it is full.
_LINE_CACHE = 20_000

#: A stand-in for "the latest patch release" of a feature release (see ``target_environments``).
_LATEST_PATCH = 99


def supported_pythons(today: date) -> tuple[Version, ...]:
    """The CPython feature releases released and not end-of-life on ``today``.

    >>> [str(v) for v in supported_pythons(date(2026, 12, 3))]
    ['3.11', '3.12', '3.13', '3.14', '3.15']
    >>> [str(v) for v in supported_pythons(date(2025, 10, 31))]
    ['3.9', '3.10', '3.11', '3.12', '3.13', '3.14']
    """
    return tuple(Version(v) for v, released, eol in CPYTHON_RELEASES if released <= today <= eol)


def target_environments(
    python_versions: Sequence[Version], exclude_platforms: Iterable[str], *, today: date
) -> tuple[dict[str, str], ...]:
    """The marker environments a closure is computed for: Python versions x platforms x machines.

    ``python_versions`` empty: ``supported_pythons(today)``. A feature release such as ``3.12``
    stands for all its patch releases, so it gives two environments per platform and machine:
    ``python_full_version`` ``3.12.0`` and ``3.12.99`` (any later patch); a marker true for some
    patch release of 3.12 is then true in one of them. ``3.12.4`` gives exactly that version.

    >>> envs = target_environments([Version("3.12")], ["windows", "macos", "freebsd"], today=date(2026, 1, 1))
    >>> sorted({(e["sys_platform"], e["platform_machine"], e["python_full_version"]) for e in envs})
    [('linux', 'aarch64', '3.12.0'), ('linux', 'aarch64', '3.12.99'), ('linux', 'x86_64', '3.12.0'), ('linux', 'x86_64', '3.12.99')]
    """
    pythons = tuple(python_versions) or supported_pythons(today)
    platforms = [p for p in PLATFORMS if p not in set(exclude_platforms)]
    envs = []
    for python, platform in itertools.product(pythons, platforms):
        sys_platform, system, os_name, machines = _PLATFORM_ENV[platform]
        major, minor = python.release[0], python.release[1] if len(python.release) > 1 else 0
        fulls = (
            [str(python)]
            if len(python.release) == 3
            else [f"{major}.{minor}.0", f"{major}.{minor}.{_LATEST_PATCH}"]
        )
        for machine, full in itertools.product(machines, fulls):
            envs.append(
                {
                    "implementation_name": "cpython",
                    "implementation_version": full,
                    "os_name": os_name,
                    "platform_machine": machine,
                    "platform_python_implementation": "CPython",
                    "platform_release": "",
                    "platform_system": system,
                    "platform_version": "",
                    "python_full_version": full,
                    "python_version": f"{major}.{minor}",
                    "sys_platform": sys_platform,
                }
            )
    return tuple(envs)


def marker_possible(
    marker: Marker | None, environments: Sequence[Mapping[str, str]], extras: Iterable[str]
) -> bool:
    """True when ``marker`` can be true in one of ``environments`` with one of ``extras`` (or none).

    A marker that cannot be evaluated (an unknown variable, a comparison PEP 508 leaves undefined)
    counts as possible: a dependency is kept rather than silently lost.

    >>> env = target_environments([Version("3.12")], ["windows", "macos", "freebsd"], today=date(2026, 1, 1))
    >>> marker_possible(Marker('sys_platform == "win32"'), env, ())
    False
    >>> marker_possible(Marker('extra == "socks"'), env, ()), marker_possible(Marker('extra == "socks"'), env, ["socks"])
    (False, True)
    """
    if marker is None:
        return True
    for extra in ("", *sorted(set(extras))):
        for environment in environments:
            try:
                if marker.evaluate({**environment, "extra": extra}):
                    return True
            except (UndefinedComparison, UndefinedEnvironmentName):
                return True
    return False


def dependencies_in(
    requires_dist: Iterable[str], environments: Sequence[Mapping[str, str]], extras: Iterable[str]
) -> tuple[list[Requirement], list[str]]:
    """The requirements of one release that can apply to a target environment, markers dropped.

    Returns ``(requirements, invalid lines)``: a Requires-Dist line that is no PEP 508 requirement
    is reported, not guessed at. A URL requirement names no project of an index: also reported.

    >>> env = target_environments([Version("3.12")], ["windows", "macos", "freebsd"], today=date(2026, 1, 1))
    >>> reqs, bad = dependencies_in(['idna<4,>=2.5', 'PySocks!=1.5.7,>=1.5.6; extra == "socks"',
    ...     'tzdata; sys_platform == "win32"', 'sqlparse>=0.3.1'], env, ())
    >>> [str(r) for r in reqs], bad
    (['idna<4,>=2.5', 'sqlparse>=0.3.1'], [])
    """
    kept, invalid = [], []
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            invalid.append(line)
            continue
        if requirement.url:
            invalid.append(line)
            continue
        if not marker_possible(requirement.marker, environments, extras):
            continue
        requirement.marker = None
        kept.append(requirement)
    return kept, invalid


@dataclass(frozen=True, slots=True)
class ReleaseDependencies:
    """One selected release and what its metadata says it requires (``None``: unknown, and why)."""

    version: Version
    filename: str
    requires_dist: tuple[str, ...] | None
    source: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ProjectDependencies:
    """What evaluating one project gave: found on the index or not, and its selected releases."""

    project: NormalizedName
    found: bool
    releases: tuple[ReleaseDependencies, ...] = ()
    #: The page could not be read (the sync's own stages report and retry it).
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class _Edge:
    """The first requirement that brought a project in: ``requirement`` of ``parent`` ``version``."""

    requirement: Requirement
    parent: NormalizedName
    version: Version


@dataclass(frozen=True, slots=True)
class ClosureReport:
    """What a closure added and where it is incomplete; every text line is ready to show."""

    environments: str
    added: tuple[tuple[str, str], ...] = ()
    unknown: tuple[tuple[str, str, str], ...] = ()
    unsatisfied: tuple[tuple[str, str], ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    invalid: tuple[tuple[str, str], ...] = ()
    rounds: int = 0

    @property
    def complete(self) -> bool:
        """False when some dependency is unknown, unsatisfied or excluded: pip may not resolve."""
        return not (self.unknown or self.unsatisfied or self.excluded or self.invalid)

    def as_dict(self) -> dict[str, object]:
        """The report's plain form (the sync report's ``closure`` entry, JSON-ready)."""
        return {
            "environments": self.environments,
            "rounds": self.rounds,
            "complete": self.complete,
            "added": [{"project": p, "chain": c} for p, c in self.added],
            "unknown": [{"release": r, "file": f, "reason": why} for r, f, why in self.unknown],
            "unsatisfied": [{"requirement": c, "why": why} for c, why in self.unsatisfied],
            "excluded": [{"requirement": c, "exclude": e} for c, e in self.excluded],
            "invalid": [{"release": r, "line": line} for r, line in self.invalid],
        }

    def lines(self) -> list[str]:
        """The report as lines for a terminal or a Markdown list."""
        out = [f"dependency closure ({self.environments}): {len(self.added)} project(s) added"]
        out += [f"  added {project}: {chain}" for project, chain in self.added]
        out += [f"  dependencies unknown: {r} ({f}): {why}" for r, f, why in self.unknown]
        out += [f"  unsatisfied: {c}: {why}" for c, why in self.unsatisfied]
        out += [f"  excluded (closure incomplete): {c} by exclude {e!r}" for c, e in self.excluded]
        out += [f"  invalid Requires-Dist in {r}: {line!r}" for r, line in self.invalid]
        return out


@dataclass(slots=True)
class Closure:
    """The fixed-point iteration, one round of projects at a time.

    Each round, the caller evaluates :meth:`pending` (under :meth:`spec`: the filters with every
    include so far), and feeds each project's outcome to :meth:`record`. A project is evaluated again
    when an include on it appears that it was not evaluated under (a wider range, other extras). The
    iteration ends when ``pending()`` is empty: the includes only grow, and there are finitely many.
    """

    base: FilterSpec
    environments: tuple[dict[str, str], ...]
    described: str = ""
    _implicit: dict[NormalizedName, dict[str, Requirement]] = field(default_factory=dict)
    _evaluated: dict[NormalizedName, frozenset[str]] = field(default_factory=dict)
    _versions: dict[NormalizedName, frozenset[Version]] = field(default_factory=dict)
    _found: dict[NormalizedName, bool] = field(default_factory=dict)
    _via: dict[NormalizedName, _Edge] = field(default_factory=dict)
    _unknown: dict[tuple[NormalizedName, Version], tuple[str, str]] = field(default_factory=dict)
    _invalid: set[tuple[str, str]] = field(default_factory=set)
    _failed: dict[NormalizedName, str] = field(default_factory=dict)
    _round_keys: dict[NormalizedName, frozenset[str]] = field(default_factory=dict)
    _explicit_by: dict[NormalizedName, list[Requirement]] = field(default_factory=dict)
    _name_excludes: dict[NormalizedName, Requirement] = field(default_factory=dict)
    _lines: dict[tuple[str, frozenset[str]], Requirement | None | bool] = field(default_factory=dict)
    _asked: dict[tuple[NormalizedName, str], tuple[NormalizedName, Version]] = field(default_factory=dict)
    rounds: int = 0

    @classmethod
    def start(cls, spec: FilterSpec, *, today: date) -> Closure:
        """A closure of ``spec``'s includes for its target environments on ``today``."""
        pythons = spec.python_versions or supported_pythons(today)
        platforms = [p for p in PLATFORMS if p not in spec.exclude_platforms]
        described = (
            f"CPython {', '.join(str(v) for v in pythons)}"
            f"{'' if spec.python_versions else f' (not end-of-life on {today.isoformat()})'}"
            f" on {', '.join(platforms) or 'no platform'}"
        )
        envs = target_environments(spec.python_versions, spec.exclude_platforms, today=today)
        return cls(base=spec, environments=envs, described=described)

    def __post_init__(self) -> None:
        for requirement in self.base.includes:
            self._explicit_by.setdefault(canonicalize_name(requirement.name), []).append(requirement)
        for requirement in reversed(self.base.excludes):  # the first name-only exclude is the one shown
            if not requirement.specifier:
                self._name_excludes[canonicalize_name(requirement.name)] = requirement

    def _explicit(self, name: NormalizedName) -> list[Requirement]:
        return self._explicit_by.get(name, [])

    def _includes_of(self, name: NormalizedName) -> list[Requirement]:
        return [*self._explicit(name), *self._implicit.get(name, {}).values()]

    def _excluded_by(self, name: NormalizedName) -> Requirement | None:
        """The name-only exclude that removes project ``name``, if any (it wins over any include)."""
        return self._name_excludes.get(name)

    def _applicable(self, line: str, extras: frozenset[str]) -> Requirement | None | bool:
        """``line`` parsed, marker dropped and name canonical, when it can apply (else None); False when
        it is invalid. Cached: the releases of a project, and projects, repeat the same lines."""
        key = (line, extras)
        if key not in self._lines:
            if len(self._lines) >= _LINE_CACHE:  # bounded: the hits are among a project's releases
                self._lines.clear()
            requirements, invalid = dependencies_in([line], self.environments, extras)
            if invalid:
                self._lines[key] = False
            elif requirements:
                requirements[0].name = canonicalize_name(requirements[0].name)
                self._lines[key] = requirements[0]
            else:
                self._lines[key] = None
        return self._lines[key]

    def pending(self) -> list[NormalizedName]:
        """The projects to evaluate this round, sorted: new, or with includes not yet evaluated under."""
        names = set(self._explicit_by) | set(self._implicit)
        return sorted(
            n for n in names if self._excluded_by(n) is None and self._evaluated.get(n) != self._keys(n)
        )

    def _explicit_keys(self, name: NormalizedName) -> frozenset[str]:
        return frozenset(str(r) for r in self._explicit(name)) if name in self._explicit_by else frozenset()

    def _keys(self, name: NormalizedName) -> frozenset[str]:
        return self._explicit_keys(name).union(self._implicit.get(name, {}))

    def spec(self) -> FilterSpec:
        """The filters with the implicit includes OR-ed to the explicit ones (sorted, deduplicated)."""
        implicit = sorted(
            (r for name in sorted(self._implicit) for r in self._implicit[name].values()), key=str
        )
        return replace(self.base, includes=(*self.base.includes, *implicit))

    def implicit_includes(self) -> list[str]:
        """The implicit includes as requirement strings, sorted (what the remote's includes gain)."""
        return sorted(str(r) for name in self._implicit for r in self._implicit[name].values())

    def start_round(self) -> list[NormalizedName]:
        """Start a round: return its projects (``pending()``); evaluate them under ``spec()`` as it is now."""
        names = self.pending()
        if names:
            self.rounds += 1
        self._round_keys = {name: self._keys(name) for name in names}
        return names

    def record(self, outcome: ProjectDependencies) -> None:
        """Take one project's outcome: its selected releases' requirements become implicit includes.

        The project counts as evaluated under the includes it had when the round started: one that
        gained an include during the round (another project of the round asked) stays pending.
        """
        name = outcome.project
        self._evaluated[name] = self._round_keys.get(name, self._keys(name))
        self._found[name] = outcome.found
        if outcome.failure:
            self._failed[name] = outcome.failure
        else:
            self._failed.pop(name, None)
        self._versions[name] = frozenset(r.version for r in outcome.releases)
        includes = self._includes_of(name)
        for release in sorted(outcome.releases, key=lambda r: r.version):
            if release.requires_dist is None:
                self._unknown[(name, release.version)] = (release.filename, release.reason or release.source)
                continue
            self._unknown.pop((name, release.version), None)
            # Extras apply to the releases of the includes that asked for them (transitively: an
            # implicit include carries the extras of the requirement that made it).
            extras = {
                e
                for r in includes
                if r.specifier.contains(release.version, prereleases=True)
                for e in r.extras
            }
            for line in release.requires_dist:
                requirement = self._applicable(line, frozenset(extras))
                if requirement is False:
                    self._invalid.add((f"{name} {release.version}", line))
                elif isinstance(requirement, Requirement):
                    self._add(requirement, name, release.version)

    def _add(self, requirement: Requirement, parent: NormalizedName, version: Version) -> None:
        dep = NormalizedName(requirement.name)  # canonical already (``_applicable``)
        key = str(requirement)
        known = self._implicit.setdefault(dep, {})
        if key in known or key in self._explicit_keys(dep):
            return
        known[key] = requirement
        self._asked.setdefault((dep, key), (parent, version))
        if dep not in self._via and not self._explicit(dep):
            self._via[dep] = _Edge(requirement, parent, version)

    def _chain_of(self, requirement: Requirement, parent: NormalizedName, version: Version) -> str:
        """``"asgiref>=3.8.1 <- django 5.2"``, then how that release of ``parent`` came in (through an
        include whose range holds it), up to an explicit include."""
        parts, seen = [f"{requirement} <- {parent} {version}"], {parent}
        while not any(r.specifier.contains(version, prereleases=True) for r in self._explicit(parent)):
            step = next(
                (
                    (included, self._asked[(parent, key)])
                    for key, included in self._implicit.get(parent, {}).items()
                    if (parent, key) in self._asked and included.specifier.contains(version, prereleases=True)
                ),
                None,
            )
            if step is None or step[1][0] in seen:  # a cycle: the chain so far says enough
                break
            included, (parent, version) = step
            seen.add(parent)
            parts.append(f"{included} <- {parent} {version}")
        return " <- ".join(parts)

    def _chain_tail(self, name: NormalizedName) -> str:
        edge = self._via[name]
        return self._chain_of(edge.requirement, edge.parent, edge.version)

    def report(self) -> ClosureReport:
        """What the closure added (with chains) and where it is incomplete."""
        explicit = {canonicalize_name(r.name) for r in self.base.includes}
        added = tuple(
            (name, self._chain_tail(name))
            for name in sorted(self._implicit)
            if name not in explicit
            and name in self._via
            and self._excluded_by(name) is None
            and self._found.get(name, False)
        )
        unsatisfied, excluded = [], []
        for name in sorted(self._implicit):
            for key, requirement in sorted(self._implicit[name].items()):
                edge = self._first_parent(name, requirement)
                shown = self._chain_of(requirement, *edge) if edge else key
                exclude = self._excluded_by(name)
                if exclude is not None:
                    excluded.append((shown, str(exclude)))
                    continue
                if name in self._failed:
                    unsatisfied.append(
                        (shown, f"the page of {name!r} could not be read: {self._failed[name]}")
                    )
                    continue
                if not self._found.get(name, True):
                    unsatisfied.append((shown, f"project {name!r} is not on the index"))
                    continue
                versions = self._versions.get(name, frozenset())
                if not any(requirement.specifier.contains(v, prereleases=True) for v in versions):
                    blockers = [
                        str(r)
                        for r in self.base.excludes
                        if canonicalize_name(r.name) == name and r.specifier
                    ]
                    why = "no release the filters keep satisfies it"
                    if blockers:
                        excluded.append((shown, ", ".join(blockers)))
                        continue
                    unsatisfied.append((shown, why))
        unknown = tuple(
            (f"{name} {version}", filename, why)
            for (name, version), (filename, why) in sorted(self._unknown.items())
        )
        return ClosureReport(
            environments=self.described,
            added=added,
            unknown=unknown,
            unsatisfied=tuple(unsatisfied),
            excluded=tuple(excluded),
            invalid=tuple(sorted(self._invalid)),
            rounds=self.rounds,
        )

    def _first_parent(
        self, name: NormalizedName, requirement: Requirement
    ) -> tuple[NormalizedName, Version] | None:
        """A release that asked for ``requirement`` (for the report's chain): the first edge recorded."""
        return self._asked.get((name, str(requirement)))
