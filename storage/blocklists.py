"""Repository blocklists, kept in the catalog: the entries, and the version that adding one makes.

One row per (repository, entry); the entry is stored in its canonical text
(``mirrorflow.tasks.blocklist.BlocklistEntry.canonical``), which the caller parsed: storage does not
judge entries, it only asks the caller's ``blocks(project, filename, version)`` which files of the
entry's project leave. Adding an entry that blocks files of the latest version makes, in the same
transaction (holding the repository row lock that sync commits take), the next version without them;
older versions keep their content and the server refuses the files there (``mirrorflow.server.app``).
Removing an entry changes no version: the next sync brings the files back (the sync's filter
fingerprint holds the blocklist, so it re-evaluates every project).

Errors: ``NotFound`` (unknown repository or entry), ``AlreadyExists`` (an entry given twice).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mirrorflow.storage.catalog import Catalog, CatalogError, NotFound, VersionView, _view
from mirrorflow.storage.models import (
    Base,
    Package,
    Repository,
    RepositoryContent,
    RepositoryVersion,
    UTCDateTime,
)

__all__ = [
    "BlocklistRow",
    "BlocklistView",
    "EntryExists",
    "add_entry",
    "all_entries",
    "list_entries",
    "remove_entry",
]


def _now() -> datetime:
    return datetime.now(UTC)


class BlocklistRow(Base):
    __tablename__ = "repository_blocklist"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    entry: Mapped[str] = mapped_column(Text)
    #: ``project``, ``requirement`` or ``filename`` (``mirrorflow.tasks.blocklist.EntryKind``).
    kind: Mapped[str] = mapped_column(String(16))
    #: The normalized project the entry names (a filename's project for a filename entry).
    project: Mapped[str] = mapped_column(Text)
    added: Mapped[datetime] = mapped_column(UTCDateTime(), default=_now)

    __table_args__ = (UniqueConstraint("repository_id", "entry", name="uq_repository_blocklist_entry"),)


@dataclass(frozen=True, slots=True)
class BlocklistView:
    repository: str
    entry: str
    kind: str
    project: str
    added: datetime


class EntryExists(CatalogError):
    def __init__(self, repository: str, entry: str) -> None:
        self.repository, self.entry = repository, entry
        super().__init__(f"entry: {entry!r} is already in the blocklist of repository {repository!r}")


#: ``blocks(project, filename, version)``: True when the entry blocks that file.
Blocks = Callable[[str, str, str], bool]


def add_entry(
    catalog: Catalog, repository: str, *, entry: str, kind: str, project: str, blocks: Blocks
) -> tuple[BlocklistView, VersionView | None]:
    """Add ``entry`` and make the next version without the latest version's files it ``blocks``.

    One transaction: the entry and the version appear together or not at all. Returns the entry and
    the new version (None when the latest version holds no file the entry blocks). Raises
    ``NotFound`` (repository) or ``EntryExists``.
    """
    try:
        with catalog.session() as session:
            repo = session.scalar(select(Repository).where(Repository.name == repository).with_for_update())
            if repo is None:
                raise NotFound("repository", repository)
            row = BlocklistRow(repository_id=repo.id, entry=entry, kind=kind, project=project, added=_now())
            session.add(row)
            session.flush()
            version = _drop_blocked(session, repo, project, blocks, entry)
            view = BlocklistView(repository, row.entry, row.kind, row.project, row.added)
            return view, version
    except IntegrityError:
        raise EntryExists(repository, entry) from None


def _drop_blocked(
    session: Session, repo: Repository, project: str, blocks: Blocks, entry: str
) -> VersionView | None:
    is_open = and_(RepositoryContent.repository_id == repo.id, RepositoryContent.version_removed.is_(None))
    rows = session.execute(
        select(RepositoryContent.id, Package.name, Package.filename, Package.version)
        .join(Package, Package.id == RepositoryContent.package_id)
        .where(is_open, Package.normalized_name == project)
    ).all()
    leaving = [content_id for content_id, name, filename, version in rows if blocks(name, filename, version)]
    if not leaving:
        return None
    number = repo.latest_version + 1
    session.execute(
        update(RepositoryContent)
        .where(RepositoryContent.id.in_(leaving))
        .values(version_removed=number)
        .execution_options(synchronize_session=False)
    )
    previous = session.scalar(
        select(RepositoryVersion.present_count).where(
            RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == repo.latest_version
        )
    )
    version = RepositoryVersion(
        repository_id=repo.id,
        number=number,
        base_version=repo.latest_version,
        added_count=0,
        removed_count=len(leaving),
        present_count=(previous or 0) - len(leaving),
        report={"blocklisted": {"entry": entry, "removed": len(leaving)}},
    )
    session.add(version)
    repo.latest_version = number
    session.flush()
    return _view(repo, version)


def list_entries(catalog: Catalog, repository: str) -> list[BlocklistView]:
    """The repository's entries, by entry text. Raises ``NotFound``."""
    with catalog.session() as session:
        repo_id = _repository_id(session, repository)
        rows = session.scalars(
            select(BlocklistRow).where(BlocklistRow.repository_id == repo_id).order_by(BlocklistRow.entry)
        )
        return [BlocklistView(repository, r.entry, r.kind, r.project, r.added) for r in rows]


def remove_entry(catalog: Catalog, repository: str, entry: str) -> None:
    """Remove ``entry``; raise ``NotFound`` for an unknown repository or an entry not in its blocklist."""
    with catalog.session() as session:
        repo_id = _repository_id(session, repository)
        result = session.execute(
            delete(BlocklistRow).where(BlocklistRow.repository_id == repo_id, BlocklistRow.entry == entry)
        )
        if not getattr(result, "rowcount", 0):
            raise NotFound(f"repository {repository!r}: blocklist entry", entry)


def all_entries(session: Session) -> dict[int, tuple[str, ...]]:
    """Every repository's entries by repository id, each sorted (the server's change signal reads it)."""
    found: dict[int, list[str]] = {}
    for repo_id, entry in session.execute(
        select(BlocklistRow.repository_id, BlocklistRow.entry).order_by(
            BlocklistRow.repository_id, BlocklistRow.entry
        )
    ):
        found.setdefault(repo_id, []).append(entry)
    return {repo_id: tuple(entries) for repo_id, entries in found.items()}


def _repository_id(session: Session, repository: str) -> int:
    repo_id = session.scalar(select(Repository.id).where(Repository.name == repository))
    if repo_id is None:
        raise NotFound("repository", repository)
    return repo_id
