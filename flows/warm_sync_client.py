"""The thin CLI's side of an ad hoc sync: find or start the warm sync process, ask it, relay its output.

Without ``PREFECT_API_URL`` (and unless ``MIRRORFLOW_PREFECT_SERVER=temporary``), ``mirrorflow
repository sync`` does not run the flow itself: importing Prefect, the flow and the catalog stack
costs seconds per command. It sends the request to a warm sync process (``mirrorflow.flows.warm_sync``) that
runs next to the local Prefect server (``mirrorflow.flows.local_server``) with all of that loaded, and prints
what that process streams back: the progress bar, warnings, the JSON and the exit code, exactly as
an in-process sync prints them (both run ``mirrorflow.flows.adhoc_sync.run_cli_sync``).

Which process: one per *settings*. The flow reads its settings (``MIRRORFLOW_*``) from its own
process's environment, so a warm process must have been started with the environment the CLI has
now. Each is keyed by a digest of what a sync's outcome depends on: every ``MIRRORFLOW_*`` and
``PREFECT_*`` variable (except the two that only choose how the CLI runs), the proxy and CA
variables HTTP clients read, the resolved home, the local server's URL, the Python installation and
the code's modification times. A CLI with other settings, or after an upgrade, starts its own process;
stale ones exit after ``IDLE_TIMEOUT`` without requests, and ``mirrorflow server stop`` stops all.

The channel: TCP on 127.0.0.1, one JSON line per message, and a random token that the process
writes to its state file (mode 0600, in a 0700 directory under ``<home>/prefect/warm``): only the
user who owns the home can ask it to sync. Ctrl-C half-closes the connection; the warm process then
interrupts the flow (as Ctrl-C interrupts an in-process sync: the version is committed in one
transaction or not at all) and the CLI waits for it to confirm.

This module imports only the standard library (and the two small modules of ours below): the
point of it is what it does not load.

Errors::

    WarmSyncError            the warm sync process did not start, went away during the sync,
                             or reported the sync's own error (the one line the in-process CLI shows)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mirrorflow.flows.local_server import LocalServer, ServerState, alive, local_server_wanted
from mirrorflow.flows.locations import home_of
from mirrorflow.storage.errors import MirrorflowError

__all__ = [
    "WarmSyncError",
    "WarmSyncState",
    "WarmSyncs",
    "home_of",
    "settings_key",
    "sync_through_warm_process",
    "warm_sync_wanted",
]

#: A warm process with no request for this long exits (one left behind by old settings, or code).
IDLE_TIMEOUT = 3600.0
#: How long a start waits for the new process to answer (it imports Prefect and the flow first).
START_TIMEOUT = 120.0
#: After Ctrl-C, how long the CLI waits for the warm process to confirm the interrupted sync ended.
CANCEL_WAIT = 60.0

#: Variables that choose how the CLI runs a sync, not what the sync does: not part of the key.
_UNKEYED = {"MIRRORFLOW_DEBUG", "MIRRORFLOW_PREFECT_SERVER", "PREFECT_API_URL"}
#: Outside MIRRORFLOW_/PREFECT_: what the HTTP client or the default home depend on.
_KEYED = {
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "XDG_DATA_HOME",
    "HOME",
}
_CODE = Path(__file__).resolve().parent.parent
_PACKAGES = ("flows", "tasks", "storage")


class WarmSyncError(MirrorflowError, RuntimeError):
    """The warm sync failed; the message is the one line to show."""


def warm_sync_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a CLI sync goes to a warm process: no ``PREFECT_API_URL``, and the setting is ``local``.

    ``MIRRORFLOW_PREFECT_SERVER`` read as ``mirrorflow.flows.settings.Settings`` reads it (name in any case;
    unset means ``local``); any other value, a wrong one included, leaves the sync in the CLI's
    process, whose ``Settings`` then accepts ``temporary`` or reports the error in one line.
    """
    return local_server_wanted(environ)


def settings_key(environ: Mapping[str, str], *, home: Path, api_url: str) -> str:
    """The digest naming the warm process for these settings (see the module docstring).

    >>> a = settings_key({"MIRRORFLOW_BATCH_SIZE": "5"}, home=Path("/h"), api_url="u")
    >>> a == settings_key({"MIRRORFLOW_BATCH_SIZE": "5", "TERM": "x"}, home=Path("/h"), api_url="u")
    True
    >>> a == settings_key({"MIRRORFLOW_BATCH_SIZE": "6"}, home=Path("/h"), api_url="u")
    False
    """
    keyed = sorted(
        (name.upper(), value)
        for name, value in environ.items()
        if (name.upper().startswith(("MIRRORFLOW_", "PREFECT_")) or name.upper() in _KEYED)
        and name.upper() not in _UNKEYED
    )
    relative = any(  # a relative SQLite path or home is read from the working directory
        name == "MIRRORFLOW_DATABASE_URL" and value.startswith("sqlite:///") and value[10:11] != "/"
        for name, value in keyed
    )
    parts = [
        keyed,
        str(home),
        api_url,
        sys.prefix,
        sys.version,
        _code_stamp(),
        os.getcwd() if relative else "",
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _code_stamp() -> int:
    """The newest modification time of our modules: a warm process must not run older code."""
    newest = 0
    for package in _PACKAGES:
        with contextlib.suppress(OSError), os.scandir(_CODE / package) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return newest


@dataclass(frozen=True, slots=True)
class WarmSyncState:
    """A running warm sync process, as its state file has it."""

    pid: int
    port: int
    token: str
    key: str
    log: str

    def ask(self, request: dict[str, Any], *, timeout: float | None = None) -> socket.socket:
        """Connect and send ``request`` (the token added); the connection to read the answer from."""
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        connection.settimeout(timeout)
        connection.sendall(json.dumps(request | {"token": self.token}).encode() + b"\n")
        return connection

    def ping(self) -> dict[str, Any] | None:
        """The process's status (pid, syncs served, syncs running), or None when it does not answer."""
        try:
            with self.ask({"op": "ping"}, timeout=5) as connection, connection.makefile("rb") as answer:
                status = json.loads(answer.readline() or b"null")
        except (OSError, ValueError):
            return None
        return status if isinstance(status, dict) and status.get("pid") == self.pid else None


class WarmSyncs:
    """The warm sync processes of one home: ``<home>/prefect/warm/<key>.json`` (and ``.log``)."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "prefect" / "warm"

    def state_file(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def running(self, key: str) -> WarmSyncState | None:
        """The process for ``key`` when it runs and answers, else None (stale files are ignored)."""
        state = _read_state(self.state_file(key))
        return state if state is not None and alive(state.pid) and state.ping() is not None else None

    def all(self) -> list[tuple[WarmSyncState, dict[str, Any] | None]]:
        """Every process with a state file here, and its status (None: not answering)."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            state = _read_state(path)
            if state is not None:
                found.append((state, state.ping() if alive(state.pid) else None))
        return found

    def ensure(
        self, environ: Mapping[str, str], *, home: Path, server: ServerState, timeout: float = START_TIMEOUT
    ) -> tuple[WarmSyncState, bool]:
        """The process for these settings, started first when there is none; and whether it was started."""
        key = settings_key(environ, home=home, api_url=server.api_url)
        with self._locked(key):
            state = self.running(key)
            if state is not None:
                return state, False
            return self._start(key, environ, home=home, server=server, timeout=timeout), True

    def stop_all(self) -> list[int]:
        """Stop every warm process of this home (SIGTERM, then SIGKILL); the pids stopped."""
        stopped = []
        for path in sorted(self.directory.glob("*.json")):
            state = _read_state(path)
            if state is not None and alive(state.pid):
                _terminate(state.pid)
                stopped.append(state.pid)
            path.unlink(missing_ok=True)
        return stopped

    def _start(
        self, key: str, environ: Mapping[str, str], *, home: Path, server: ServerState, timeout: float
    ) -> WarmSyncState:
        state_file = self.state_file(key)
        state_file.unlink(missing_ok=True)
        log_file = self.directory / f"{key}.log"
        env = dict(environ) | {"PREFECT_API_URL": server.api_url, "MIRRORFLOW_HOME": str(home)}
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        command = [
            sys.executable,
            "-m",
            "mirrorflow.flows.warm_sync",
            "--state",
            str(state_file),
            "--key",
            key,
        ]
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [*command, "--idle", str(IDLE_TIMEOUT)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command and its terminal's Ctrl-C
            )
        deadline = time.monotonic() + timeout
        while True:
            state = _read_state(state_file)
            if state is not None and state.pid == process.pid and state.ping() is not None:
                return state
            if process.poll() is not None or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise WarmSyncError(
                    f"the warm sync process did not start within {timeout:.0f} s; see {log_file}"
                )
            time.sleep(0.05)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # the state files hold the tokens
        with (self.directory / f"{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(path: Path) -> WarmSyncState | None:
    try:
        data = json.loads(path.read_text())
        return WarmSyncState(
            pid=int(data["pid"]),
            port=int(data["port"]),
            token=str(data["token"]),
            key=str(data["key"]),
            log=str(data["log"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _terminate(pid: int, *, wait: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def sync_through_warm_process(
    name: str,
    remote: str | None,
    *,
    mirror: bool,
    debug: bool,
    environ: Mapping[str, str] = os.environ,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the sync in the warm process for these settings (started, with the server, when needed).

    Prints what an in-process sync prints and returns its exit code. Raises ``WarmSyncError``
    with the sync's own one-line error, or when the process could not start or went away.
    A ``KeyboardInterrupt`` is passed on once the warm process confirmed the sync stopped.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    home = home_of(environ)
    server, server_started = LocalServer(home).ensure()
    state, started = WarmSyncs(home).ensure(environ, home=home, server=server)
    if server_started or started:
        what = "the local Prefect server and a warm sync process" if server_started else "a warm sync process"
        print(
            f"started {what} (mirrorflow server status|stop); the Prefect UI: {server.url}",
            file=err,
        )
    request = {"op": "sync", "repository": name, "remote": remote, "mirror": mirror, "debug": debug}
    with contextlib.ExitStack() as stack:
        draw = err.isatty()
        connection = stack.enter_context(state.ask(request | {"progress": draw}))
        lines = stack.enter_context(connection.makefile("rb"))
        bar = None
        if draw:
            from mirrorflow.flows.progress import progress_bar

            bar = stack.enter_context(progress_bar())
        try:
            return _relay(lines, out=out, err=err, bar=bar, state=state, name=name)
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)  # the warm process interrupts the sync
            connection.settimeout(CANCEL_WAIT)
            with contextlib.suppress(OSError, WarmSyncError, ValueError):
                _relay(lines, out=out, err=err, bar=None, state=state, name=name, quiet=True)
            raise


def _relay(
    lines: IO[bytes],
    *,
    out: IO[str],
    err: IO[str],
    bar: Any,
    state: WarmSyncState,
    name: str,
    quiet: bool = False,
) -> int:
    """Print the stream's messages until its exit code; raise the error it reports, or its loss."""
    for raw in lines:
        message = json.loads(raw)
        if "exit" in message:
            return int(message["exit"])
        if "error" in message:
            if message.get("traceback"):
                print(message["traceback"], end="", file=err)
            raise WarmSyncError(message["error"])
        if quiet:
            continue
        if "stdout" in message:
            print(message["stdout"], file=out, flush=True)
        elif "stderr" in message:
            print(message["stderr"], file=err, flush=True)
        elif bar is not None and "start" in message:
            bar.start(int(message["start"]))
        elif bar is not None and "advance" in message:
            bar.advance(int(message["advance"]))
    raise WarmSyncError(
        f"the warm sync process (pid {state.pid}) stopped during the sync of {name!r}, and the sync with "
        f"it (nothing half-written is kept); see {state.log}, and rerun the sync"
    )
