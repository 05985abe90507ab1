"""The catalog as the JSON API shows it (``mirrorflow.server.api.ReadApi``), with the CLI's views.

``mirrorflow serve`` hands this to the server, so that every href the CLI prints answers with the
same JSON the CLI printed (secrets hidden the same way). A version's content leaves out what
``mirrorflow serve``'s pages leave out: what the repository's blocklist blocks and what a blocking
advisory names (``mirrorflow.server.advisories``), in every version (older versions hold it; no
reader is offered it).
"""

from __future__ import annotations

from typing import Any

from mirrorflow.flows.views import package_view, remote_view, repository_view, version_view
from mirrorflow.server.advisories import ServedAdvisories
from mirrorflow.server.hrefs import Membership
from mirrorflow.storage.blocklists import list_entries
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content_reads import ContentReader, Hidden
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.blocklist import Blocklist

__all__ = ["CatalogReadApi"]


class CatalogReadApi:
    """``mirrorflow.server.api.ReadApi`` over a catalog. Every method is a few short read transactions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.reader = ContentReader(catalog)
        self.serving = ServingCatalog(catalog)
        self.advisories = ServedAdvisories(catalog)  # parsed again only after an advisories import

    def repositories(self) -> list[dict[str, Any]]:
        return [
            repository_view(row, self.catalog.remote_uuid_of(row)) for row in self.catalog.list_repositories()
        ]

    def repository(self, uuid: str) -> dict[str, Any]:
        row = self.catalog.get_repository(self.catalog.name_of("repository", uuid))
        return repository_view(row, self.catalog.remote_uuid_of(row))

    def versions(self, repository_uuid: str) -> list[dict[str, Any]]:
        name = self.catalog.name_of("repository", repository_uuid)
        return [version_view(version) for version in self.catalog.list_versions(name)]

    def version(self, repository_uuid: str, number: int) -> dict[str, Any]:
        name = self.catalog.name_of("repository", repository_uuid)
        return version_view(self.catalog.get_version(name, number))

    def remotes(self) -> list[dict[str, Any]]:
        return [remote_view(row) for row in self.catalog.list_remotes()]

    def remote(self, uuid: str) -> dict[str, Any]:
        return remote_view(self.catalog.get_remote(self.catalog.name_of("remote", uuid)))

    def content(
        self, version: tuple[str, int, Membership] | None, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        if version is None:
            page = self.reader.all_page(limit=limit, offset=offset)
        else:
            repository_uuid, number, membership = version
            name = self.catalog.name_of("repository", repository_uuid)
            page = self.reader.version_page(
                name, number, membership=membership, limit=limit, offset=offset, hidden=self._hidden(name)
            )
        return page.count, [package_view(row) for row in page.packages]

    def _hidden(self, repository: str) -> Hidden | None:
        """What serve leaves out of the repository's pages (None: nothing): its blocklist's entries
        and the versions blocking advisories name."""
        blocklist = Blocklist.parse(entry.entry for entry in list_entries(self.catalog, repository))
        state = self.serving.repository(repository)
        self.advisories.refresh([state])
        advised = self.advisories.projects(state)
        if not blocklist and not advised:
            return None

        def blocks(name: str, filename: str, version: str) -> bool:
            if blocklist and blocklist.blocks(name, filename, version) is not None:
                return True
            return self.advisories.blocking(state, name, version) is not None

        return Hidden(
            projects=frozenset(e.project for e in blocklist.entries if e.filename is None) | advised,
            filenames=frozenset(e.filename for e in blocklist.entries if e.filename is not None),
            blocks=blocks,
        )

    def package(self, uuid: str) -> dict[str, Any]:
        return package_view(self.reader.package(uuid))
