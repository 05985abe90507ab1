"""The README's first command: a sync from a local fixture index, end to end, on embedded defaults.

It builds a small PyPI-compatible index of real wheels and sdists, serves it on loopback, runs
the seed workflow with the ``mirrorflow`` CLI exactly as a user would (printing each command and
its output), then syncs an application with its dependency (policy immediate), stops the
upstream, serves the repository with ``mirrorflow serve`` and ``pip install``s from it into a
fresh virtual environment. State goes to ``.mirrorflow-demo/`` (SQLite catalog, directory store).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mirrorflow.fixtureindex.builder import build_index
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import serve_index

HOME = Path(".mirrorflow-demo").resolve()
ENV = os.environ | {"MIRRORFLOW_HOME": str(HOME), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
MIRRORFLOW = str(Path(sys.executable).with_name("mirrorflow"))


def run(*args: str, env: dict[str, str] = ENV, show: bool = True) -> str:
    print(f"\n$ {shlex.join(args)}", flush=True)
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if show:
        print(done.stdout, end="")
    elif done.returncode == 0:
        print(f"(done: {len(done.stdout.splitlines())} lines of output not shown)")
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"demo failed at: {shlex.join(args)}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise SystemExit(f"mirrorflow serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"mirrorflow serve did not answer on {url}")


def main() -> None:
    # A previous demo's local Prefect server and warm sync process live under HOME: stop them first.
    subprocess.run([MIRRORFLOW, "server", "stop"], env=ENV, capture_output=True)
    shutil.rmtree(HOME, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_index(seed_projects(), Path(tmp, "index"))
        with serve_index(Path(tmp, "index")) as index:
            print(f"fixture index serving on {index.url}")
            # The seed workflow (Pulp's sync guide), as written there.
            run(MIRRORFLOW, "repository", "create", "--name", "foo")
            run(MIRRORFLOW, "remote", "create", "--name", "bar", "--url", index.url,
                "--includes", '["shelf-reader"]')  # fmt: skip
            run(MIRRORFLOW, "repository", "sync", "--name", "foo", "--remote", "bar")
            run(MIRRORFLOW, "repository", "version", "show", "--repository", "foo")
            # An application and its dependency, downloaded now (policy immediate).
            run(MIRRORFLOW, "repository", "create", "--name", "apps")
            run(MIRRORFLOW, "remote", "create", "--name", "apps-upstream", "--url", index.url,
                "--includes", '["mf-demo-app", "mf-demo-lib"]', "--policy", "immediate")  # fmt: skip
            run(MIRRORFLOW, "repository", "sync", "--name", "apps", "--remote", "apps-upstream", show=False)
            run(MIRRORFLOW, "content", "list", "--repository", "apps")
        print("\nthe upstream fixture index is stopped; pip installs from mirrorflow alone")

        port = free_port()
        serve = [MIRRORFLOW, "serve", "--port", str(port)]
        print(f"\n$ {shlex.join(serve)} &", flush=True)
        server = subprocess.Popen(serve, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            simple = f"http://127.0.0.1:{port}/apps/simple/"
            wait_until_up(simple, server)
            venv = Path(tmp, "client")
            run(sys.executable, "-m", "venv", str(venv), show=False)
            # Only our index: this machine's global pip config would add local ones.
            pip_env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"} | {
                "PIP_CONFIG_FILE": os.devnull
            }
            pip = str(venv / "bin" / "pip")
            run(
                pip,
                "install",
                "--disable-pip-version-check",
                "--index-url",
                simple,
                "mf-demo-app",
                env=pip_env,
            )
            run(pip, "list", "--disable-pip-version-check", env=pip_env)
        finally:
            server.terminate()
            server.wait(timeout=10)
    run(MIRRORFLOW, "server", "status")  # the local Prefect server (its UI shows the runs) and the warm sync
    print(f"\ndemo state is in {HOME} (MIRRORFLOW_HOME); `MIRRORFLOW_HOME={HOME} {MIRRORFLOW} server stop`")
    print("stops the local Prefect server and the warm sync process; remove the state with `make clean`.")


if __name__ == "__main__":
    main()
