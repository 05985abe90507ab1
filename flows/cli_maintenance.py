"""Maintenance commands: ``repository verify`` (and ``--repair``) and ``orphans cleanup``.

Registered on the shared Typer apps when ``mirrorflow.flows.cli.main`` imports this module. Output is JSON
on stdout; a verify that leaves problems exits 1 after printing its report.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from mirrorflow.flows.cli_app import Name, app, check_range, emit, repository_app
from mirrorflow.storage.schema import MAX_INT

if TYPE_CHECKING:  # the rest is imported by the command that runs (see flows.cli's docstring)
    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.tasks.verify import Fetch

__all__ = ["orphans_app", "repository_verify", "orphans_cleanup"]

orphans_app = typer.Typer(
    no_args_is_help=True, help="Delete what no repository version references.", rich_markup_mode=None
)
app.add_typer(orphans_app, name="orphans")

#: Default of ``--skip-verified-within``: a rerun within a day resumes instead of starting over.
DEFAULT_SKIP_HOURS = 24.0
#: Pulp's default orphan protection time.
DEFAULT_PROTECTION_MINUTES = 60
#: Upper bounds of the options (documented in the README): ten years, in hours and in minutes.
MAX_HOURS = 87_600
MAX_MINUTES = 5_256_000
MAX_WORKERS = 64


@repository_app.command("verify")
def repository_verify(
    name: Name,
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: latest).")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fetch corrupt or missing files again (.metadata: upstream, else the stored wheel).",
        ),
    ] = False,
    workers: Annotated[int, typer.Option(help="Artifacts checked at once.")] = 4,
    skip_verified_within: Annotated[
        float,
        typer.Option(help="Skip artifacts found intact less than this many hours ago (0: check all)."),
    ] = DEFAULT_SKIP_HOURS,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance",
            help="Verify the files' PEP 740 attestations instead (needs pypi-attestations installed).",
        ),
    ] = False,
) -> None:
    """Re-hash every stored file of a version (core metadata included); report (and with --repair,
    fix) corrupt or missing ones. With --provenance: verify each stored attestation against its file."""
    if version is not None:
        check_range("version", version, 0, MAX_INT, what="a version number")
    if provenance:
        _verify_provenance(name, version)
        return
    check_range("workers", workers, 1, MAX_WORKERS, what="a number of workers")
    check_range("skip_verified_within", skip_verified_within, 0, MAX_HOURS, what="a number of hours")
    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.tasks.verify import verify_version

    settings = Settings()
    catalog = catalog_for(settings)
    catalog.get_repository(name)  # unknown names fail before anything is read
    with ExitStack() as stack:
        fetch = stack.enter_context(_upstream(catalog, name, workers)) if repair else None
        report = verify_version(
            catalog,
            store_for(settings),
            name,
            version,
            workers=workers,
            skip_verified_within=timedelta(hours=skip_verified_within),
            repair=fetch,
        )
    emit(report.as_dict())
    if report.remaining:
        hint = "" if repair else "; rerun with --repair to fetch them again"
        print(
            f"Error: {len(report.remaining)} artifact(s) of {name!r} version {report.version} "
            f"are corrupt or missing{hint}",
            file=sys.stderr,
        )
        raise typer.Exit(1)


def _verify_provenance(name: str, version: int | None) -> None:
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.tasks.attestations import require_attestations, verify_provenance

    require_attestations()  # before the catalog: one line, exit 1, nothing read
    catalog = catalog_for(Settings())
    catalog.get_repository(name)
    report = verify_provenance(catalog, name, version)
    emit(report.as_dict())
    if report.failed:
        print(
            f"Error: {len(report.failed)} file(s) of {name!r} have attestations that do not verify",
            file=sys.stderr,
        )
        raise typer.Exit(1)


@contextmanager
def _upstream(catalog: Catalog, repository: str, workers: int) -> Iterator[Fetch]:
    """Fetch upstream files with the repository's remote settings (auth, TLS, proxy) when it has one."""
    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.flows.runtime import http_client_for
    from mirrorflow.tasks.index_client import IndexClient, build_http_client

    remote_name = catalog.remote_name_of(catalog.get_repository(repository))
    if remote_name is not None:
        fields = RemoteFields.from_row(catalog.get_remote(remote_name))
        http = http_client_for(fields, concurrency=workers)
        index_url = fields.url
    else:
        http = build_http_client(concurrency=workers, timeout=300.0)
        index_url = "http://unused.invalid/"  # only stream_file is used: file URLs are absolute
    with http:
        index = IndexClient(index_url, client=http)

        @contextmanager
        def fetch(url: str) -> Iterator[Iterable[bytes]]:
            with index.stream_file(url) as response:
                yield response.iter_bytes()

        yield fetch


@orphans_app.command("cleanup")
def orphans_cleanup(
    protection_time: Annotated[
        int,
        typer.Option(help="Minutes: anything younger is kept (a sync may be writing it)."),
    ] = DEFAULT_PROTECTION_MINUTES,
) -> None:
    """Delete packages and artifacts that no repository version, running sync or cache references."""
    check_range("protection_time", protection_time, 0, MAX_MINUTES, what="a number of minutes")
    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.maintenance import cleanup_orphans

    settings = Settings()
    result = cleanup_orphans(
        catalog_for(settings), store_for(settings), protection=timedelta(minutes=protection_time)
    )
    emit(
        {
            "deleted": {
                "packages": result.packages,
                "artifacts": result.artifacts,
                "objects": result.objects,
                "spool_files": result.spool_files,
            },
            "protection_time": protection_time,
        }
    )
