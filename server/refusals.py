"""What ``mirrorflow serve`` refuses in a repository, in every version: the files its blocklist names
and the files a blocking advisory names (``mirrorflow.server.advisories``).

One rule for every output that lists a version: serve's project pages and ``/simple/`` listing,
and ``repository publish``. A project whose every file in the version is refused has no page (404)
and is not listed. A listed project keeps its serial (``mirrorflow.storage.records.ProjectEntry``: the
version's, which refusing files does not change), except a project only pulled through, whose serial
is the largest id among the files it still shows; its page shows the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mirrorflow.server.advisories import ServedAdvisories
from mirrorflow.storage.records import PageFile, ProjectEntry, RepositoryState, ServedFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist

__all__ = ["Refusals"]


class Refusals:
    """The refusals of one repository: ``blocklist`` (its parsed entries, None when empty) and the
    ``advisories`` that block in it (refreshed by the caller)."""

    def __init__(
        self, state: RepositoryState, blocklist: Blocklist | None, advisories: ServedAdvisories
    ) -> None:
        self.state, self.blocklist, self.advisories = state, blocklist or None, advisories

    def __bool__(self) -> bool:
        return self.blocklist is not None or bool(self.advisories.projects(self.state))

    def refuses(self, file: PageFile | ServedFile) -> bool:
        """Whether serve leaves ``file`` out (its page, its URL)."""
        named = file.package if isinstance(file, ServedFile) else file
        if self.blocklist is not None and self.blocklist.blocks(named.name, named.filename, named.version):
            return True
        return self.advisories.blocking(self.state, named.name, named.version) is not None

    def candidates(self) -> frozenset[str]:
        """The projects (normalized) of which some file may be refused: only these are read to list."""
        named = {e.project for e in self.blocklist.entries} if self.blocklist is not None else set()
        return frozenset(named) | self.advisories.projects(self.state)

    def listed(
        self, serving: ServingCatalog, number: int, projects: Sequence[ProjectEntry], *, pull_through: bool
    ) -> list[ProjectEntry]:
        """``projects`` (of version ``number``, and of the pull-through cache with ``pull_through``) as
        serve lists them: without those whose every file it refuses; a candidate only pulled through
        has the serial of the files it still shows (see the module docstring). Reads the files of the
        candidates only.
        """
        if not self:
            return list(projects)
        candidates = self.candidates()
        held = serving.projects_files(
            self.state.id, number, (p.normalized_name for p in projects if p.normalized_name in candidates)
        )
        listed = []
        for project in projects:
            if project.normalized_name in candidates:
                files: Sequence[PageFile | ServedFile] = held.get(project.normalized_name, [])
                pulled = not files and pull_through
                if pulled:  # as the page: the version's files, else the pulled ones
                    files = serving.pull_through_files(self.state.id, project.normalized_name)[0]
                kept = [f for f in files if not self.refuses(f)]
                if not kept:
                    continue
                if pulled:
                    serial = max(f.package_id for f in kept)
                    project = ProjectEntry(project.normalized_name, project.display_name, serial)
            listed.append(project)
        return listed

    def kept(self, files: Iterable[PageFile]) -> list[PageFile]:
        """The files serve shows."""
        return [f for f in files if not self.refuses(f)]
