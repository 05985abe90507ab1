"""Third-party index servers serving the seed catalog's files, each started once per session on loopback.

Each fixture yields the server's base URL (``http://127.0.0.1:PORT/``); the tests append the path a
user of that server writes:

- ``pypiserver_peer``: pypiserver over a flat directory of the fixture files;
- ``devpi_peer``: devpi-server (offline, without its ``root/pypi`` mirror) with a stage index
  ``alice/dev`` into which every fixture file is uploaded over HTTP, as twine uploads;
- ``bandersnatch_peer``: a bandersnatch mirror of the fixture index (read through its PEP 691 listing
  and legacy JSON API), served as static files the way bandersnatch's own nginx example (banderx)
  serves them: ``index.v1_json`` to a client that names PEP 691 JSON in ``Accept``, else ``index.html``;
- ``proxpi_peer``: proxpi in front of the fixture index (under waitress);
- ``mirrorflow_peer``: ``mirrorflow serve`` of a catalog whose repository ``foo`` holds the whole
  fixture index (an immediate sync): the upstream of a mirror of a mirror.

The third-party servers run from their own virtual environment (``.venv-peers``, or
``MIRRORFLOW_TEST_PEERS``; see ``tests/peers-requirements.txt``); a missing one fails the tests that
need it, naming ``make .venv-peers/.installed``. Every process is started with its own log file and
stopped by its id when the session ends.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from mirrorflow.fixtureindex.peers import bandersnatch_config
from mirrorflow.fixtureindex.server import RunningIndex

__all__ = [
    "bandersnatch_peer",
    "devpi_peer",
    "mirrorflow_home",
    "mirrorflow_peer",
    "peer_command",
    "proxpi_peer",
    "pypiserver_peer",
    "run_cli",
]

_REPO = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 60.0


def peer_command(name: str) -> str:
    """The path of the peers' venv command ``name``; fails (never skips) when it is not installed."""
    venv = Path(os.environ.get("MIRRORFLOW_TEST_PEERS") or _REPO / ".venv-peers")
    command = venv / "bin" / name
    if not command.is_file():
        pytest.fail(
            f"{name!r} is not installed in {str(venv)!r}: run `make .venv-peers/.installed` "
            "(tests/peers-requirements.txt), or set MIRRORFLOW_TEST_PEERS to such a venv",
            pytrace=False,
        )
    return str(command)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peer_env(**extra: str) -> dict[str, str]:
    """The environment of a peer: this one without pip's or mirrorflow's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MIRRORFLOW_"))}
    return env | extra


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


@contextlib.contextmanager
def _process(
    command: Sequence[str], *, ready: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; ready once ``ready`` answers over HTTP (any status)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command), stdout=out, stderr=subprocess.STDOUT, env=env or _peer_env()
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"{command[0]} exited with {process.returncode}:\n{_log_tail(log)}", pytrace=False
                )
            with contextlib.suppress(httpx.TransportError):
                httpx.get(ready, timeout=2.0)
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{command[0]} did not answer {ready} in {_START_TIMEOUT:.0f} s:\n{_log_tail(log)}"
                )
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fixture_files(index: RunningIndex) -> list[Path]:
    """Every distribution file of the fixture index (not the PEP 658 ``.metadata`` beside wheels)."""
    return sorted(p for p in (index.root / "files").glob("*/*") if not p.name.endswith(".metadata"))


# -- pypiserver ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pypiserver_peer(seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pypiserver (its default server) over a directory holding the fixture index's files."""
    where = tmp_path_factory.mktemp("pypiserver")
    packages = where / "packages"
    packages.mkdir()
    for path in _fixture_files(seed_index):
        shutil.copy2(path, packages / path.name)
    port = _free_port()
    command = [
        peer_command("pypi-server"), "run", "--interface", "127.0.0.1", "--port", str(port),
        "--hash-algo", "sha256", "--authenticate", ".", "--passwords", ".", str(packages),
    ]  # fmt: skip
    with _process(command, ready=f"http://127.0.0.1:{port}/health", log=where / "server.log"):
        yield f"http://127.0.0.1:{port}/"


# -- devpi-server ----------------------------------------------------------------------------------

DEVPI_USER, DEVPI_PASSWORD, DEVPI_INDEX = "alice", "alice-secret", "dev"


def _name_and_version(filename: str) -> tuple[str, str]:
    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
    else:
        name, version = parse_sdist_filename(filename)
    return name, str(version)


@pytest.fixture(scope="session")
def devpi_peer(seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """devpi-server with the stage index ``alice/dev`` holding every fixture file (uploaded over HTTP)."""
    where = tmp_path_factory.mktemp("devpi")
    serverdir = where / "server"
    init = [peer_command("devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"]
    subprocess.run(init, check=True, capture_output=True, env=_peer_env(), timeout=60)
    port = _free_port()
    command = [
        peer_command("devpi-server"), "--serverdir", str(serverdir),
        "--host", "127.0.0.1", "--port", str(port), "--offline-mode",
        # devpi derives its signing key with argon2 tuned to take seconds (about 20 s on this machine);
        # its own test suite lowers the cost the same way. Nothing here depends on the key's strength.
        "--argon2-memory-cost", "8", "--argon2-time-cost", "1", "--argon2-parallelism", "1",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    with _process(command, ready=f"{base}+api", log=where / "server.log"):
        with httpx.Client(base_url=base, timeout=30.0, headers={"Accept": "application/json"}) as http:
            http.put(f"/{DEVPI_USER}", json={"password": DEVPI_PASSWORD}).raise_for_status()
            # Log in as devpi-client does: the token is checked by signature, a password by its slow
            # hash (0.2 s per request here, 11 s for the uploads).
            login = http.post("/+login", json={"user": DEVPI_USER, "password": DEVPI_PASSWORD})
            token = login.raise_for_status().json()["result"]["password"]
            credentials = base64.b64encode(f"{DEVPI_USER}:{token}".encode()).decode()
            http.headers["X-Devpi-Auth"] = credentials
            stage = {"type": "stage", "bases": [], "volatile": True}
            http.put(f"/{DEVPI_USER}/{DEVPI_INDEX}", json=stage).raise_for_status()
            for path in _fixture_files(seed_index):  # The upload protocol twine speaks.
                name, version = _name_and_version(path.name)
                form = {":action": "file_upload", "name": name, "version": version}
                content = {"content": (path.name, path.read_bytes())}
                upload = http.post(f"/{DEVPI_USER}/{DEVPI_INDEX}/", data=form, files=content)
                assert upload.status_code == 200, f"devpi refused {path.name}: {upload.text[:500]}"
        yield base


# -- bandersnatch ----------------------------------------------------------------------------------

# banderx's nginx map (pypa/bandersnatch, src/banderx/nginx.conf): the first pattern that matches the
# Accept header picks the page; nginx maps match in order, case-insensitively, ignoring q-values.
_BANDERX_SUFFIXES = (
    (re.compile(r"application/vnd\.pypi\.simple\.v1\+json", re.I), "v1_json"),
    (re.compile(r"application/vnd\.pypi\.simple\.v1\+html", re.I), "v1_html"),
    (re.compile(r"text/html", re.I), "html"),
)
_BANDERX_TYPES = {
    "v1_json": "application/vnd.pypi.simple.v1+json",
    "v1_html": "application/vnd.pypi.simple.v1+html",
    "html": "text/html; charset=utf-8",
}


class _BanderxHandler(SimpleHTTPRequestHandler):
    """Static files of a bandersnatch mirror's ``web/``; ``/simple/`` pages chosen as banderx does."""

    protocol_version = "HTTP/1.1"  # keep-alive, as nginx does (every answer has a Content-Length)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def send_head(self) -> io.BufferedIOBase | None:  # type: ignore[override]
        path = urlsplit(self.path).path
        if not (path.startswith("/simple/") and path.endswith("/")):
            return super().send_head()  # type: ignore[return-value]
        accept = self.headers.get("Accept") or ""
        suffix = next((s for pattern, s in _BANDERX_SUFFIXES if pattern.search(accept)), "html")
        page = Path(self.translate_path(path)) / f"index.{suffix}"
        if not page.is_file():
            return super().send_head()  # type: ignore[return-value]
        body = page.open("rb")
        self.send_response(200)
        self.send_header("Content-Type", _BANDERX_TYPES[suffix])
        self.send_header("Content-Length", str(page.stat().st_size))
        self.end_headers()
        return body  # type: ignore[return-value]


@pytest.fixture(scope="session")
def bandersnatch_peer(seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bandersnatch mirror of the fixture index, served as static files (banderx's page choice)."""
    where = tmp_path_factory.mktemp("bandersnatch")
    config = where / "bandersnatch.conf"
    config.write_text(bandersnatch_config(where / "mirror", seed_index.base_url.rstrip("/")))
    command = [peer_command("bandersnatch"), "--config", str(config), "mirror"]
    run = subprocess.run(command, capture_output=True, text=True, env=_peer_env(), timeout=120, cwd=where)
    assert run.returncode == 0, f"bandersnatch mirror failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
    web = where / "mirror" / "web"
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_BanderxHandler, directory=str(web)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- proxpi ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def proxpi_peer(seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """proxpi (under waitress) proxying and caching the fixture index."""
    where = tmp_path_factory.mktemp("proxpi")
    port = _free_port()
    env = _peer_env(PROXPI_INDEX_URL=seed_index.url, PROXPI_CACHE_DIR=str(where / "cache"))
    command = [peer_command("waitress-serve"), f"--listen=127.0.0.1:{port}", "proxpi.server:app"]
    with _process(command, ready=f"http://127.0.0.1:{port}/health", log=where / "server.log", env=env):
        yield f"http://127.0.0.1:{port}/"


# -- mirrorflow serve ------------------------------------------------------------------------------


def run_cli(*args: str) -> Any:
    """Run ``mirrorflow ARGS...`` in-process with the current settings; returns its JSON output.

    For session fixtures, which cannot use the per-test ``cli``; a failure fails the fixture.
    """
    import json

    from mirrorflow.flows.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["mirrorflow", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    assert code == 0, f"mirrorflow {' '.join(args)} exited {code}: {err.getvalue()}"
    return json.loads(out.getvalue())


@contextlib.contextmanager
def mirrorflow_home(home: Path) -> Iterator[None]:
    """Point mirrorflow's settings at a SQLite catalog and directory store under ``home`` for the block."""
    from mirrorflow.flows.runtime import reset_caches

    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("MIRRORFLOW_")]:
            if name != "MIRRORFLOW_PREFECT_SERVER":  # the suite's choice (support_prefect) stays
                patch.delenv(name)
        patch.setenv("MIRRORFLOW_HOME", str(home))
        reset_caches()
        try:
            yield
        finally:
            reset_caches()


@pytest.fixture(scope="session")
def mirrorflow_peer(
    seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> Iterator[str]:
    """``mirrorflow serve`` (a subprocess, as users run it) of a repository ``foo`` holding the whole index."""
    where = tmp_path_factory.mktemp("mirrorflow-upstream")
    home = where / "home"
    with mirrorflow_home(home):
        run_cli("repository", "create", "--name", "foo")
        run_cli("remote", "create", "--name", "fixture", "--url", seed_index.url, "--policy", "immediate")
        run_cli("repository", "sync", "--name", "foo", "--remote", "fixture")
    port = _free_port()
    mirrorflow = Path(sys.executable).with_name("mirrorflow")
    command = [str(mirrorflow), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = _peer_env(MIRRORFLOW_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with _process(command, ready=f"http://127.0.0.1:{port}/foo/simple/", log=where / "serve.log", env=env):
        yield f"http://127.0.0.1:{port}/"
