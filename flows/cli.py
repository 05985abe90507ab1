"""The ``mirrorflow`` command line, in the grammar of Pulp's CLI: repositories, remotes, syncs.

Output is JSON on stdout. Errors are one line on stderr and a non-zero exit; nothing changes.
Each command imports what it uses, when it runs: Prefect only for the commands that run flows (it
takes seconds to import), SQLAlchemy and pydantic only for those that need them, so that a listing
answers in the time of ``pip --version`` (``benchmarks/cli_startup.py``; ``tests/integration/test_fast_commands.py``
keeps it so).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mirrorflow.flows.adhoc_sync import PARTIAL_EXIT
from mirrorflow.flows.cli_app import (
    JsonLabels,
    JsonList,
    Name,
    UsageError,
    app,
    bool_option,
    bool_text,
    check_range,
    content_app,
    emit,
    json_labels,
    json_list,
    open_catalog,
    remote_app,
    repository_app,
    version_app,
    with_bare_flags,
)
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.schema import MAX_INT

if TYPE_CHECKING:
    from mirrorflow.storage.catalog import Catalog

__all__ = ["PARTIAL_EXIT", "app", "known_error_message", "main"]

# PARTIAL_EXIT: the exit code of a sync that committed a version without some failed projects or files.

# -- remotes ---------------------------------------------------------------------------------

#: The remote's boolean fields, each with the flag that sets it false.
_BOOL_FIELDS = (
    ("prereleases", "no_prereleases"),
    ("tls_validation", "no_tls_validation"),
    ("skip_yanked", "keep_yanked"),
    ("keep_quarantined", "drop_quarantined"),
    ("include_dependencies", "no_include_dependencies"),
)


@remote_app.command("create")
@remote_app.command("update")
def remote_create_or_update(
    ctx: typer.Context,
    name: Name,
    url: Annotated[str | None, typer.Option(help="Root of the upstream simple index.")] = None,
    includes: JsonList = None,
    excludes: JsonList = None,
    prereleases: Annotated[
        str | None, bool_text("--prereleases", "Sync pre-releases: true (default) or false.")
    ] = None,
    no_prereleases: Annotated[
        bool, typer.Option("--no-prereleases", help="Same as --prereleases false.")
    ] = False,
    package_types: JsonList = None,
    exclude_platforms: JsonList = None,
    keep_latest_packages: int | None = None,
    exclude_newer_than: Annotated[str | None, typer.Option(help="Minimum upload age, e.g. 7d.")] = None,
    missing_upload_time: Annotated[str | None, typer.Option(help="take or skip.")] = None,
    python_versions: JsonList = None,
    skip_yanked: Annotated[
        str | None, bool_text("--skip-yanked", "Drop yanked files (PEP 592); default: keep them.")
    ] = None,
    keep_yanked: Annotated[bool, typer.Option("--keep-yanked", help="Same as --skip-yanked false.")] = False,
    block_advisories: Annotated[
        str | None,
        typer.Option(
            help="JSON list of advisory id prefixes to keep out, e.g. '[\"MAL\"]' (default); [] none."
        ),
    ] = None,
    keep_quarantined: Annotated[
        str | None,
        bool_text(
            "--keep-quarantined",
            "Keep the files of projects the upstream quarantined (PEP 792); default: drop them.",
        ),
    ] = None,
    drop_quarantined: Annotated[
        bool, typer.Option("--drop-quarantined", help="Same as --keep-quarantined false.")
    ] = False,
    include_dependencies: Annotated[
        str | None,
        bool_text(
            "--include-dependencies",
            "Also sync what the included projects require, transitively (docs/closure.md).",
        ),
    ] = None,
    no_include_dependencies: Annotated[
        bool, typer.Option("--no-include-dependencies", help="Same as --include-dependencies false.")
    ] = False,
    policy: Annotated[str | None, typer.Option(help="immediate, on_demand or streamed.")] = None,
    failure_policy: Annotated[
        str | None, typer.Option(help="auto, partial or all_or_nothing (when some projects fail).")
    ] = None,
    max_failed_percent: Annotated[
        float | None, typer.Option(help="Under partial: fail when more than this percent failed (0-100).")
    ] = None,
    download_concurrency: int | None = None,
    max_retries: int | None = None,
    total_timeout: float | None = None,
    connect_timeout: float | None = None,
    sock_connect_timeout: float | None = None,
    sock_read_timeout: float | None = None,
    headers: JsonList = None,
    rate_limit: Annotated[
        int | None, typer.Option(help="Requests per second to the upstream; 0: no limit.")
    ] = None,
    tls_validation: Annotated[
        str | None, bool_text("--tls-validation", "Verify the upstream's certificate: true or false.")
    ] = None,
    no_tls_validation: Annotated[
        bool, typer.Option("--no-tls-validation", help="Same as --tls-validation false.")
    ] = False,
    proxy_url: str | None = None,
    ca_cert: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    proxy_username: str | None = None,
    proxy_password: str | None = None,
    labels: JsonLabels = None,
) -> None:
    """Create a remote (create), or change the fields given of an existing one (update)."""
    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.flows.views import remote_view

    given = {key: value for key, value in ctx.params.items() if key != "name" and value is not None}
    for field, negative in _BOOL_FIELDS:  # pulp-cli's spelling, the bare flag, and the negative flag
        given[field] = bool_option(field, given.get(field))
        if given.pop(negative):
            given[field] = False
        if given[field] is None:
            del given[field]
    new_labels = json_labels(given.pop("labels", None))
    labels_column = {} if new_labels is None else {"labels": new_labels}
    for field in (
        "includes",
        "excludes",
        "package_types",
        "exclude_platforms",
        "python_versions",
        "headers",
        "block_advisories",
    ):
        if field in given:
            given[field] = json_list(field, given[field])
    catalog = open_catalog()
    if ctx.info_name == "create":
        if "url" not in given:
            raise UsageError("url: missing; a remote needs --url")
        fields = RemoteFields.model_validate(given)
        row = catalog.create_remote(name, **fields.to_columns(), **labels_column)
    else:
        merged = RemoteFields.from_row(catalog.get_remote(name)).model_dump() | given
        # Only the fields given are checked as new input: what the remote held before still loads.
        fields = RemoteFields.model_validate(merged, context={"given": frozenset(given)})
        row = catalog.update_remote(name, **fields.to_columns(), **labels_column)
    emit(remote_view(row))


@remote_app.command("show")
def remote_show(name: Name) -> None:
    """Show a remote (secrets appear only as hidden_fields)."""
    from mirrorflow.flows.views import remote_view

    emit(remote_view(open_catalog().get_remote(name)))


@remote_app.command("list")
def remote_list() -> None:
    """List every remote."""
    from mirrorflow.flows.views import remote_view

    emit([remote_view(row) for row in open_catalog().list_remotes()])


@remote_app.command("delete")
def remote_delete(name: Name) -> None:
    """Delete a remote (repositories using it as default are detached)."""
    open_catalog().delete_remote(name)


# -- repositories ----------------------------------------------------------------------------


def _show_repository(catalog: Catalog, row: Any) -> None:
    from mirrorflow.flows.views import repository_view

    emit(repository_view(row, catalog.remote_uuid_of(row)))


@repository_app.command("create")
def repository_create(
    name: Name,
    description: str | None = None,
    retain_repo_versions: int | None = None,
    remote: Annotated[str | None, typer.Option(help="Default remote for syncs.")] = None,
    labels: JsonLabels = None,
) -> None:
    """Create a repository, with its empty version 0."""
    if retain_repo_versions is not None:
        check_range("retain_repo_versions", retain_repo_versions, 1, MAX_INT, what="a number of versions")
    parsed_labels = json_labels(labels) or {}
    catalog = open_catalog()
    row = catalog.create_repository(
        name,
        description=description,
        retain_repo_versions=retain_repo_versions,
        remote=remote,
        labels=parsed_labels,
    )
    _show_repository(catalog, row)


@repository_app.command("update")
def repository_update(
    ctx: typer.Context,
    name: Name,
    description: str | None = None,
    retain_repo_versions: int | None = None,
    remote: Annotated[str | None, typer.Option(help="Default remote ('' to detach).")] = None,
    labels: JsonLabels = None,
    autopublish: Annotated[
        bool | None, typer.Option("--autopublish/--no-autopublish", help="Publish each synced version.")
    ] = None,
    publish_to: Annotated[
        str | None,
        typer.Option(
            "--publish-to", help="Directory or s3://bucket/prefix autopublish writes to ('' to clear)."
        ),
    ] = None,
) -> None:
    """Change the fields given of a repository."""
    from mirrorflow.storage.maintenance import apply_retention

    given = {key: value for key, value in ctx.params.items() if key != "name" and value is not None}
    if publish_to == "":
        given["publish_to"] = None
    elif publish_to is not None and publish_to.startswith("s3://"):
        from mirrorflow.flows.cli_publish import parse_s3_target

        parse_s3_target(publish_to)  # refused now, not at the first sync
        given["publish_to"] = publish_to
    elif publish_to is not None:
        given["publish_to"] = os.path.abspath(publish_to)  # a sync runs from another directory
    if "labels" in given:
        given["labels"] = json_labels(given["labels"])
    if retain_repo_versions is not None:
        check_range("retain_repo_versions", retain_repo_versions, 1, MAX_INT, what="a number of versions")
    if given.get("remote") == "":
        given["remote"] = None
    catalog = open_catalog()
    if autopublish is not None or "publish_to" in given:
        current = catalog.get_repository(name)
        enabled = current.autopublish if autopublish is None else autopublish
        if enabled and given.get("publish_to", current.publish_to) is None:
            raise UsageError("autopublish: True needs a target: --publish-to DIR")
    row = catalog.update_repository(name, **given)
    if "retain_repo_versions" in given:
        apply_retention(catalog, name)  # a lowered limit takes effect now, not at the next sync
    _show_repository(catalog, row)


@repository_app.command("show")
def repository_show(name: Name) -> None:
    """Show a repository."""
    catalog = open_catalog()
    _show_repository(catalog, catalog.get_repository(name))


@repository_app.command("list")
def repository_list() -> None:
    """List every repository."""
    from mirrorflow.flows.listing import listed_repositories
    from mirrorflow.flows.views import repository_view

    emit([repository_view(row, remote) for row, remote in listed_repositories()])


@repository_app.command("delete")
def repository_delete(name: Name) -> None:
    """Delete a repository and its versions (files stay until orphans cleanup)."""
    open_catalog().delete_repository(name)


@repository_app.command("sync")
def repository_sync(
    name: Name,
    remote: Annotated[
        str | None, typer.Option(help="Remote to sync from (default: the repository's).")
    ] = None,
    mirror: Annotated[
        bool, typer.Option("--mirror/--additive", help="Remove what the remote no longer has.")
    ] = False,
    background: Annotated[
        bool,
        typer.Option("--background", "-b", help="Hand the run to the repository's Prefect deployment."),
    ] = False,
) -> None:
    """Sync a repository from a remote and print the resulting version."""
    if not background:
        from mirrorflow.flows.warm_sync_client import sync_through_warm_process, warm_sync_wanted

        if warm_sync_wanted():  # the thin CLI: the warm sync process runs it (flows.warm_sync)
            code = sync_through_warm_process(name, remote, mirror=mirror, debug=_debug)
            if code:
                sys.exit(code)
            return
    from mirrorflow.flows.adhoc_sync import check_sync_request
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings

    settings = Settings()
    catalog = catalog_for(settings)
    # Fail fast, before Prefect starts, on unknown names.
    check_sync_request(
        catalog, name, remote, scheduled_remote=background and bool(_scheduled_remote(catalog, name))
    )
    if background:
        if settings.prefect_server == "local":  # the deployment lives on the server ad hoc syncs use
            from mirrorflow.flows.local_server import use_local_server

            use_local_server(settings.home)
        from mirrorflow.flows.cli_schedule import submit_sync

        emit(submit_sync(name, remote, mirror=mirror))
        return
    _use_temporary_prefect_server()
    from mirrorflow.flows.adhoc_sync import run_cli_sync
    from mirrorflow.flows.progress import progress_bar
    from mirrorflow.flows.terminal import quiet_prefect_console

    if not _debug:
        quiet_prefect_console()  # the run's logs go to the Prefect UI; the terminal gets the result
    with progress_bar() as progress:
        code = run_cli_sync(name, remote, mirror=mirror, settings=settings, out=_TERMINAL, progress=progress)
    if code:
        sys.exit(code)


class _Terminal:
    """Where an in-process CLI sync writes (``mirrorflow.flows.adhoc_sync.SyncOutput``)."""

    def warn(self, line: str) -> None:
        print(line, file=sys.stderr)

    def result(self, text: str) -> None:
        typer.echo(text)


_TERMINAL = _Terminal()


def _use_temporary_prefect_server() -> None:
    """Without PREFECT_API_URL (MIRRORFLOW_PREFECT_SERVER=temporary), say what the wait is, and give
    the temporary server time to start on a busy machine (Prefect's default, 20 s, is not enough
    on two loaded cores)."""
    if os.environ.get("PREFECT_API_URL"):
        return
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if sys.stderr.isatty():
        print(
            "starting Prefect's temporary server for this sync (about 10 s); "
            "MIRRORFLOW_PREFECT_SERVER=local (the default) keeps one running instead",
            file=sys.stderr,
        )


def _scheduled_remote(catalog: Catalog, repository: str) -> str | None:
    """The remote of the repository's schedule: its deployment syncs from that one."""
    from mirrorflow.storage.schedules import get_schedule

    schedule = get_schedule(catalog, repository)
    return schedule.remote if schedule else None


# -- versions and content --------------------------------------------------------------------

Repo = Annotated[str, typer.Option("--repository", help="Repository name.")]
Number = Annotated[int | None, typer.Option("--version", help="Version number (default: latest).")]


def _check_version(version: int | None) -> None:
    if version is not None:
        check_range("version", version, 0, MAX_INT, what="a version number")


@version_app.command("show")
def version_show(repository: Repo, version: Number = None) -> None:
    """Show a version (the latest by default) with its content summary."""
    from mirrorflow.flows.views import version_view

    _check_version(version)
    emit(version_view(open_catalog().get_version(repository, version)))


@version_app.command("list")
def version_list(repository: Repo) -> None:
    """List a repository's versions, newest first."""
    from mirrorflow.flows.views import version_view

    emit([version_view(v) for v in open_catalog().list_versions(repository)])


@content_app.command("list")
def content_list(
    repository: Repo,
    version: Number = None,
    limit: Annotated[int | None, typer.Option(help="Show at most this many (default: all).")] = None,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
) -> None:
    """List the files of a version (the latest by default), by project and filename."""
    from mirrorflow.flows.views import package_view
    from mirrorflow.storage.content_reads import ContentReader

    _check_version(version)
    # Checked here, not by typer's min/max: an out-of-range value is the one-line error (exit 1)
    # every other command gives, not typer's usage block (exit 2).
    if limit is not None:
        check_range("limit", limit, 1, MAX_INT, what="a number of files")
    check_range("offset", offset, 0, MAX_INT, what="a number of files")
    page = ContentReader(open_catalog()).version_page(
        repository, version, membership="present", limit=limit, offset=offset
    )
    emit([package_view(p) for p in page.packages])


#: Set by ``--debug`` or ``MIRRORFLOW_DEBUG=1``: tracebacks and Prefect's run logs on the terminal.
_debug = False


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks and Prefect's run logs (or MIRRORFLOW_DEBUG=1)."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=lambda given: _print_version(given),
            help="Print the version.",
        ),
    ] = False,
) -> None:
    """Curated, versioned copies of Python package indexes, kept in sync by Prefect flows."""
    global _debug
    _debug = _debug or debug


def _print_version(given: bool) -> None:
    if given:
        from importlib.metadata import version

        typer.echo(f"mirrorflow {version('mirrorflow')}")
        raise typer.Exit()


@functools.cache
def _click_command() -> Any:  # typer's vendored click Command
    """The click command of ``app`` (every command module imported), built once per process.

    ``app(...)`` builds it again from the registered commands at each call, 25 ms of CPU: nothing to
    a console script, which calls ``main`` once, but the suite runs thousands of commands in-process
    (the ``cli`` fixture). What it adds to ``app(...)``, an excepthook for typer's pretty tracebacks,
    is off here (``pretty_exceptions_enable=False``).
    """
    return typer.main.get_command(app)


def main() -> None:
    """Console entry point: run the app, turning mirrorflow's errors into one line and exit code 1.

    Anything else is a bug and surfaces as one, with its traceback. ``--debug`` prints the
    traceback of mirrorflow's errors too, above their line.
    """
    global _debug
    _debug = os.environ.get("MIRRORFLOW_DEBUG", "").lower() in ("1", "true", "yes")
    # Prefect's temporary server would look up a telemetry host this network may not resolve,
    # printing an ERROR line on a successful sync; the user's own setting still wins.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from mirrorflow.flows.locations import keep_prefect_results_in_home

    keep_prefect_results_in_home()  # before Prefect is imported (console.main has done it already)
    from mirrorflow.flows.allocator import tune_allocator

    tune_allocator()  # before the threads start: see flows.allocator
    import mirrorflow.flows.cli_advisories  # noqa: F401  (registers advisories import, repository advisories)
    import mirrorflow.flows.cli_blocklist  # noqa: F401  (registers repository blocklist)
    import mirrorflow.flows.cli_diff  # noqa: F401  (registers repository diff)
    import mirrorflow.flows.cli_export  # noqa: F401  (registers repository export and import)
    import mirrorflow.flows.cli_maintenance  # noqa: F401  (registers repository verify and orphans cleanup)
    import mirrorflow.flows.cli_publish  # noqa: F401  (registers repository publish)
    import mirrorflow.flows.cli_schedule  # noqa: F401  (registers repository schedule)
    import mirrorflow.flows.cli_serve  # noqa: F401  (registers serve and repository pull-through)
    import mirrorflow.flows.cli_server  # noqa: F401  (registers server start|stop|status)

    try:
        # standalone_mode=False: click's usage errors come here, not to a boxed panel
        code = _click_command()(args=with_bare_flags(sys.argv[1:]), standalone_mode=False)
    except typer.TyperException as exc:  # Typer's (vendored click's) usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # a bare group: its help, as before
            sys.exit(2)
        _exit_with(_usage_message(exc), code=getattr(exc, "exit_code", 2))
    except typer.Abort:
        _exit_with("aborted")
    except MirrorflowError as exc:  # ours, phrased for the user; anything else is a bug: its traceback
        _exit_with(str(exc))
    except Exception as exc:
        message = known_error_message(exc)
        if message is None:
            raise
        _exit_with(message)
    if isinstance(code, int) and code:
        sys.exit(code)


def known_error_message(exc: Exception) -> str | None:
    """The one line for a pydantic or database error; None for a bug (its traceback is shown).

    Our own errors (``MirrorflowError``) are caught before this. The classes are imported here,
    once an error happened, not at start: most commands never load the modules that define them.
    """
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, ValidationError):  # input at the wire: options, settings, parameters
        from mirrorflow.flows.remote_spec import describe_validation_error

        return describe_validation_error(exc)
    if isinstance(exc, DBAPIError):  # the database went away, refused us, or rejected a value
        return f"the catalog database failed: {exc.orig or exc}"
    return None


def _usage_message(exc: typer.TyperException) -> str:
    """Click's message, with the value the user gave for the option it names (when it names one)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    param = getattr(exc, "param", None)
    if type(exc).__name__ == "BadParameter" and param is not None:
        args = sys.argv[1:]
        for i, arg in enumerate(args[:-1]):
            if arg in param.opts:
                shown = repr(args[i + 1])
                return message if shown in message else f"{message} (got {shown})"
    return message


def _exit_with(message: str, *, code: int = 1) -> NoReturn:
    if _debug and sys.exc_info()[1] is not None:
        traceback.print_exc()
    # One line: some messages (packaging's requirement errors) add a caret diagram below.
    lines = message.strip().splitlines() or ["unknown error"]
    print(f"Error: {lines[0]}", file=sys.stderr)
    sys.exit(code)
