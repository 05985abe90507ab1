"""Content reads for the content list and the JSON API: one version's packages, a page at a time.

A version's content is what it holds (``present``), what it added or what it removed, as Pulp's
``repository_version``, ``repository_version_added`` and ``repository_version_removed`` filters
select it. Pages are ``limit`` / ``offset`` over a stable order (project, then filename).

``Hidden`` leaves out of ``present`` and ``added`` the packages a repository's blocklist or a blocking
advisory blocks (the caller parses them; storage asks its ``blocks``): older versions still hold them, but no
reader is offered them. Only the packages of the named projects and filenames are read to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, or_, select

from mirrorflow.storage.catalog import Catalog, NotFound
from mirrorflow.storage.models import Package, Repository, RepositoryContent, RepositoryVersion

__all__ = ["ContentPage", "ContentReader", "Hidden", "Membership"]

Membership = Literal["present", "added", "removed"]


@dataclass(frozen=True, slots=True)
class ContentPage:
    """``packages`` from ``offset`` on (at most the limit asked), of ``count`` in all."""

    count: int
    packages: list[Package]


@dataclass(frozen=True, slots=True)
class Hidden:
    """Packages to leave out: of ``projects`` (normalized) or named ``filenames``, those ``blocks`` names.

    ``blocks(name, filename, version)`` is True for a package to hide.
    """

    projects: frozenset[str]
    filenames: frozenset[str]
    blocks: Callable[[str, str, str], bool]


class ContentReader:
    """Read-only queries over packages; each method is one short read transaction."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def version_page(
        self,
        repository: str,
        number: int | None,
        *,
        membership: Membership,
        limit: int | None,
        offset: int,
        hidden: Hidden | None = None,
    ) -> ContentPage:
        """The packages of version ``number`` (the latest when None) of ``repository``, a page.

        Raises ``NotFound`` for an unknown repository, or a version never made or dropped by
        ``retain_repo_versions``.
        """
        with self.catalog.reading() as session:
            repo = session.scalar(select(Repository).where(Repository.name == repository))
            if repo is None:
                raise NotFound("repository", repository)
            wanted = repo.latest_version if number is None else number
            exists = session.scalar(
                select(RepositoryVersion.id).where(
                    RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == wanted
                )
            )
            if exists is None:
                raise NotFound("version", f"{repository}/{wanted}")
            member = _membership(repo.id, wanted, membership)
            if hidden is not None and membership != "removed":  # what left is shown as it left
                member = _without(session, member, hidden)
            return _page(session, member, limit, offset)

    def all_page(self, *, limit: int | None, offset: int) -> ContentPage:
        """Every package of the catalog, in any repository or none, a page."""
        with self.catalog.reading() as session:
            return _page(session, None, limit, offset)

    def package(self, uuid: str) -> Package:
        """The package with this uuid; raise ``NotFound``."""
        with self.catalog.reading() as session:
            found = session.scalar(select(Package).where(Package.uuid == uuid))
            session.expunge_all()
        if found is None:
            raise NotFound("package", uuid)
        return found


def _membership(repository_id: int, number: int, membership: Membership) -> Any:
    """The packages of ``membership`` in version ``number``: a subquery of package ids."""
    content = select(RepositoryContent.package_id).where(RepositoryContent.repository_id == repository_id)
    if membership == "added":
        return content.where(RepositoryContent.version_added == number)
    if membership == "removed":
        return content.where(RepositoryContent.version_removed == number)
    return content.where(
        RepositoryContent.version_added <= number,
        or_(RepositoryContent.version_removed.is_(None), RepositoryContent.version_removed > number),
    )


_NAMES_PER_QUERY = 1000  # names per IN (...): advisories can name thousands of projects


def _without(session: Any, member: Any, hidden: Hidden) -> Any:
    """``member`` less the packages ``hidden`` blocks (reading only those it could block)."""
    projects, filenames = sorted(hidden.projects), sorted(hidden.filenames)
    blocked: list[int] = []
    for start in range(0, max(len(projects), len(filenames)), _NAMES_PER_QUERY):
        end = start + _NAMES_PER_QUERY
        named = or_(
            Package.normalized_name.in_(projects[start:end]), Package.filename.in_(filenames[start:end])
        )
        rows = session.execute(
            select(Package.id, Package.name, Package.filename, Package.version).where(
                Package.id.in_(member), named
            )
        )
        blocked += [package_id for package_id, *file in rows if hidden.blocks(*file)]
    return member.where(RepositoryContent.package_id.not_in(sorted(set(blocked)))) if blocked else member


def _page(session: Any, member: Any, limit: int | None, offset: int) -> ContentPage:
    where = [] if member is None else [Package.id.in_(member)]
    count = session.scalar(select(func.count()).select_from(Package).where(*where)) or 0
    query = select(Package).where(*where).order_by(Package.normalized_name, Package.filename, Package.id)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    packages = list(session.scalars(query))
    session.expunge_all()  # detached before the read transaction ends, so they keep their values
    return ContentPage(count=int(count), packages=packages)
