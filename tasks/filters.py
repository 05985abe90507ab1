"""The filter stage: which projects and files a repository keeps, rules applied in a fixed order.

``FilterSpec.build(...)`` (``mirrorflow.tasks.filter_spec``) validates the user's settings; ``wanted_projects``
picks the projects to fetch; ``select_files`` decides, for one project page, which files to keep;
``filter_project`` adds the rules no index may talk us out of (an unsafe URL, a declared size over
the limit, a field no catalog column may hold, no sha256 where the file is recorded unfetched). Every
dropped file gets exactly one :class:`Skip` naming the first rule that dropped it; the rules apply in
the order of :class:`SkipReason`'s members, as ``docs/filters.md`` explains with examples. The sync
(``mirrorflow.tasks.stages``) and pull-through (``mirrorflow.server.pull_through``) both call ``filter_project``: one rule
set, every refusal counted by its reason.

Exception tree::

    ValueError
    └── InvalidFilter    .field, .value, .reason (FilterSpec.build; a bad filename is a Skip)

Pure: imports only the standard library, ``packaging`` and other pure ``tasks`` modules.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from mirrorflow.tasks.advisories import AdvisoryBlock
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.distributions import DistFile
from mirrorflow.tasks.filenames import InvalidFilename, ParsedFilename, parse_filename
from mirrorflow.tasks.filter_spec import (
    PLATFORMS,
    FilterSpec,
    InvalidFilter,
    included_project_names,
    parse_age,
    validate_requirements,
)
from mirrorflow.tasks.platforms import excluded_platform, python_mismatch
from mirrorflow.tasks.project_status import withdraws

__all__ = [
    "PLATFORMS",
    "SAFETY_REASONS",
    "Candidate",
    "FilterSpec",
    "InvalidFilter",
    "Blocklist",
    "Selection",
    "Skip",
    "SkipReason",
    "advisory_skip",
    "blocklisted",
    "filter_project",
    "included_project_names",
    "parse_age",
    "refusal",
    "select_files",
    "validate_requirements",
    "wanted_projects",
    "withhold_quarantined",
]


class SkipReason(enum.StrEnum):
    """Why a file was not kept; the members are listed in the order the rules apply."""

    INVALID_FILENAME = "invalid-filename"
    WRONG_PROJECT = "wrong-project"
    #: The repository's blocklist (``mirrorflow.tasks.blocklist``) names the file, whatever the remote selects.
    BLOCKLISTED = "blocklisted"
    #: An imported OSV advisory whose id the remote's ``block_advisories`` names (``mirrorflow.tasks.advisories``).
    ADVISORY = "advisory"
    #: The upstream marks the project quarantined (PEP 792): no file of it is kept (``withhold_quarantined``).
    QUARANTINED = "quarantined"
    NOT_INCLUDED = "not-included"
    EXCLUDED = "excluded"
    PRERELEASE = "prerelease"
    PACKAGE_TYPE = "package-type"
    PLATFORM = "platform"
    PYTHON_VERSION = "python-version"
    YANKED = "yanked"
    TOO_NEW = "too-new"
    KEEP_LATEST = "keep-latest"
    # The refusals (``refusal``): after keep-latest, so a refused file still counts among the newest.
    UNSAFE_URL = "unsafe-url"
    TOO_LARGE = "too-large"
    INVALID_FIELD = "invalid-field"
    NO_SHA256 = "no-sha256"
    #: Not a rule of this module: bytes that failed their digest twice while downloading (``tasks.fetch``).
    UNVERIFIABLE = "unverifiable"


#: The refusals a sync logs as warnings: an index that serves them is broken or hostile.
SAFETY_REASONS = frozenset({SkipReason.UNSAFE_URL, SkipReason.TOO_LARGE, SkipReason.INVALID_FIELD})


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


def wanted_projects(names: Iterable[NormalizedName], spec: FilterSpec) -> list[NormalizedName]:
    """Return the listed projects to sync, sorted and deduplicated: all of them, or only the included ones.

    A name-only exclude (``"scipy"``) removes its project; an exclude with a specifier drops only versions.
    """
    dropped = {canonicalize_name(r.name) for r in spec.excludes if not r.specifier}
    included = set(included_project_names(spec)) if spec.includes else None
    return sorted({name for name in names if name not in dropped and (included is None or name in included)})


def select_files(
    project: NormalizedName,
    files: Sequence[DistFile],
    spec: FilterSpec,
    *,
    now: datetime,
    blocklist: Blocklist | None = None,
    advisories: AdvisoryBlock | None = None,
) -> Selection:
    """Return which of one project's files to keep, and one :class:`Skip` (first rule) per other file.

    ``blocklist``: the repository's (none: nothing blocked). ``advisories``: those of this project
    and the prefixes that block them (none: nothing blocked). The result does not depend on the order
    of ``files``. Naive datetimes are taken as UTC.
    """
    context = _Context.create(canonicalize_name(project), spec, now, blocklist or _NO_BLOCKLIST)
    if advisories:
        context = replace(context, advisories=advisories)
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
    blocklist: Blocklist
    advisories: AdvisoryBlock | None = None

    @classmethod
    def create(
        cls, project: NormalizedName, spec: FilterSpec, now: datetime, blocklist: Blocklist
    ) -> _Context:
        includes = tuple(r for r in spec.includes if canonicalize_name(r.name) == project)
        excludes = tuple(r for r in spec.excludes if canonicalize_name(r.name) == project)
        cutoff = None if spec.min_upload_age is None else _utc(now) - spec.min_upload_age
        return cls(project, spec, includes, excludes, cutoff, blocklist)


_NO_BLOCKLIST = Blocklist()


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


def blocklisted(blocklist: Blocklist, project: NormalizedName, filename: str, version: str) -> str | None:
    """The detail of a ``blocklisted`` skip when an entry of ``blocklist`` names the file, else None.

    >>> blocklisted(Blocklist.parse(["foo<2"]), NormalizedName("foo"), "foo-1.0.tar.gz", "1.0")
    "blocked by the repository's blocklist entry 'foo<2'"
    """
    entry = blocklist.blocks(project, filename, version)
    return None if entry is None else f"blocked by the repository's blocklist entry {entry!r}"


def advisory_skip(advisories: AdvisoryBlock | None, project: str, version: str) -> str | None:
    """The detail of an ``advisory`` skip, naming the advisory's id, when one blocks the version."""
    advisory = None if advisories is None else advisories.blocking(project, version)
    if advisory is None:
        return None
    about = f": {advisory.summary[:120]}" if advisory.summary else ""
    return f"{advisory.id} names {canonicalize_name(project)} {version}{about}"


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
    (
        SkipReason.BLOCKLISTED,
        lambda c, ctx: blocklisted(ctx.blocklist, ctx.project, c.file.filename, str(c.parsed.version)),
    ),
    (SkipReason.ADVISORY, lambda c, ctx: advisory_skip(ctx.advisories, ctx.project, str(c.parsed.version))),
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


def filter_project(
    project: NormalizedName,
    files: Sequence[DistFile],
    spec: FilterSpec,
    *,
    now: datetime,
    max_file_bytes: int | None,
    require_sha256: bool,
    blocklist: Blocklist,
    advisories: AdvisoryBlock | None = None,
) -> Selection:
    """``select_files``, then ``refusal`` on each kept file: what a sync (or pull-through) keeps.

    ``require_sha256``: the files are recorded now and fetched later (on_demand, streamed,
    pull-through), which cannot be verified without a listed digest. ``blocklist``: the
    repository's. No defaults: say which. ``advisories``: see ``select_files``.
    """
    selection = select_files(project, files, spec, now=now, blocklist=blocklist, advisories=advisories)
    kept: list[Candidate] = []
    refused: list[Skip] = []
    for candidate in selection.kept:
        skip = refusal(candidate.file, max_file_bytes=max_file_bytes, require_sha256=require_sha256)
        if skip is None:
            kept.append(candidate)
        else:
            refused.append(skip)
    if not refused:
        return selection
    skipped = sorted((*selection.skipped, *refused), key=lambda s: (s.file.filename, s.file.url))
    return Selection(kept=tuple(kept), skipped=tuple(skipped))


def withhold_quarantined(
    selection: Selection, *, status: str | None, reason: str | None, keep_quarantined: bool
) -> Selection:
    """The ``quarantined`` rule: a project the upstream quarantined (PEP 792) keeps no file.

    Applies after ``blocklisted``: a file an earlier rule dropped keeps that reason, every other file
    (kept, or dropped by a later rule) is skipped as ``quarantined``. ``keep_quarantined`` (the
    remote's field, no default here) keeps the selection as it is.

    >>> file = DistFile(filename="a-1.0.tar.gz", url="https://index.example/a-1.0.tar.gz", sha256=None)
    >>> kept = Selection(kept=(Candidate(file, parse_filename("a-1.0.tar.gz")),), skipped=())
    >>> withhold_quarantined(kept, status="quarantined", reason="malware", keep_quarantined=False).counts()
    {'quarantined': 1}
    >>> withhold_quarantined(kept, status="archived", reason=None, keep_quarantined=False) is kept
    True
    """
    if not withdraws(status, keep_quarantined=keep_quarantined):
        return selection
    detail = (
        f"the upstream quarantined the project: {reason}"
        if reason
        else "the upstream quarantined the project"
    )
    order = list(SkipReason)
    first = order.index(SkipReason.QUARANTINED)
    skipped = [
        skip if order.index(skip.reason) < first else Skip(skip.file, SkipReason.QUARANTINED, detail)
        for skip in selection.skipped
    ]
    skipped += [Skip(c.file, SkipReason.QUARANTINED, detail) for c in selection.kept]
    skipped.sort(key=lambda s: (s.file.filename, s.file.url))
    return Selection(kept=(), skipped=tuple(skipped))


def refusal(file: DistFile, *, max_file_bytes: int | None, require_sha256: bool) -> Skip | None:
    """Return the ``Skip`` for a file no index may make us fetch or record, else None.

    ``unsafe-url``: not http(s) with a host (``file://`` would read the mirror's own disk; other
    hosts are fine: indexes often serve files from a separate host). ``too-large``: a declared size
    above ``max_file_bytes``, refused before any byte is fetched. ``invalid-field``: text holding
    NUL, which no catalog column may store. ``no-sha256``: with ``require_sha256``, a file listed
    without a digest.

    >>> file = DistFile(filename="a-1.0.tar.gz", url="file:///etc/passwd", sha256=None)
    >>> refusal(file, max_file_bytes=None, require_sha256=False).reason
    <SkipReason.UNSAFE_URL: 'unsafe-url'>
    """
    if _unsafe_url(_origin(file.url)):
        return Skip(file, SkipReason.UNSAFE_URL, f"{file.url[:200]!r} is not an http(s) URL with a host")
    if max_file_bytes is not None and file.size is not None and file.size > max_file_bytes:
        return Skip(file, SkipReason.TOO_LARGE, f"declared size {file.size} > {max_file_bytes} bytes")
    if "\x00" in f"{file.url}{file.requires_python or ''}{file.yanked_reason or ''}":
        return Skip(file, SkipReason.INVALID_FIELD, "a field holds NUL")
    if require_sha256 and file.sha256 is None:
        return Skip(file, SkipReason.NO_SHA256, "no sha256 listed: a later fetch could not be verified")
    return None


#: Characters that ``urlsplit`` strips or removes: a URL holding one takes the uncached check.
_SPACE_OR_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")


def _origin(url: str) -> str:
    """Return the part of ``url`` that decides ``_unsafe_url``: ``scheme://netloc`` of a plain http(s)
    URL (its netloc ends at the first "/" after it), else the whole URL."""
    start = 8 if url.startswith("https://") else 7 if url.startswith("http://") else 0
    if not start or _SPACE_OR_CONTROL_RE.search(url) is not None:
        return url
    end = url.find("/", start)
    return url if end < 0 else url[:end]


@functools.lru_cache(maxsize=1024)
def _unsafe_url(url: str) -> bool:
    # The files of a sync share a few origins: ``urlsplit`` each once (bounded cache) instead of per file.
    try:
        parts = urlsplit(url)
        return parts.scheme not in ("http", "https") or not parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host or port
        return True
