"""A repository's blocklist (Pulp 3.29's semantics): what no version may serve and no sync may bring back.

An entry is one of three things, told apart by ``parse_entry``:

- a project name (``shelf-reader``): every file of the project;
- a PEP 508 requirement (``shelf-reader==0.1``, ``shelf-reader<2``): the project's files whose version
  the specifier contains (pre-releases included: a blocked range is blocked whole);
- an exact distribution filename (``shelf_reader-0.1-py2.py3-none-any.whl``): that one file.

Entries are stored in their canonical text (``canonical``: the normalized name, then the specifier), so
``Shelf_Reader`` and ``shelf-reader`` are one entry. ``Blocklist.blocks`` answers for one file with the
entry that blocks it; the sync's filter stage (``mirrorflow.tasks.filters``), the blocklist command
(``mirrorflow.flows.cli_blocklist``) and the server (``mirrorflow.server.app``) all ask it.

Exception tree::

    ValueError
    └── InvalidBlocklistEntry    .field, .value, .reason

Pure: imports only the standard library, ``packaging`` and other pure modules.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.filenames import InvalidFilename, parse_filename

__all__ = ["Blocklist", "BlocklistEntry", "EntryKind", "InvalidBlocklistEntry", "parse_entry"]

#: Characters that only a requirement holds: such an entry is never read as a filename.
_REQUIREMENT_CHARS = frozenset("<>=!~@;[ (,")


class InvalidBlocklistEntry(MirrorflowError, ValueError):
    """An entry that is neither a project name, a plain requirement nor a distribution filename."""

    def __init__(self, value: str, reason: str, *, field: str = "entry") -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"{field}: {value!r} {reason}")


class EntryKind(enum.StrEnum):
    PROJECT = "project"
    REQUIREMENT = "requirement"
    FILENAME = "filename"


@dataclass(frozen=True, slots=True)
class BlocklistEntry:
    """One parsed entry: its kind, its project, and the specifier or filename that narrows it."""

    kind: EntryKind
    project: NormalizedName
    specifier: SpecifierSet
    filename: str | None

    @property
    def canonical(self) -> str:
        """The text the catalog stores: ``name``, ``name<specifier>`` or the filename as given.

        >>> parse_entry("Shelf_Reader >= 0.1, <2").canonical
        'shelf-reader<2,>=0.1'
        """
        if self.filename is not None:
            return self.filename
        return f"{self.project}{self.specifier}"

    def blocks(self, project: str, filename: str, version: str) -> bool:
        """True when this entry blocks the file ``filename`` (of ``project``, at ``version``).

        A version that is not PEP 440 is blocked by a name entry only (no specifier can contain it).
        """
        if self.filename is not None:
            return filename == self.filename
        if canonicalize_name(project) != self.project:
            return False
        if not self.specifier:
            return True
        try:
            return self.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False


def parse_entry(text: str) -> BlocklistEntry:
    """Parse an entry; raise ``InvalidBlocklistEntry`` naming the field and the value.

    >>> [parse_entry(t).kind.value for t in ("Shelf_Reader", "shelf-reader==0.1", "shelf_reader-0.1.tar.gz")]
    ['project', 'requirement', 'filename']
    >>> parse_entry("shelf-reader; python_version < '3'")
    Traceback (most recent call last):
    ...
    mirrorflow.tasks.blocklist.InvalidBlocklistEntry: entry: "shelf-reader; python_version < '3'" may not hold environment markers
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidBlocklistEntry(text, "is empty: give a project name, a requirement or a filename")
    if not _REQUIREMENT_CHARS.intersection(stripped):
        try:
            parsed = parse_filename(stripped)
        except InvalidFilename as exc:
            if exc.reason != "unknown file extension":
                raise InvalidBlocklistEntry(
                    text, f"is not a valid distribution filename: {exc.reason}"
                ) from None
        else:
            return BlocklistEntry(EntryKind.FILENAME, parsed.name, SpecifierSet(), stripped)
    try:
        requirement = Requirement(stripped)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise InvalidBlocklistEntry(
            text, f"is not a project name, a requirement or a distribution filename ({reason})"
        ) from None
    if requirement.marker is not None:
        raise InvalidBlocklistEntry(text, "may not hold environment markers")
    if requirement.url is not None:
        raise InvalidBlocklistEntry(text, "may not hold a URL")
    if requirement.extras:
        raise InvalidBlocklistEntry(text, "may not hold extras")
    kind = EntryKind.REQUIREMENT if requirement.specifier else EntryKind.PROJECT
    return BlocklistEntry(kind, canonicalize_name(requirement.name), requirement.specifier, None)


class Blocklist:
    """A repository's parsed entries, indexed by project and by filename.

    >>> blocklist = Blocklist.parse(["shelf-reader<0.2", "other-1.0.tar.gz"])
    >>> blocklist.blocks("Shelf_Reader", "shelf_reader-0.1.tar.gz", "0.1")
    'shelf-reader<0.2'
    >>> blocklist.blocks("shelf-reader", "shelf_reader-0.2.tar.gz", "0.2") is None
    True
    """

    __slots__ = ("entries", "_by_filename", "_by_project")

    def __init__(self, entries: Iterable[BlocklistEntry] = ()) -> None:
        self.entries = tuple(entries)
        self._by_filename = {e.filename: e for e in self.entries if e.filename is not None}
        self._by_project: dict[str, list[BlocklistEntry]] = {}
        for entry in self.entries:
            if entry.filename is None:
                self._by_project.setdefault(entry.project, []).append(entry)

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Blocklist:
        """Parse stored entries (raises ``InvalidBlocklistEntry`` for one that does not parse)."""
        return cls(parse_entry(text) for text in texts)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def blocks(self, project: str, filename: str, version: str) -> str | None:
        """The canonical text of the first entry that blocks the file, or None."""
        found = self._by_filename.get(filename)
        if found is not None:
            return found.canonical
        for entry in self._by_project.get(canonicalize_name(project), ()):
            if entry.blocks(project, filename, version):
                return entry.canonical
        return None

    def blocks_project(self, project: str) -> bool:
        """True when a name entry (no specifier) blocks every file of ``project``."""
        return any(not e.specifier for e in self._by_project.get(canonicalize_name(project), ()))
