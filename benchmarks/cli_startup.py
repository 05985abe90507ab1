"""Benchmark the CLI's start-up: ``mirrorflow repository list`` beside ``pip --version``, in one run.

    .venv/bin/python -m benchmarks.cli_startup [--runs 15] [--resyncs 0]

Both commands run as the console scripts of this environment, interleaved (the order alternates
from one round to the next, so that a drifting machine load weighs on both alike), against a
temporary SQLite catalog holding three repositories. Prints the median wall time of each, the
ratio (target: at most 1.5) and how many modules the listing imports (``-X importtime``).

``--resyncs N`` also times N no-change resyncs of a whole-index remote of the fixture index
(served on loopback from this process), after a first sync; the CLI uses whatever Prefect
``PREFECT_API_URL`` names, or Prefect's temporary server when it is unset. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: ``mirrorflow repository list`` may take at most this many times ``pip --version``.
TARGET_RATIO = 1.5


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _timed(argv: Sequence[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def imported_modules(argv: Sequence[str], env: dict[str, str]) -> tuple[int, float]:
    """How many modules ``argv`` imports, and the sum of their top-level import times (s)."""
    result = subprocess.run(
        argv, env=env | {"PYTHONPROFILEIMPORTTIME": "1"}, check=True, capture_output=True, text=True
    )
    rows = [line for line in result.stderr.splitlines() if line.startswith("import time:")][1:]
    top = [row for row in rows if not row.split("|")[2].startswith("  ")]
    return len(rows), sum(int(row.split("|")[1]) for row in top) / 1e6


def compare_startup(env: dict[str, str], runs: int) -> float:
    """Print the medians and the ratio of the listing to ``pip --version``; return the ratio."""
    listing = [_bin("mirrorflow"), "repository", "list"]
    pip = [_bin("pip"), "--version"]
    for argv in (listing, pip):  # warm the page cache and the bytecode
        _timed(argv, env)
    times: dict[str, list[float]] = {"list": [], "pip": []}
    for round_ in range(runs):
        order = [("list", listing), ("pip", pip)]
        for key, argv in order if round_ % 2 == 0 else reversed(order):
            times[key].append(_timed(argv, env))
    list_median, pip_median = statistics.median(times["list"]), statistics.median(times["pip"])
    ratio = list_median / pip_median
    count, imports = imported_modules(listing, env)
    pip_count, pip_imports = imported_modules(pip, env)
    print(f"mirrorflow repository list: median {list_median * 1000:.0f} ms over {runs} runs")
    print(f"pip --version:              median {pip_median * 1000:.0f} ms over {runs} runs")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(
        f"modules imported: list {count} ({imports * 1000:.0f} ms), pip {pip_count} ({pip_imports * 1000:.0f} ms)"
    )
    return ratio


def time_resyncs(env: dict[str, str], resyncs: int, work: Path) -> None:
    """Time no-change resyncs of the whole fixture index (a first sync fills the repository)."""
    from mirrorflow.fixtureindex.builder import build_index
    from mirrorflow.fixtureindex.catalog import seed_projects
    from mirrorflow.fixtureindex.server import serve_index

    build_index(seed_projects(), work / "index")
    with serve_index(work / "index", host="127.0.0.1", port=0) as running:
        mirrorflow = _bin("mirrorflow")
        subprocess.run(
            [mirrorflow, "remote", "create", "--name", "fixture", "--url", running.url],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run(
            [mirrorflow, "repository", "create", "--name", "mirror", "--remote", "fixture"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        sync = [mirrorflow, "repository", "sync", "--name", "mirror"]
        first = _timed(sync, env)
        again = [_timed(sync, env) for _ in range(resyncs)]
    server = env.get("PREFECT_API_URL") or "Prefect's temporary server"
    print(f"first sync of the fixture index: {first:.2f} s ({server})")
    print(
        f"no-change resync: median {statistics.median(again):.2f} s over {resyncs} "
        f"({', '.join(f'{t:.2f}' for t in again)})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="rounds of the pair (default: %(default)s)")
    parser.add_argument("--resyncs", type=int, default=0, help="no-change resyncs to time (default: none)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mirrorflow-bench-") as tmp:
        work = Path(tmp)
        env = {key: value for key, value in os.environ.items() if not key.startswith("MIRRORFLOW_")}
        env["MIRRORFLOW_HOME"] = str(work / "home")
        for name in ("alpha", "beta", "gamma"):
            subprocess.run(
                [_bin("mirrorflow"), "repository", "create", "--name", name],
                env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        compare_startup(env, args.runs)
        if args.resyncs:
            try:
                time_resyncs(env, args.resyncs, work)
            finally:  # the local Prefect server and warm sync process the syncs started (the default)
                subprocess.run([_bin("mirrorflow"), "server", "stop"], env=env, stdout=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
