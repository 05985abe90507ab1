"""``mirrorflow advisories import PATH`` and ``mirrorflow repository advisories --name foo``.

``import`` reads a local OSV export (the PyPI ecosystem's zip, or a directory of OSV JSON files;
``mirrorflow.tasks.osv_export``) into the catalog in one transaction and prints what it did: a bad
file is one line naming it, exit 1, and nothing is imported. Importing the same export again
changes nothing. ``repository advisories`` prints the held files that any imported advisory names
(PEP 440 ranges, ``mirrorflow.tasks.advisories``). See docs/supply-chain.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorflow.flows.cli_app import Name, app, emit, open_catalog, repository_app

if TYPE_CHECKING:
    from mirrorflow.storage.advisories import AdvisoryRecord

__all__ = ["advisories_import", "repository_advisories"]

advisories_app = typer.Typer(
    no_args_is_help=True,
    help="Import OSV advisories (malware, vulnerabilities) from a local export.",
    rich_markup_mode=None,
)
app.add_typer(advisories_app, name="advisories")

#: How many notes (versions left out, unknown events) the import prints; the rest are counted.
_NOTES_SHOWN = 20


@advisories_app.command("import")
def advisories_import(
    path: Annotated[Path, typer.Argument(help="The PyPI ecosystem's OSV zip, or a directory of OSV JSON.")],
) -> None:
    """Import (or update) advisories from a local OSV export, in one transaction."""
    from mirrorflow.storage.advisories import import_advisories

    notes: list[str] = []
    counts = import_advisories(open_catalog(), _records(path, notes))
    emit({**counts.as_dict(), "notes": notes[:_NOTES_SHOWN], "notes_total": len(notes)})


def _records(path: Path, notes: list[str]) -> Iterator[AdvisoryRecord]:
    from mirrorflow.storage.advisories import AdvisoryRecord
    from mirrorflow.tasks.advisories import stored_affected
    from mirrorflow.tasks.osv_export import read_export

    for where, advisory in read_export(path):
        notes.extend(f"{where}: {note}" for note in advisory.notes)
        yield AdvisoryRecord(
            advisory_id=advisory.id,
            modified=advisory.modified,
            summary=advisory.summary,
            aliases=advisory.aliases,
            affected=stored_affected(advisory),
            projects=frozenset(advisory.projects),
            withdrawn=advisory.withdrawn is not None,
        )


@repository_app.command("advisories")
def repository_advisories(
    name: Name,
    version: Annotated[int | None, typer.Option(help="A version number (default: the latest).")] = None,
) -> None:
    """List the held files that an imported advisory names (id, summary, package, version, files)."""
    from mirrorflow.flows.advisory_sync import held_report

    emit(held_report(open_catalog(), name, version))
