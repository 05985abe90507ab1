"""The ``mirrorflow`` console script: an argument-less listing is answered before Typer loads.

Typer's option parsing imports pydantic (about 50 ms) even for a command without options, and
Typer itself takes 30 ms more: together, more than ``mirrorflow repository list`` may take beside
``pip --version`` (``benchmarks/cli_startup.py``). So exactly ``mirrorflow repository list`` is
answered here, by the code the Typer command runs (``mirrorflow.flows.listing``, ``mirrorflow.flows.views``); every
other command line, ``--help`` included, goes to ``mirrorflow.flows.cli.main``. Should the quick read fail
(a locked or damaged catalog), the Typer command runs instead and reports it in one line. The same
holds for exactly ``repository show --name N``, ``repository version list --repository R``,
``remote list`` and ``remote show --name N`` (``mirrorflow.flows.listing.quick_answer``): a name the
catalog does not hold, or a remote holding a sealed secret, goes to Typer (the ``Catalog``).

For the same reason a plain ``mirrorflow repository sync --name N [--remote R] [--mirror|--additive]``
that goes to the warm sync process (``mirrorflow.flows.warm_sync_client``: the default, without
``PREFECT_API_URL``) is sent from here: Typer's parsing costs more than the rest of the thin CLI.
Any other form (another option, a name the CLI would refuse) goes to Typer, which explains it.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    from mirrorflow.flows.locations import keep_prefect_results_in_home

    keep_prefect_results_in_home()  # first: the warm sync process's settings key includes it
    if sys.argv[1:3] in (
        ["repository", "list"],
        ["repository", "show"],
        ["repository", "version"],
        ["remote", "list"],
        ["remote", "show"],
    ):
        import sqlite3

        from mirrorflow.flows.listing import quick_answer
        from mirrorflow.flows.views import to_json

        try:
            answer = quick_answer(sys.argv[1:])
        except sqlite3.Error:
            answer = None
        if answer is not None:
            print(to_json(answer))
            return
    if sys.argv[1:3] == ["repository", "sync"]:
        request = _plain_sync(sys.argv[3:])
        if request is not None:
            from mirrorflow.flows.warm_sync_client import warm_sync_wanted

            if warm_sync_wanted():
                _sync_through_warm_process(*request)
    from mirrorflow.flows.cli import main as typer_main

    typer_main()


def _plain_sync(args: list[str]) -> tuple[str, str | None, bool] | None:
    """``(name, remote, mirror)`` of ``--name N [--remote R] [--mirror|--additive]``, as click reads
    them (``--opt value`` or ``--opt=value``, any order, the last one wins); None for anything else.

    >>> _plain_sync(["--name", "foo", "--remote=bar", "--mirror"]), _plain_sync(["--name", "foo", "-b"])
    (('foo', 'bar', True), None)
    """
    from mirrorflow.flows.names import is_plain_name

    values: dict[str, str] = {}
    mirror = False
    rest = iter(args)
    for arg in rest:
        option, equals, value = arg.partition("=")
        if option in ("--name", "--remote"):
            value = value if equals else next(rest, None)  # type: ignore[assignment]
            if value is None:
                return None
            values[option] = value
        elif arg in ("--mirror", "--additive"):
            mirror = arg == "--mirror"
        else:
            return None
    name = values.get("--name")
    if name is None or not is_plain_name(name):
        return None
    return name, values.get("--remote"), mirror


def _sync_through_warm_process(name: str, remote: str | None, mirror: bool) -> None:
    """Run the sync in the warm process and exit as ``mirrorflow.flows.cli.main`` would (its one-line errors)."""
    import os

    from mirrorflow.flows.warm_sync_client import sync_through_warm_process
    from mirrorflow.storage.errors import MirrorflowError

    debug = os.environ.get("MIRRORFLOW_DEBUG", "").lower() in ("1", "true", "yes")
    try:
        code = sync_through_warm_process(name, remote, mirror=mirror, debug=debug)
    except MirrorflowError as exc:  # the sync's own error line, the warm process's loss, no server
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)  # as Typer ends a command on Ctrl-C
    sys.exit(code)
