"""Imported advisories meet repositories: what a sync refuses, removes, and what a repository holds.

The catalog keeps the advisories (``mirrorflow.storage.advisories``); the decisions are pure
(``mirrorflow.tasks.advisories``). The sync reads the advisories of each batch's projects once per
batch (``advisories_for``), never per file, and, before its commit, the held files that the remote's
``block_advisories`` now block (``held_blocked``): the new version leaves them out, in additive
mode too. ``repository advisories`` lists every held file some advisory names (``held_report``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from packaging.utils import canonicalize_name

from mirrorflow.storage.advisories import (
    HeldPackage,
    StoredAdvisory,
    advisories_by_id,
    advisories_of,
    advisory_count,
    advisory_digest,
    advisory_ids,
    held_named,
)
from mirrorflow.storage.catalog import Catalog
from mirrorflow.tasks.advisories import Advisories, Advisory, advisory_from_stored, blocks_id

__all__ = ["advisories_for", "advisory_state", "held_blocked", "held_report"]


def _parsed(stored: Iterable[StoredAdvisory]) -> Advisories:
    return Advisories(
        advisory_from_stored(s.advisory_id, s.modified, s.summary, s.aliases, s.affected) for s in stored
    )


def advisory_state(catalog: Catalog) -> str:
    """A digest of the imported advisories for the sync's fingerprint; empty when none are imported."""
    if advisory_count(catalog) == 0:
        return ""
    with catalog.reading() as session:
        return advisory_digest(session)


def advisories_for(catalog: Catalog, names: Iterable[str], prefixes: Sequence[str]) -> Advisories:
    """The imported advisories that ``prefixes`` block and that name any of ``names`` (one query per
    call: call it per batch). Others are not parsed: the filter would only pass them by."""
    with catalog.reading() as session:
        stored = advisories_of(session, {canonicalize_name(n) for n in names})
    return _parsed(s for s in stored if blocks_id(prefixes, s.advisory_id, s.aliases))


def _held(
    catalog: Catalog, repository: str, number: int | None
) -> tuple[int, list[tuple[HeldPackage, Advisory]]]:
    with catalog.reading() as session:
        version, held = held_named(session, repository, number)
        advisories = _parsed(advisories_of(session, {h.project for h in held}))
    return version, [(h, a) for h in held for a in advisories.naming(h.project, h.version)]


def held_blocked(
    catalog: Catalog, repository: str, prefixes: Sequence[str]
) -> tuple[list[int], dict[str, str]]:
    """The latest version's packages that ``prefixes`` block, and for each filename the advisory's id."""
    if not prefixes:
        return [], {}
    with catalog.reading() as session:
        wanted = [i for i, aliases in advisory_ids(session) if blocks_id(prefixes, i, aliases)]
        if not wanted:
            return [], {}
        advisories = _parsed(advisories_by_id(session, wanted))
        _, held = held_named(session, repository, None, projects=advisories.projects)
    ids: list[int] = []
    events: dict[str, str] = {}
    for package in held:
        advisory = advisories.blocking(prefixes, package.project, package.version)
        if advisory is not None:
            ids.append(package.package_id)
            events[package.filename] = f"{advisory.id} names {package.project} {package.version}"
    return ids, events


def held_report(catalog: Catalog, repository: str, number: int | None) -> dict[str, Any]:
    """What ``repository advisories`` prints: each advisory naming held versions, with their files."""
    version, named = _held(catalog, repository, number)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for held, advisory in named:
        key = (advisory.id, held.project, held.version)
        entry = found.setdefault(
            key,
            {
                "id": advisory.id,
                "aliases": list(advisory.aliases),
                "summary": advisory.summary,
                "package": held.project,
                "version": held.version,
                "filenames": [],
            },
        )
        entry["filenames"].append(held.filename)
    return {"repository": repository, "version": version, "advisories": [found[k] for k in sorted(found)]}
