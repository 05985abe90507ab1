"""Time the catalog-only commands (no sync, no network) as console scripts, one by one.

    .venv/bin/python -m benchmarks.catalog_commands [--runs 7] [--bin DIR]

Each command runs ``--runs`` times against a temporary SQLite catalog (two remotes, three
repositories); prints per command the median wall time and the median CPU time (user + system,
of the child), and which heavy packages it loads. Side by side, interleaved run by run, the same
command through Typer (``mirrorflow --debug ...``: the console script answers only exact command
lines before Typer loads, so the global option sends it the way every command went before the
quick reads; ``mirrorflow.flows.console``). CPU time is the steadier figure on a shared machine:
wall time grows with the load, CPU time much less. ``--bin DIR`` times the ``mirrorflow`` of
another environment (another worktree's ``.venv/bin``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: Packages worth naming when a command loads them (each costs 0.05 s to seconds of start-up).
HEAVY = ("prefect", "sqlalchemy", "alembic", "pydantic", "pydantic_settings", "typer", "httpx", "rich")

_LOADED = (
    "import json, sys; sys.argv = ['mirrorflow', *sys.argv[1:]]; from mirrorflow.flows.console import main\n"
    "try:\n    main()\nfinally:\n"
    "    print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)"
)

#: (label, arguments); the creates make a new object each run (``{n}``).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("repository list", ("repository", "list")),
    ("repository show", ("repository", "show", "--name", "beta")),
    ("repository create", ("repository", "create", "--name", "new-{n}")),
    ("remote create", ("remote", "create", "--name", "new-{n}", "--url", "https://index.example/simple/")),
    ("remote show", ("remote", "show", "--name", "up")),
    ("remote list", ("remote", "list")),
    ("repository version list", ("repository", "version", "list", "--repository", "beta")),
    ("content list", ("content", "list", "--repository", "beta")),
)


def _timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _heavy_loaded(python: str, args: Sequence[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run([python, "-c", _LOADED, *args], env=env, capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    return [name for name in HEAVY if name in loaded]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catalog_commands", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default: %(default)s)")
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent, help="the venv's bin/")
    args = parser.parse_args(argv)
    mirrorflow, python = str(args.bin / "mirrorflow"), str(args.bin / "python")
    with tempfile.TemporaryDirectory(prefix="mirrorflow-bench-") as tmp:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MIRRORFLOW_")}
        env["MIRRORFLOW_HOME"] = tmp
        setup = [
            ("remote", "create", "--name", "up", "--url", "https://index.example/simple/"),
            ("remote", "create", "--name", "other", "--url", "https://index.example/other/"),
            ("repository", "create", "--name", "alpha"),
            ("repository", "create", "--name", "beta", "--remote", "up"),
            ("repository", "create", "--name", "gamma"),
        ]
        for command in setup:
            subprocess.run([mirrorflow, *command], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"{args.bin / 'mirrorflow'}, {args.runs} runs each, load average {os.getloadavg()[0]:.1f}")
        print(f"{'':<26}{'as given':^28}{'through Typer':^28}")
        print(
            f"{'command':<26}{'wall':>14}{'CPU':>14}{'wall':>14}{'CPU':>14}  heavy packages loaded (as given)"
        )
        counter = 0
        for label, command in COMMANDS:
            times: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
            for _ in range(args.runs):
                for typer_path in (False, True):
                    counter += 1
                    given = [*(("--debug",) if typer_path else ()), *(a.format(n=counter) for a in command)]
                    wall, cpu = _timed([mirrorflow, *given], env)
                    times[typer_path][0].append(wall)
                    times[typer_path][1].append(cpu)
            counter += 1
            loaded = _heavy_loaded(python, [a.format(n=counter) for a in command], env)
            figures = "".join(
                f"{statistics.median(series) * 1000:>11.0f} ms"
                for path in (False, True)
                for series in times[path]
            )
            print(f"{label:<26}{figures}  {', '.join(loaded) or '-'}")
        print("(medians; wall and CPU = user + system time of the command's process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
