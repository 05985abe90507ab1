"""``mirrorflow repository diff --name N --against-remote``: what the repository holds that its upstream
no longer has (takedowns, issue 20).

Reads the upstream's listing (unless the remote's includes name the projects) and the page of every
project the repository's latest version holds, then compares (``mirrorflow.tasks.project_status``, pure):
projects gone from the listing or answering 404, and files gone from pages the upstream still serves.
A quarantined project's page lists no file by design: it is not a takedown (the sync reports its
status instead). Prints JSON like the other commands and commits nothing.

With ``--exit-code`` it exits as ``git diff --exit-code`` does: 1 when something is gone upstream,
0 when nothing is; an error is still its one ``Error: ...`` line (exit 1, or Typer's 2 for a
usage error), so a script tells a difference from a failure by stdout (JSON only when compared).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorflow.flows.cli_app import UsageError, emit, repository_app

if TYPE_CHECKING:  # imported by the command that runs (see flows.cli's docstring)
    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.tasks.filter_spec import FilterSpec
    from mirrorflow.tasks.project_status import GoneUpstream

__all__ = ["repository_diff"]


@repository_app.command("diff")
def repository_diff(
    name: Annotated[str, typer.Option("--name", help="Repository name.")],
    against_remote: Annotated[
        bool,
        typer.Option("--against-remote", help="Compare the latest version with the remote's upstream now."),
    ] = False,
    remote: Annotated[
        str | None, typer.Option(help="Remote to compare with (default: the repository's).")
    ] = None,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code", help="Exit 1 when something is gone upstream, 0 when nothing is (as git diff)."
        ),
    ] = False,
) -> None:
    """List what the repository holds that the upstream no longer has; changes nothing."""
    if not against_remote:
        raise UsageError("diff: give --against-remote (the one comparison diff makes)")
    from mirrorflow.flows.remote_spec import RemoteFields, filter_spec_of
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings

    settings = Settings()
    catalog = catalog_for(settings)
    repo = catalog.get_repository(name)
    remote_name = remote if remote is not None else catalog.remote_name_of(repo)
    if remote_name is None:
        raise UsageError(f"remote: repository {name!r} has no remote; pass one (--remote NAME)")
    fields = RemoteFields.from_row(catalog.get_remote(remote_name))
    gone = _gone_upstream(catalog, repo.id, fields, filter_spec_of(fields.model_dump()), settings)
    emit(
        {
            "repository": name,
            "version": repo.latest_version,
            "remote": remote_name,
            "summary": gone.summary(),
            "gone_upstream": gone.as_dict(),
        }
    )
    if exit_code and (gone.projects or gone.file_count):
        sys.exit(1)


def _gone_upstream(
    catalog: Catalog, repository_id: int, fields: RemoteFields, spec: FilterSpec, settings: Settings
) -> GoneUpstream:
    from concurrent.futures import ThreadPoolExecutor

    from mirrorflow.flows.runtime import http_spec_for
    from mirrorflow.flows.sync_config import DEFAULT_CONCURRENCY
    from mirrorflow.storage.project_statuses import latest_filenames, latest_projects
    from mirrorflow.tasks.clients import http_client_from
    from mirrorflow.tasks.distributions import ProjectPage
    from mirrorflow.tasks.filters import included_project_names
    from mirrorflow.tasks.index_client import IndexClient, ProjectNotFound, locate_simple_root
    from mirrorflow.tasks.index_url import simple_root_candidates
    from mirrorflow.tasks.project_status import GoneUpstream, ProjectStatus, gone_files, gone_projects

    concurrency = fields.download_concurrency or DEFAULT_CONCURRENCY
    spec_http = http_spec_for(fields, concurrency=concurrency, max_page_bytes=settings.max_page_bytes)
    held = latest_projects(catalog, repository_id)
    includes = included_project_names(spec)
    with http_client_from(spec_http) as http:
        root = locate_simple_root(
            fields.url,
            simple_root_candidates(fields.url),
            client=http,
            projects=includes,
            max_page_bytes=settings.max_page_bytes,
        )
        index = IndexClient(root, client=http, max_page_bytes=settings.max_page_bytes)
        gone = (
            set(gone_projects(held, {p.name for p in index.get_listing().projects}))
            if not includes
            else set()
        )

        def page_of(project: str) -> tuple[str, ProjectPage | None]:
            try:
                return project, index.get_project(project)
            except ProjectNotFound:
                return project, None

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            pages = dict(pool.map(page_of, sorted(held - gone)))
    gone |= {project for project, page in pages.items() if page is None}
    listed = {
        project: [file.filename for file in page.files]
        for project, page in pages.items()
        if page is not None and page.status != ProjectStatus.QUARANTINED
    }
    files = gone_files(latest_filenames(catalog, repository_id, listed), listed)
    return GoneUpstream(tuple(sorted(gone)), dict(sorted(files.items())))
