"""A local Prefect server under ``MIRRORFLOW_HOME``, started in the background and reused.

Without ``PREFECT_API_URL``, every ad hoc sync starts Prefect's temporary server (10-15 s here)
and stops it again. With ``MIRRORFLOW_PREFECT_SERVER=local`` the CLI starts one server on first
need, leaves it running in its own session and reuses it, so every later sync skips that start and
shows in the Prefect UI. ``mirrorflow server start|stop|status`` manage it.

State lives in ``<home>/prefect``: Prefect's own home (its database), ``server.json`` (pid, url)
and ``server.log``. A lock file serializes two commands that would start it at once.

Errors::

    LocalServerError      the server did not come up (its log is named), or could not be stopped
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirrorflow.storage.errors import MirrorflowError

__all__ = [
    "LocalServer",
    "LocalServerError",
    "ServerState",
    "alive",
    "local_server_wanted",
    "state_view",
    "use_local_server",
]


#: How long a start waits for the server to answer its health check (a fresh database is migrated
#: first: 10-15 s on a quiet machine, over 90 s seen on 2 cores shared by many).
START_TIMEOUT = 240.0
#: How long a stop waits after SIGTERM before it kills the server.
STOP_TIMEOUT = 20.0


class LocalServerError(MirrorflowError, RuntimeError):
    """The local Prefect server did not start or stop; the message says where to look."""


@dataclass(frozen=True, slots=True)
class ServerState:
    pid: int
    url: str

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


class LocalServer:
    """The local Prefect server of one ``MIRRORFLOW_HOME``."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "prefect"
        self.state_file = self.directory / "server.json"
        self.log_file = self.directory / "server.log"

    def running(self) -> ServerState | None:
        """The running server, or None (a stale state file is ignored)."""
        try:
            data = json.loads(self.state_file.read_text())
            state = ServerState(pid=int(data["pid"]), url=str(data["url"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if alive(state.pid) and _healthy(state.api_url) else None

    def ensure(self, *, timeout: float = START_TIMEOUT) -> tuple[ServerState, bool]:
        """The running server, started first when there is none; and whether this call started it."""
        with self._locked():
            state = self.running()
            if state is not None:
                return state, False
            return self._start(timeout), True

    def stop(self) -> ServerState | None:
        """Stop the server (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``); the one stopped, or None."""
        with self._locked():
            state = self.running()
            if state is None:
                self.state_file.unlink(missing_ok=True)
                return None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
            self.state_file.unlink(missing_ok=True)
            return state

    def _start(self, timeout: float) -> ServerState:
        port = _free_port()
        env = os.environ | {"PREFECT_HOME": str(self.directory), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command and its terminal's Ctrl-C
            )
        state = ServerState(pid=process.pid, url=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + timeout
        while not _healthy(state.api_url):
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise LocalServerError(
                    f"the local Prefect server did not start within {timeout:.0f} s; see {self.log_file}"
                )
            time.sleep(0.25)
        self.state_file.write_text(json.dumps({"pid": state.pid, "url": state.url}))
        return state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "server.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def state_view(state: ServerState | None, server: LocalServer) -> dict[str, Any]:
    return {
        "running": state is not None,
        "url": state.url if state else None,
        "api_url": state.api_url if state else None,
        "pid": state.pid if state else None,
        "home": str(server.directory),
    }


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (our own exited child is reaped, not counted)."""
    with contextlib.suppress(ChildProcessError):  # our own child (a test's): reap it once it exited
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def use_local_server(home: Path) -> None:
    """Without PREFECT_API_URL, point Prefect at the local server under ``home``, started first if
    need be (saying so once, with its UI's URL). Call it before Prefect is imported."""
    if os.environ.get("PREFECT_API_URL"):
        return
    state, started = LocalServer(home).ensure()
    if started:
        print(f"started the local Prefect server; its UI: {state.url}", file=sys.stderr)
    os.environ["PREFECT_API_URL"] = state.api_url


def local_server_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether Prefect should use the home's local server: no ``PREFECT_API_URL``, and
    ``MIRRORFLOW_PREFECT_SERVER`` read as ``mirrorflow.flows.settings.Settings`` reads it (name in any
    case; unset means ``local``) is ``local``. Any other value, a wrong one included, is left to
    ``Settings``, which accepts ``temporary`` or reports the error in one line.
    """
    if environ.get("PREFECT_API_URL"):
        return False
    values = {key.lower(): value for key, value in environ.items()}
    return values.get("mirrorflow_prefect_server", "local") == "local"
