"""The warm sync process: Prefect, the flow and the catalog stack loaded once, syncs run on request.

``python -m mirrorflow.flows.warm_sync --state FILE --key KEY`` is started in the background by the thin CLI
(``mirrorflow.flows.warm_sync_client``, which documents the channel and how processes are keyed by settings),
with ``PREFECT_API_URL`` pointing at the local Prefect server. Each request runs the
``sync-repository`` flow in this process, in a thread of its own (syncs of different repositories
run side by side; two of one repository queue on its lock as anywhere else), so every run shows
in the Prefect UI. What the CLI would print is streamed back as JSON lines::

    {"start": 12} {"advance": 4}      progress (only when the CLI draws a bar)
    {"stderr": "Warning: ..."}         a line for stderr
    {"stdout": "{...}"}                the result's JSON
    {"exit": 0}                        the end, with the exit code (3: partial)
    {"error": "...", "traceback": ""}  the end: the one-line error (exit 1)

When the CLI goes away (Ctrl-C half-closes the connection; a killed CLI closes it) the flow thread
gets a ``KeyboardInterrupt``, as an in-process sync gets one from Ctrl-C: the flow discards its
staged rows and the version is committed in one transaction or not at all. An interrupt is
delivered when the thread next runs Python code, so a sync waiting on a batch stops after it.

The process writes its state file (pid, port, token; mode 0600) once it is ready, removes it when
it exits, and exits on SIGTERM or after ``--idle`` seconds without a request.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import ctypes
import json
import os
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main"]


class _Stream:
    """One request's connection: JSON lines out, one writer at a time (flow and task threads)."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock, contextlib.suppress(OSError):  # a CLI gone away: the watcher cancels
            self._connection.sendall(json.dumps(message).encode() + b"\n")

    # SyncOutput
    def warn(self, line: str) -> None:
        self.send({"stderr": line})

    def result(self, text: str) -> None:
        self.send({"stdout": text})

    # flows.sync_repository.Progress
    def start(self, total: int) -> None:
        self.send({"start": total})

    def advance(self, count: int) -> None:
        self.send({"advance": count})


class _Sync:
    """One running sync: its thread, and the interrupt the watcher may raise in it."""

    def __init__(self) -> None:
        self.thread_id = threading.get_ident()
        self._lock = threading.Lock()
        self._done = False

    def interrupt(self) -> None:
        with self._lock:
            if not self._done:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self.thread_id), ctypes.py_object(KeyboardInterrupt)
                )

    def finish(self) -> None:
        with self._lock:
            self._done = True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, token: str, key: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.key = key
        self.served = 0
        self.running: dict[int, tuple[str, _Sync]] = {}
        self.last_request = time.monotonic()
        self.lock = threading.Lock()
        self.context = contextvars.copy_context()  # Prefect's settings as main() set them


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.context.copy().run(self._handle)

    def _handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
        except ValueError:
            return
        if not isinstance(request, dict) or not secrets.compare_digest(
            str(request.get("token", "")), self.server.token
        ):
            return  # not from a CLI of this home's user: no answer at all
        with self.server.lock:
            self.server.last_request = time.monotonic()
        stream = _Stream(self.connection)
        if request.get("op") == "ping":
            with self.server.lock:
                running = sorted(name for name, _ in self.server.running.values())
            stream.send(
                {"pid": os.getpid(), "key": self.server.key, "served": self.server.served, "syncing": running}
            )
        elif request.get("op") == "sync":
            self._sync(request, stream)

    def _sync(self, request: dict[str, Any], stream: _Stream) -> None:
        sync = _Sync()
        name = str(request.get("repository"))
        with self.server.lock:
            self.server.running[id(sync)] = (name, sync)
        watcher = threading.Thread(target=self._watch, args=(sync,), daemon=True)
        watcher.start()
        started, outcome = time.monotonic(), "failed"
        try:
            try:
                code = _run(request, stream, progress=bool(request.get("progress")))
            finally:
                sync.finish()
            stream.send({"exit": code})
            outcome = f"exit {code}"
        except KeyboardInterrupt:
            stream.send({"error": "aborted"})
            outcome = "interrupted"
        except BaseException as exc:  # noqa: BLE001  (every failure goes back to the CLI, in its words)
            stream.send(_failure(exc, debug=bool(request.get("debug"))))
        finally:
            print(f"sync of {name!r}: {outcome} after {time.monotonic() - started:.3f} s", flush=True)
            with self.server.lock:
                self.server.running.pop(id(sync), None)
                self.server.served += 1
                self.server.last_request = time.monotonic()

    def _watch(self, sync: _Sync) -> None:
        """Interrupt the sync when the CLI half-closes or drops the connection."""
        with contextlib.suppress(OSError):
            while self.connection.recv(1024):
                pass
        sync.interrupt()


def _run(request: dict[str, Any], stream: _Stream, *, progress: bool) -> int:
    from prefect.context import SyncClientContext

    from mirrorflow.flows.adhoc_sync import run_cli_sync
    from mirrorflow.flows.settings import Settings

    remote = request.get("remote")
    # One Prefect client per run, which the flow and task engines and ``get_client()`` (artifacts)
    # then take from the context instead of each making its own, and with it a TLS context: Prefect
    # builds one per client (loading the CA bundle: 0.1-0.25 s each on this machine), though the
    # local server is plain HTTP on loopback. It must be made with the default settings: a
    # client from the context is reused only by callers that ask for the same settings.
    with SyncClientContext():
        return run_cli_sync(
            str(request["repository"]),
            None if remote is None else str(remote),
            mirror=bool(request.get("mirror")),
            settings=Settings(),
            out=stream,
            progress=stream if progress else None,
        )


def _failure(exc: BaseException, *, debug: bool) -> dict[str, Any]:
    """What the CLI shows for ``exc``: its one line, as ``mirrorflow.flows.cli.main`` phrases it; a bug's traceback."""
    from mirrorflow.flows.cli import known_error_message
    from mirrorflow.storage.errors import MirrorflowError

    text = "".join(traceback.format_exception(exc))
    if isinstance(exc, MirrorflowError):
        message: str | None = str(exc)
    else:
        message = known_error_message(exc) if isinstance(exc, Exception) else None
    if message is None:  # a bug: the CLI shows its traceback, as it does for one in-process
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": text}
    lines = message.strip().splitlines() or ["unknown error"]
    return {"error": lines[0], "traceback": text if debug else ""}


def _warm_up() -> None:
    """Load what every sync uses and migrate the catalog now, not during the first request."""
    import mirrorflow.flows.adhoc_sync  # noqa: F401
    import mirrorflow.flows.cli  # noqa: F401
    import mirrorflow.flows.sync_repository  # noqa: F401
    import mirrorflow.flows.views  # noqa: F401
    import mirrorflow.tasks.stages  # noqa: F401

    with contextlib.suppress(Exception):  # bad settings are reported per request, in one line
        from mirrorflow.flows.runtime import catalog_for
        from mirrorflow.flows.settings import Settings

        catalog_for(Settings())
    with contextlib.suppress(Exception):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.api_healthcheck()


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file atomically, readable by its owner only (it holds the token)."""
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state, handle)
    partial.replace(path)


def _idle_watch(server: _Server, idle: float) -> None:
    while True:
        time.sleep(min(idle, 5.0))
        with server.lock:
            quiet = not server.running and time.monotonic() - server.last_request > idle
        if quiet:
            server.shutdown()
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mirrorflow.flows.warm_sync")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--idle", type=float, default=3600.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from mirrorflow.flows.locations import keep_prefect_results_in_home

    keep_prefect_results_in_home()  # the CLI that started it has set it; a process started otherwise
    from mirrorflow.flows.allocator import tune_allocator

    tune_allocator()
    _warm_up()
    from prefect.settings import temporary_settings

    # Heartbeats: Prefect's engine joins the heartbeat thread at the end of every run, which
    # sleeps in one-second steps (0.5 s a sync on average). They only mark crashed runs when an
    # automation watches for them, which the local server has none of.
    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        server = _Server(secrets.token_urlsafe(32), args.key)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    port = server.server_address[1]
    log = args.state.with_suffix(".log")
    _write_state(
        args.state,
        {"pid": os.getpid(), "port": port, "token": server.token, "key": args.key, "log": str(log)},
    )
    threading.Thread(target=_idle_watch, args=(server, args.idle), daemon=True).start()
    print(f"warm sync process {os.getpid()} ready on 127.0.0.1:{port} (settings {args.key})", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        with server.lock:
            running = [sync for _, sync in server.running.values()]
        for sync in running:  # stopped mid-sync: interrupt, as Ctrl-C would, and give it time
            sync.interrupt()
        deadline = time.monotonic() + 10
        while server.running and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(args.state.read_text()).get("pid") == os.getpid():
                args.state.unlink()
        server.server_close()
        print(f"warm sync process {os.getpid()} stopped", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
