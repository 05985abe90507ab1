"""The README's first command: a sync from a local fixture index, end to end, on embedded defaults.

It builds a small PyPI-compatible index of real wheels and sdists, serves it on loopback, and
runs the seed workflow with the ``mirrorflow`` CLI exactly as a user would, printing each command
and its output. State goes to ``.mirrorflow-demo/`` (SQLite catalog, directory artifact store).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fixtureindex.builder import build_index
from fixtureindex.catalog import seed_projects
from fixtureindex.server import serve_index

HOME = Path(".mirrorflow-demo").resolve()


def run(*args: str) -> str:
    print(f"\n$ {shlex.join(args)}", flush=True)
    done = subprocess.run(
        args, capture_output=True, text=True, env=os.environ | {"MIRRORFLOW_HOME": str(HOME)}
    )
    print(done.stdout, end="")
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"demo failed at: {shlex.join(args)}")
    return done.stdout


def main() -> None:
    shutil.rmtree(HOME, ignore_errors=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    mirrorflow = str(Path(sys.executable).with_name("mirrorflow"))
    with tempfile.TemporaryDirectory() as tmp:
        build_index(seed_projects(), Path(tmp))
        with serve_index(Path(tmp)) as index:
            print(f"fixture index serving on {index.url}")
            run(mirrorflow, "repository", "create", "--name", "foo")
            run(
                mirrorflow,
                "remote",
                "create",
                "--name",
                "bar",
                "--url",
                index.url,
                "--includes",
                '["shelf-reader"]',
                "--policy",
                "immediate",
            )
            run(mirrorflow, "repository", "sync", "--name", "foo", "--remote", "bar")
            run(mirrorflow, "repository", "version", "show", "--repository", "foo")
            run(mirrorflow, "content", "list", "--repository", "foo")
    print(f"\ndemo state is in {HOME} (MIRRORFLOW_HOME); remove it with `make clean`.")


if __name__ == "__main__":
    main()
