"""``mirrorflow repository blocklist add|list|remove``: a repository's blocklist (Pulp 3.29's semantics).

An entry is a project name, a PEP 508 requirement (``name==1.0``, ``name<2``) or an exact filename
(``mirrorflow.tasks.blocklist``). ``add`` makes, in one transaction, the next version without the
latest version's files the entry blocks and prints the entry with that version (``"version": null``
when it blocks none); every later sync skips them (``blocklisted`` in the report) and ``serve``
answers 404 for them in every version. ``remove`` changes no version: the next sync brings the
files back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from mirrorflow.flows.cli_app import UsageError, emit, open_catalog, repository_app

if TYPE_CHECKING:  # imported by the command that runs (see flows.cli's docstring)
    from mirrorflow.storage.blocklists import BlocklistView
    from mirrorflow.tasks.blocklist import BlocklistEntry

__all__ = ["blocklist_add", "blocklist_list", "blocklist_remove", "blocklist_view"]

blocklist_app = typer.Typer(
    no_args_is_help=True,
    help="Block projects, versions or files of a repository, in every version.",
    rich_markup_mode=None,
)
repository_app.add_typer(blocklist_app, name="blocklist")

Repo = Annotated[str, typer.Option("--repository", help="Repository name.")]
Entry = Annotated[
    str,
    typer.Option(
        "--entry", help="A project name, a requirement ('name==1.0', 'name<2') or an exact filename."
    ),
]


def blocklist_view(view: BlocklistView) -> dict[str, Any]:
    return {
        "repository": view.repository,
        "entry": view.entry,
        "kind": view.kind,
        "project": view.project,
        "pulp_created": view.added,
    }


def _parsed(text: str) -> BlocklistEntry:
    from mirrorflow.tasks.blocklist import InvalidBlocklistEntry, parse_entry

    try:
        return parse_entry(text)
    except InvalidBlocklistEntry as exc:
        raise UsageError(str(exc)) from None


@blocklist_app.command("add")
def blocklist_add(repository: Repo, entry: Entry) -> None:
    """Add an entry: the next version leaves out the files it blocks, and so does every later sync."""
    from mirrorflow.flows.views import version_view
    from mirrorflow.storage.blocklists import add_entry

    parsed = _parsed(entry)
    view, version = add_entry(
        open_catalog(),
        repository,
        entry=parsed.canonical,
        kind=parsed.kind.value,
        project=parsed.project,
        blocks=parsed.blocks,
    )
    emit({**blocklist_view(view), "version": None if version is None else version_view(version)})


@blocklist_app.command("list")
def blocklist_list(repository: Repo) -> None:
    """List a repository's entries."""
    from mirrorflow.storage.blocklists import list_entries

    emit([blocklist_view(view) for view in list_entries(open_catalog(), repository)])


@blocklist_app.command("remove")
def blocklist_remove(repository: Repo, entry: Entry) -> None:
    """Remove an entry (as added, in any spelling): the next sync brings its files back."""
    from mirrorflow.storage.blocklists import remove_entry

    remove_entry(open_catalog(), repository, _parsed(entry).canonical)
