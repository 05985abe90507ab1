"""Ad hoc syncs through the thin CLI and its warm sync process, side by side with pip and bandersnatch.

    .venv/bin/python -m benchmarks.warm_sync [--rounds 5] [--projects 1000]

Everything runs against fixture indexes served on loopback by this process (``fixtureindex``), in a
fresh ``MIRRORFLOW_HOME`` with the default settings (``MIRRORFLOW_PREFECT_SERVER=local``):

- cold: the first ``mirrorflow repository sync`` of the home, which starts the local Prefect server
  and the warm sync process, then syncs one project;
- (a) a warm one-project sync (a new repository each round, the default policy) against
  ``env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null pip download --no-deps -d DIR mf-demo-lib
  --index-url <the same index>`` (a new directory each round; a project with a wheel, so that pip builds nothing), alternating;
  target ratio <= 2.5;
- (b) a warm no-change resync of a whole-index remote of ``--projects`` projects (policy
  immediate) against bandersnatch's no-op run on the same index (its first run fills its mirror
  first; the peers' venv, ``.venv-peers``, as ``tests/support_peers.py`` configures it);
  target ratio <= 3.

Each timing is the wall time of one command, as a user types it. Medians over ``--rounds``. Where
the time goes is printed too: the flow body's own time (the report's ``duration_s``), the CLI's
start (``mirrorflow --version``) and a bare interpreter. The local server and warm process are
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index, make_wheel
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.peers import bandersnatch_config
from mirrorflow.fixtureindex.server import serve_index

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ONE_PROJECT_TARGET = 2.5
_UPLOADED = datetime(2024, 1, 2, 12, 0, tzinfo=UTC)  # bandersnatch needs every file's upload time
NO_OP_TARGET = 3.0


def _timed(argv: Sequence[str], env: dict[str, str], **kwargs: object) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return elapsed, done.stdout


def _mirrorflow(env: dict[str, str], *args: str) -> tuple[float, str]:
    return _timed([str(BIN / "mirrorflow"), *args], env)


def _many_projects(count: int) -> list[FixtureProject]:
    projects = []
    for i in range(count):
        name = f"bench-{i:04d}"
        filename, content = make_wheel(name, "1.0")
        projects.append(FixtureProject(name, [FixtureFile(filename, content, upload_time=_UPLOADED)]))
    return projects


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _show(label: str, values: list[float]) -> str:
    return f"{label}: median {_median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warm_sync", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--projects", type=int, default=1000)
    args = parser.parse_args(argv)
    bandersnatch = (
        Path(os.environ.get("MIRRORFLOW_TEST_PEERS") or REPO / ".venv-peers") / "bin" / "bandersnatch"
    )
    with tempfile.TemporaryDirectory(prefix="mirrorflow-warm-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRRORFLOW_", "PIP_"))}
        env.pop("PREFECT_API_URL", None)
        env["MIRRORFLOW_HOME"] = str(work / "home")
        pip_env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"} | {
            "PIP_CONFIG_FILE": os.devnull
        }
        build_index(seed_projects(), work / "seed")
        build_index(_many_projects(args.projects), work / "many")
        with serve_index(work / "seed") as seed, serve_index(work / "many") as many:
            try:
                _run(args, env, pip_env, work, seed, many, bandersnatch)
            finally:
                subprocess.run([str(BIN / "mirrorflow"), "server", "stop"], env=env, capture_output=True)
    return 0


def _run(args, env, pip_env, work, seed, many, bandersnatch) -> None:  # type: ignore[no-untyped-def]
    _mirrorflow(env, "remote", "create", "--name", "one", "--url", seed.url, "--includes", '["mf-demo-lib"]')
    _mirrorflow(env, "remote", "create", "--name", "many", "--url", many.url, "--policy", "immediate")
    _mirrorflow(env, "repository", "create", "--name", "cold")
    cold, _ = _mirrorflow(env, "repository", "sync", "--name", "cold", "--remote", "one")
    print(f"cold first sync (starts the local Prefect server and the warm sync process): {cold:.2f} s")

    # (a) one project, warm, against pip download of it from the same index.
    pip_times, sync_times, flow_times = [], [], []
    for round_ in range(args.rounds):
        _mirrorflow(env, "repository", "create", "--name", f"one-{round_}")
        pip = [str(BIN / "pip"), "download", "--no-deps", "-d", str(work / f"pip-{round_}"), "mf-demo-lib",
               "--index-url", seed.url, "--disable-pip-version-check"]  # fmt: skip
        sync = [str(BIN / "mirrorflow"), "repository", "sync", "--name", f"one-{round_}", "--remote", "one"]
        for which in ("pip", "sync") if round_ % 2 == 0 else ("sync", "pip"):
            if which == "pip":
                pip_times.append(_timed(pip, pip_env)[0])
            else:
                elapsed, out = _timed(sync, env)
                sync_times.append(elapsed)
                flow_times.append(json.loads(out)["report"]["duration_s"])
    ratio_a = _median(sync_times) / _median(pip_times)
    print(_show("(a) warm one-project sync", sync_times))
    print(_show("    pip download --no-deps ", pip_times))
    print(
        f"    ratio: {ratio_a:.2f} (target <= {ONE_PROJECT_TARGET}: {'met' if ratio_a <= ONE_PROJECT_TARGET else 'NOT met'})"
    )
    print(_show("    of the sync: the flow body (report duration_s)", flow_times))

    # (b) a whole-index remote of N projects, no change, against bandersnatch's no-op run.
    _mirrorflow(env, "repository", "create", "--name", "whole")
    first, _ = _mirrorflow(env, "repository", "sync", "--name", "whole", "--remote", "many")
    config = work / "bandersnatch.conf"
    config.write_text(bandersnatch_config(work / "mirror", many.base_url.rstrip("/"), global_timeout=600))
    band_env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    band = [str(bandersnatch), "--config", str(config), "mirror"]
    band_first, _ = _timed(band, band_env, cwd=work)
    print(
        f"(b) first runs, {args.projects} projects: mirrorflow {first:.2f} s (warm process), bandersnatch {band_first:.2f} s"
    )
    band_times, resync_times, resync_flow = [], [], []
    resync = [str(BIN / "mirrorflow"), "repository", "sync", "--name", "whole", "--remote", "many"]
    for round_ in range(args.rounds):
        for which in ("band", "sync") if round_ % 2 == 0 else ("sync", "band"):
            if which == "band":
                band_times.append(_timed(band, band_env, cwd=work)[0])
            else:
                elapsed, out = _timed(resync, env)
                result = json.loads(out)
                if result["changed"] is not False:
                    raise RuntimeError(f"a no-change resync changed the repository: {result!r}")
                resync_times.append(elapsed)
                resync_flow.append(result["report"]["duration_s"])
    ratio_b = _median(resync_times) / _median(band_times)
    print(_show("(b) warm no-change resync", resync_times))
    print(_show("    bandersnatch no-op run  ", band_times))
    print(
        f"    ratio: {ratio_b:.2f} (target <= {NO_OP_TARGET}: {'met' if ratio_b <= NO_OP_TARGET else 'NOT met'})"
    )
    print(_show("    of the resync: the flow body (report duration_s)", resync_flow))

    # Where the rest goes: the CLI's own start, and a bare interpreter.
    version = [_mirrorflow(env, "--version")[0] for _ in range(args.rounds)]
    bare = [_timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.rounds)]
    print(_show("mirrorflow --version (Typer, no sync)", version))
    print(_show("python -c pass", bare))


if __name__ == "__main__":
    sys.exit(main())
