"""The ``mirrorflow`` console script: an argument-less listing is answered before Typer loads.

Typer's option parsing imports pydantic (about 50 ms) even for a command without options, and
Typer itself takes 30 ms more: together, more than ``mirrorflow repository list`` may take beside
``pip --version`` (``benchmarks/cli_startup.py``). So exactly ``mirrorflow repository list`` is
answered here, by the code the Typer command runs (``flows.listing``, ``flows.views``); every
other command line, ``--help`` included, goes to ``flows.cli.main``. Should the quick read fail
(a locked or damaged catalog), the Typer command runs instead and reports it in one line.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if sys.argv[1:] == ["repository", "list"]:
        import sqlite3

        from flows.listing import listed_repositories
        from flows.views import repository_view, to_json

        try:
            rows = listed_repositories()
        except sqlite3.Error:
            pass
        else:
            print(to_json([repository_view(row, remote) for row, remote in rows]))
            return
    from flows.cli import main as typer_main

    typer_main()
