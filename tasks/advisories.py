"""OSV advisories for the PyPI ecosystem: parse one record, and say which versions it names.

An OSV record (https://ossf.github.io/osv-schema/) names packages in ``affected[]``; for PyPI each
entry gives its project (``package.name``, canonicalized here once), an explicit ``versions`` list
and ``ranges`` whose ``ECOSYSTEM`` events are PEP 440 versions. ``parse_advisory`` keeps the PyPI
entries only; ``Affected.contains`` answers the schema's ``IsVulnerable``:

- a version listed in ``versions`` is affected (compared as PEP 440 versions, so ``1.0`` is ``1.0.0``);
- a version lies in a range when it is below one of the range's ``limit`` events (none: no limit;
  ``*``: infinity), and walking the events sorted by version (``introduced: "0"`` first), the last
  event that applies is ``introduced`` (``v >= introduced``), not ``fixed`` (``v >= fixed``) nor
  ``last_affected`` (``v > last_affected``).

Other range types (``GIT``, ``SEMVER``) are not evaluated: the ``versions`` list covers them. A
range event that is not PEP 440 is left out with a note (``Advisory.notes``) instead of refusing
the record; a listed version that is not PEP 440 is noted and matched as exact text only, which is
also how a held version that is not PEP 440 is matched.

``Advisories`` indexes parsed records by project; the sync's filter (``mirrorflow.tasks.filters``)
asks it for the advisory that blocks a file, ``repository advisories`` for every one that names it.

Exception tree::

    ValueError
    └── InvalidAdvisory    .field, .value, .reason (a record that is not OSV)

Pure: imports only the standard library, ``packaging`` and other pure modules.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirrorflow.storage.errors import MirrorflowError

__all__ = [
    "DEFAULT_BLOCK_ADVISORIES",
    "Advisories",
    "Advisory",
    "AdvisoryBlock",
    "Affected",
    "Event",
    "EventKind",
    "InvalidAdvisory",
    "advisory_from_stored",
    "blocks",
    "blocks_id",
    "parse_advisory",
    "stored_affected",
    "validate_prefixes",
]

#: The remote's ``block_advisories`` default: malicious packages (``MAL-`` ids) never enter a version.
DEFAULT_BLOCK_ADVISORIES = ("MAL",)
#: The OSV ecosystem this module reads.
_ECOSYSTEM = "PyPI"


class InvalidAdvisory(MirrorflowError, ValueError):
    """An OSV record without what every record must have (``id``, ``modified``) or of the wrong shape."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {value!r} {reason}")


class EventKind(enum.StrEnum):
    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


#: Ties sort in this order: an ``introduced`` equal to a ``fixed`` is fixed at once.
_TIE = {EventKind.INTRODUCED: 0, EventKind.LAST_AFFECTED: 1, EventKind.FIXED: 2, EventKind.LIMIT: 3}


@dataclass(frozen=True, slots=True)
class Event:
    """One range event; ``version`` None is the schema's ``"0"`` (introduced) or ``"*"`` (limit)."""

    kind: EventKind
    version: Version | None

    def sort_key(self) -> tuple[int, Version, int]:
        if self.version is None:  # "0" sorts first, "*" last
            return (0 if self.kind is EventKind.INTRODUCED else 2, Version("0"), _TIE[self.kind])
        return (1, self.version, _TIE[self.kind])


@dataclass(frozen=True, slots=True)
class Affected:
    """One ``affected[]`` entry of the PyPI ecosystem: the project, listed versions, ECOSYSTEM ranges."""

    project: NormalizedName
    versions: tuple[str, ...]
    #: Each range's events, sorted by version (``Event.sort_key``).
    ranges: tuple[tuple[Event, ...], ...]
    #: ``versions`` parsed once (PEP 440 equality and hash: ``1.0`` is ``1.0.0``).
    _listed: frozenset[Version] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        listed = set()
        for text in self.versions:
            try:
                listed.add(Version(text))
            except InvalidVersion:
                continue
        object.__setattr__(self, "_listed", frozenset(listed))

    def contains(self, version: str) -> bool:
        """True when ``version`` of the project is affected (the schema's evaluation).

        >>> affected = Affected.build("Foo_Bar", versions=["0.9"], ranges=[[("introduced", "1.0"), ("fixed", "1.2")]])
        >>> [affected.contains(v) for v in ("0.9", "0.9.0", "1.0", "1.1.post1", "1.2", "nonsense")]
        [True, True, True, True, False, False]
        """
        try:
            parsed = Version(version)
        except InvalidVersion:
            return version in self.versions
        if parsed in self._listed:
            return True
        return any(_in_range(parsed, events) for events in self.ranges)

    @classmethod
    def build(
        cls,
        project: str,
        *,
        versions: Iterable[str] = (),
        ranges: Iterable[Iterable[tuple[str, str]]] = (),
    ) -> Affected:
        """An entry from plain values (tests, doctests); raises ``InvalidVersion`` for a bad event."""
        built = tuple(
            tuple(sorted((_event(kind, text) for kind, text in events), key=Event.sort_key))
            for events in ranges
        )
        return cls(canonicalize_name(project), tuple(versions), built)


def _in_range(version: Version, events: Sequence[Event]) -> bool:
    limits = [e for e in events if e.kind is EventKind.LIMIT]
    if limits and not any(e.version is None or version < e.version for e in limits):
        return False
    vulnerable = False
    for event in events:  # sorted by version; the last event that applies decides
        if event.kind is EventKind.INTRODUCED:
            vulnerable = vulnerable or event.version is None or version >= event.version
        elif _ends(event, version):
            vulnerable = False
    return vulnerable


def _ends(event: Event, version: Version) -> bool:
    """True when ``event`` (fixed, last_affected) ends an affected stretch before ``version``."""
    if event.version is None:
        return False
    if event.kind is EventKind.FIXED:
        return version >= event.version
    return event.kind is EventKind.LAST_AFFECTED and version > event.version


def _event(kind: str, text: str) -> Event:
    event_kind = EventKind(kind)
    if (event_kind is EventKind.INTRODUCED and text == "0") or (
        event_kind is EventKind.LIMIT and "*" in text
    ):
        return Event(event_kind, None)
    return Event(event_kind, Version(text))


@dataclass(frozen=True, slots=True)
class Advisory:
    """One OSV record, reduced to what a mirror needs: its PyPI entries."""

    id: str
    modified: datetime
    summary: str
    aliases: tuple[str, ...]
    affected: tuple[Affected, ...]
    #: When the record was withdrawn (it then names nothing: ignored).
    withdrawn: datetime | None = None
    #: What was left out while parsing: versions that are not PEP 440, unknown events.
    notes: tuple[str, ...] = ()

    def names(self, project: str, version: str) -> bool:
        """True when an entry of ``project`` contains ``version`` (never for a withdrawn record)."""
        if self.withdrawn is not None:
            return False
        name = canonicalize_name(project)
        return any(a.project == name and a.contains(version) for a in self.affected)

    @property
    def projects(self) -> frozenset[NormalizedName]:
        return frozenset(a.project for a in self.affected)


def parse_advisory(data: object) -> Advisory:
    """Parse one OSV record (already loaded JSON); raise ``InvalidAdvisory`` naming the field.

    Entries of other ecosystems are left out: an advisory of npm packages only has no ``affected``.

    >>> record = {"id": "MAL-2024-1", "modified": "2024-05-01T10:00:00Z", "affected": [
    ...     {"package": {"ecosystem": "PyPI", "name": "Evil_Pkg"}, "versions": ["1.0", "bad version"]}]}
    >>> advisory = parse_advisory(record)
    >>> advisory.names("evil-pkg", "1.0.0"), advisory.names("evil-pkg", "bad version")
    (True, True)
    >>> advisory.notes
    ("affected[0].versions: 'bad version' is not a PEP 440 version (matched as exact text only)",)
    >>> parse_advisory({"id": "X-1"})
    Traceback (most recent call last):
    ...
    mirrorflow.tasks.advisories.InvalidAdvisory: modified: None is not an RFC 3339 timestamp
    """
    if not isinstance(data, Mapping):
        raise InvalidAdvisory("record", type(data).__name__, "is not a JSON object")
    advisory_id = data.get("id")
    if not isinstance(advisory_id, str) or not advisory_id.strip() or advisory_id != advisory_id.strip():
        raise InvalidAdvisory("id", advisory_id, "is not an advisory id")
    modified = _timestamp("modified", data.get("modified"))
    withdrawn = None if data.get("withdrawn") is None else _timestamp("withdrawn", data["withdrawn"])
    summary = data.get("summary") or ""
    if not isinstance(summary, str):
        raise InvalidAdvisory("summary", summary, "is not a string")
    aliases = _strings("aliases", data.get("aliases") or [])
    entries = data.get("affected") or []
    if not isinstance(entries, list):
        raise InvalidAdvisory("affected", entries, "is not a list")
    notes: list[str] = []
    affected = []
    for index, entry in enumerate(entries):
        parsed = _affected(f"affected[{index}]", entry, notes)
        if parsed is not None:
            affected.append(parsed)
    return Advisory(
        id=advisory_id,
        modified=modified,
        summary=summary.strip(),
        aliases=tuple(aliases),
        affected=tuple(affected),
        withdrawn=withdrawn,
        notes=tuple(notes),
    )


def _affected(where: str, entry: object, notes: list[str]) -> Affected | None:
    if not isinstance(entry, Mapping):
        raise InvalidAdvisory(where, entry, "is not a JSON object")
    package = entry.get("package")
    if package is None:  # allowed by the schema for some databases; names no PyPI project
        return None
    if not isinstance(package, Mapping):
        raise InvalidAdvisory(f"{where}.package", package, "is not a JSON object")
    if package.get("ecosystem") != _ECOSYSTEM:
        return None
    name = package.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidAdvisory(f"{where}.package.name", name, "is not a project name")
    versions = []
    for text in _strings(f"{where}.versions", entry.get("versions") or []):
        try:
            Version(text)
        except InvalidVersion:  # kept: a held version of the very same text is still named
            notes.append(f"{where}.versions: {text!r} is not a PEP 440 version (matched as exact text only)")
        versions.append(text)
    ranges = entry.get("ranges") or []
    if not isinstance(ranges, list):
        raise InvalidAdvisory(f"{where}.ranges", ranges, "is not a list")
    parsed_ranges = []
    for number, item in enumerate(ranges):
        at = f"{where}.ranges[{number}]"
        if not isinstance(item, Mapping):
            raise InvalidAdvisory(at, item, "is not a JSON object")
        if item.get("type") != "ECOSYSTEM":
            continue
        events = _events(at, item.get("events"), notes)
        if events:
            parsed_ranges.append(tuple(sorted(events, key=Event.sort_key)))
    return Affected(canonicalize_name(name.strip()), tuple(versions), tuple(parsed_ranges))


def _events(at: str, events: object, notes: list[str]) -> list[Event]:
    if not isinstance(events, list):
        raise InvalidAdvisory(f"{at}.events", events, "is not a list")
    parsed: list[Event] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping) or len(event) != 1:
            raise InvalidAdvisory(f"{at}.events[{index}]", event, "is not an object of one event")
        ((kind, text),) = event.items()
        if kind not in EventKind.__members__.values():
            notes.append(f"{at}.events[{index}]: unknown event {kind!r} (left out)")
            continue
        if not isinstance(text, str):
            raise InvalidAdvisory(f"{at}.events[{index}].{kind}", text, "is not a string")
        try:
            parsed.append(_event(kind, text))
        except InvalidVersion:
            notes.append(f"{at}.events[{index}].{kind}: {text!r} is not a PEP 440 version (left out)")
    return parsed


def _strings(field: str, values: object) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidAdvisory(field, values, "is not a list of strings")
    return list(values)


def _timestamp(field: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidAdvisory(field, value, "is not an RFC 3339 timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidAdvisory(field, value, "is not an RFC 3339 timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def blocks(prefixes: Iterable[str], advisory: Advisory) -> bool:
    """True when one of ``prefixes`` names the advisory's id or one of its aliases.

    A prefix names an id that equals it or starts with it and a ``-``: ``MAL`` names ``MAL-2024-1``
    (not ``MALWARE-1``), ``PYSEC-2024`` names ``PYSEC-2024-12``, a whole id names that advisory.
    Case is ignored: ``mal`` blocks what ``MAL`` blocks (a prefix typed in lower case must never
    quietly let malware through).

    >>> advisory = parse_advisory({"id": "GHSA-x", "modified": "2024-01-01T00:00:00Z", "aliases": ["MAL-2024-9"]})
    >>> blocks(["MAL"], advisory), blocks(["MA"], advisory), blocks([], advisory)
    (True, False, False)
    """
    return blocks_id(prefixes, advisory.id, advisory.aliases)


def blocks_id(prefixes: Iterable[str], advisory_id: str, aliases: Iterable[str] = ()) -> bool:
    """``blocks`` for an id and its aliases, before the advisory is parsed (the catalog's rows)."""
    ids = [i.casefold() for i in (advisory_id, *aliases)]
    folded = [p.casefold() for p in prefixes]
    return any(i == p or i.startswith(p if p.endswith("-") else f"{p}-") for p in folded for i in ids)


def validate_prefixes(values: Iterable[object]) -> tuple[str, ...]:
    """The ``block_advisories`` prefixes, checked: non-empty strings without spaces, deduplicated.

    >>> validate_prefixes(["MAL", "PYSEC", "MAL"])
    ('MAL', 'PYSEC')
    """
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise InvalidAdvisory("block_advisories", value, "is not an advisory id prefix such as 'MAL'")
        seen[value] = None
    return tuple(seen)


class Advisories:
    """Parsed advisories indexed by project: which name a file, and which block it.

    >>> advisories = Advisories([parse_advisory({"id": "MAL-2024-1", "modified": "2024-01-01T00:00:00Z",
    ...     "affected": [{"package": {"ecosystem": "PyPI", "name": "evil"}, "versions": ["2.0"]}]})])
    >>> advisories.blocking(["MAL"], "Evil", "2.0").id, advisories.blocking(["MAL"], "evil", "1.0")
    ('MAL-2024-1', None)
    """

    __slots__ = ("_by_project",)

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self._by_project: dict[NormalizedName, list[Advisory]] = {}
        for advisory in advisories:
            if advisory.withdrawn is not None:
                continue
            for project in advisory.projects:
                self._by_project.setdefault(project, []).append(advisory)
        for listed in self._by_project.values():
            listed.sort(key=lambda a: a.id)

    def __bool__(self) -> bool:
        return bool(self._by_project)

    @property
    def projects(self) -> frozenset[NormalizedName]:
        """Every project some advisory names."""
        return frozenset(self._by_project)

    def naming(self, project: str, version: str) -> list[Advisory]:
        """Every advisory that names ``version`` of ``project``, by id."""
        found = self._by_project.get(canonicalize_name(project), ())
        return [a for a in found if a.names(project, version)]

    def blocking(self, prefixes: Sequence[str], project: str, version: str) -> Advisory | None:
        """The first advisory (by id) that names the version and that ``prefixes`` block, else None."""
        if not prefixes:
            return None
        found = self._by_project.get(canonicalize_name(project), ())
        return next((a for a in found if blocks(prefixes, a) and a.names(project, version)), None)


@dataclass(frozen=True, slots=True)
class AdvisoryBlock:
    """What a sync refuses: the advisories of a batch's projects, and the remote's ``block_advisories``."""

    prefixes: tuple[str, ...]
    advisories: Advisories

    def blocking(self, project: str, version: str) -> Advisory | None:
        return self.advisories.blocking(self.prefixes, project, version)

    def __bool__(self) -> bool:
        return bool(self.prefixes) and bool(self.advisories)


def advisory_from_stored(
    advisory_id: str, modified: datetime, summary: str, aliases: Sequence[str], affected: Any
) -> Advisory:
    """An advisory from the catalog's columns (``affected``: the JSON ``stored_affected`` wrote)."""
    return Advisory(
        id=advisory_id,
        modified=modified,
        summary=summary,
        aliases=tuple(aliases),
        affected=tuple(
            Affected.build(entry["project"], versions=entry["versions"], ranges=entry["ranges"])
            for entry in affected
        ),
    )


def stored_affected(advisory: Advisory) -> list[dict[str, Any]]:
    """The advisory's entries as JSON for the catalog, read back by ``advisory_from_stored``."""
    return [
        {
            "project": a.project,
            "versions": list(a.versions),
            "ranges": [[[e.kind.value, _text(e)] for e in events] for events in a.ranges],
        }
        for a in advisory.affected
    ]


def _text(event: Event) -> str:
    if event.version is None:
        return "0" if event.kind is EventKind.INTRODUCED else "*"
    return str(event.version)
