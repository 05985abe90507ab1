"""Blocking advisories as the server applies them: in every version, pinned ones included.

A sync keeps what a blocking advisory names out of the versions it commits; older versions still
hold it. The server leaves such a file off every project page and answers its URL with a 404 naming
the advisory, as it does for the repository's blocklist.

Which advisories block: those whose id (or an alias) the repository's ``block_advisories`` prefixes
name (``mirrorflow.tasks.advisories.blocks_id``); the prefixes are those of the remotes that sync the
repository (``RepositoryState.block_advisories``). No request queries the catalog for them:
``ServedAdvisories.refresh`` runs with each read of the repositories' state (in a worker thread)
and parses the advisories again only when their signal (``RepositoryState.advisories``) or the
prefixes in use change, that is after an import.
"""

from __future__ import annotations

from collections.abc import Sequence

from mirrorflow.storage.advisories import advisories_by_id, advisory_ids
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.records import RepositoryState
from mirrorflow.tasks.advisories import Advisories, Advisory, advisory_from_stored, blocks_id

__all__ = ["ServedAdvisories"]


class ServedAdvisories:
    """The imported advisories that some repository's prefixes block, parsed once per import."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._key: tuple[str, tuple[str, ...]] = ("", ())
        self._advisories = Advisories()
        self.loads = 0

    def refresh(self, states: Sequence[RepositoryState]) -> None:
        """Read the advisories again when the states' signal or prefixes changed (a worker thread)."""
        signal = states[0].advisories if states else ""
        prefixes = tuple(sorted({p for state in states for p in state.block_advisories})) if signal else ()
        key = (signal, prefixes)
        if key == self._key:
            return
        advisories = Advisories()
        if signal and prefixes:
            with self.catalog.reading() as session:
                wanted = [i for i, aliases in advisory_ids(session) if blocks_id(prefixes, i, aliases)]
                stored = advisories_by_id(session, wanted) if wanted else []
            advisories = Advisories(
                advisory_from_stored(s.advisory_id, s.modified, s.summary, s.aliases, s.affected)
                for s in stored
            )
        self._advisories, self._key = advisories, key
        self.loads += 1

    def projects(self, state: RepositoryState) -> frozenset[str]:
        """The projects (normalized) of which some version may be blocked in the repository."""
        if not state.advisories:
            return frozenset()
        return frozenset(self._advisories.projects)

    def blocking(self, state: RepositoryState, project: str, version: str) -> Advisory | None:
        """The advisory that blocks ``version`` of ``project`` in the repository, else None."""
        if not state.advisories or not self._advisories:
            return None
        return self._advisories.blocking(state.block_advisories, project, version)
