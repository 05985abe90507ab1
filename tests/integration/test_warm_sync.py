"""The thin CLI (issue 14, item 3): a sync runs in the warm sync process and prints what an in-process sync prints.

One warm process serves the whole module (starting one imports Prefect: seconds). It talks to the
session's Prefect test harness, adopted as this home's "local server" by writing the state file
``mirrorflow.flows.local_server`` would have written, so no Prefect server is started here; the fixture stops
the warm process and removes that file, leaving nothing behind. The in-process sync it is compared
with runs on the same harness (``MIRRORFLOW_PREFECT_SERVER=temporary``, the suite's choice).

xdist's ``worksteal`` spreads the module's tests over workers in any order, each worker with a home of
its own: every test makes the repositories and remotes it needs, and none assumes that another test ran
before it, or started or stopped the warm process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support_content import run_cli

from mirrorflow.fixtureindex.faults import Fault, Rule, serve_faulty
from mirrorflow.flows.local_server import alive
from mirrorflow.flows.warm_sync_client import WarmSyncError, WarmSyncs, sync_through_warm_process

MIRRORFLOW = str(Path(sys.executable).with_name("mirrorflow"))


@pytest.fixture(scope="module")
def warm_home(tmp_path_factory, prefect_harness) -> Iterator[Path]:
    from prefect.settings import PREFECT_API_URL

    home = tmp_path_factory.mktemp("warm") / "home"
    (home / "prefect").mkdir(parents=True)
    api_url = str(PREFECT_API_URL.value())
    state = home / "prefect" / "server.json"
    state.write_text(json.dumps({"pid": os.getpid(), "url": api_url.removesuffix("/api")}))
    try:
        yield home
    finally:
        state.unlink()  # before anything could take this process for the server and stop it
        stopped = WarmSyncs(home).stop_all()
        assert all(not alive(pid) for pid in stopped)


@pytest.fixture
def in_home(warm_home, monkeypatch) -> Path:
    """This test process's environment pointed at the module's home (in-process commands, the client)."""
    from mirrorflow.flows.runtime import reset_caches

    for name in [n for n in os.environ if n.startswith("MIRRORFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MIRRORFLOW_HOME", str(warm_home))
    monkeypatch.setenv("MIRRORFLOW_PREFECT_SERVER", "temporary")
    # The in-process CLI sets these in os.environ, and the thin client's environment is a copy of
    # os.environ: set from the start, the warm process's key stays the same through a test.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(warm_home / "prefect" / "storage"))
    reset_caches()
    yield warm_home
    reset_caches()


def _thin_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORFLOW_") and k != "PREFECT_API_URL"}
    return env | {"MIRRORFLOW_HOME": str(home)}  # the default: MIRRORFLOW_PREFECT_SERVER=local


def _in_process(capsys, *args: str) -> tuple[int, str, str]:
    code, out, err = run_cli(capsys, *args)
    # Under pytest's capture Prefect's console handler is not the one the CLI quiets: keep our lines.
    return (
        code,
        out,
        "".join(line for line in err.splitlines(True) if line.startswith(("Warning: ", "Error: "))),
    )


def _thin(home: Path, name: str, remote: str | None = None) -> tuple[int, str, str]:
    """The thin CLI's sync, in this process (it loads nothing heavy; the test process has it anyway)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        code = sync_through_warm_process(
            name, remote, mirror=False, debug=False, environ=_thin_env(home), stdout=out, stderr=err
        )
    except WarmSyncError as exc:
        code = 1
        print(f"Error: {exc}", file=err)
    return code, out.getvalue(), err.getvalue()


_VOLATILE = {"pulp_href", "prn", "pulp_created", "pulp_last_updated", "repository", "href"}
_TIMINGS = {"duration_s", "lock_wait_s"}


def _shape(value: Any) -> Any:
    """The JSON without what differs between two repositories synced alike (ids, times, durations)."""
    if isinstance(value, dict):
        return {
            key: "<timing>" if key in _TIMINGS else "<id>" if key in _VOLATILE else _shape(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return value


def _remote(capsys, name: str, url: str, includes: str) -> None:
    """Remote ``name`` at ``url``: created, or updated when an earlier test on this worker made it."""
    exists = _in_process(capsys, "remote", "show", "--name", name)[0] == 0
    verb = "update" if exists else "create"
    done = _in_process(capsys, "remote", verb, "--name", name, "--url", url, "--includes", includes)
    assert done[0] == 0, done[2]


def _setup(capsys, url: str, *repositories: str) -> None:
    """New repositories (each test names its own) and the remote ``up`` on the seed index."""
    for repository in repositories:
        assert _in_process(capsys, "repository", "create", "--name", repository)[0] == 0
    _remote(capsys, "up", url, '["shelf-reader", "no-such-project"]')


def test_thin_sync_prints_what_the_in_process_sync_prints_and_reuses_its_process(in_home, seed_index, capsys):
    WarmSyncs(in_home).stop_all()  # this test covers the start, whatever ran before it on this worker
    _setup(capsys, seed_index.url, "thin", "fat")
    code, out, err = _thin(in_home, "thin", "up")
    assert code == 0, err
    started, *warnings = err.splitlines()
    assert (
        started.startswith("started a warm sync process") and "the Prefect UI: http://127.0.0.1:" in started
    )
    fat = _in_process(capsys, "repository", "sync", "--name", "fat", "--remote", "up")
    assert fat[0] == 0, fat[2]
    assert (
        warnings
        == fat[2].splitlines()
        == ["Warning: included project 'no-such-project' is not on the index; nothing synced for it"]
    )
    thin_json, fat_json = json.loads(out), json.loads(fat[1])
    assert thin_json["changed"] is True and thin_json["number"] == 1
    assert _shape(thin_json) == _shape(fat_json)

    again = _thin(in_home, "thin", "up")  # the same process, no start line
    assert again[0] == 0 and again[2].splitlines() == warnings
    fat_again = _in_process(capsys, "repository", "sync", "--name", "fat", "--remote", "up")
    assert json.loads(again[1])["changed"] is False
    assert _shape(json.loads(again[1])) == _shape(json.loads(fat_again[1]))
    [(state, status)] = WarmSyncs(in_home).all()
    assert status is not None and status["served"] == 2 and status["syncing"] == []


def test_thin_errors_are_the_in_process_ones(in_home, capsys):
    thin = _thin(in_home, "nope")
    fat = _in_process(capsys, "repository", "sync", "--name", "nope")
    assert (thin[0], thin[1]) == (fat[0], fat[1]) == (1, "")
    assert thin[2].splitlines()[-1] == fat[2].strip() and fat[2].startswith("Error: ")


def test_the_thin_cli_loads_no_prefect_nor_database_toolkit(in_home, seed_index, capsys):
    """The console script, in its own interpreter: the sync's answer, and the packages it loaded."""
    _setup(capsys, seed_index.url, "quiet")
    assert _thin(in_home, "quiet", "up")[0] == 0  # the warm process runs, and the next sync changes nothing
    program = (
        "import json, sys; sys.argv = ['mirrorflow', *sys.argv[1:]]; from mirrorflow.flows.console import main\n"
        "try:\n    main()\nfinally:\n"
        "    print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "repository", "sync", "--name", "quiet", "--remote", "up"],
        env=_thin_env(in_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["changed"] is False
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    # Nor Typer: a plain sync is sent before it loads (flows.console).
    assert (
        loaded & {"prefect", "sqlalchemy", "alembic", "httpx", "minio", "rich", "typer", "pydantic"} == set()
    )


def test_syncs_of_two_repositories_run_side_by_side_in_one_warm_process(in_home, seed_index, capsys):
    _setup(capsys, seed_index.url, "left", "right")
    results: dict[str, tuple[int, str, str]] = {}
    threads = [
        threading.Thread(target=lambda n=n: results.update({n: _thin(in_home, n, "up")}))
        for n in ("left", "right")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("left", "right"):
        code, out, err = results[name]
        assert code == 0, err
        assert json.loads(out)["changed"] is True and json.loads(out)["number"] == 1
    [(_, status)] = WarmSyncs(in_home).all()
    assert status is not None and status["syncing"] == []


@contextlib.contextmanager
def _stalled(seed_index) -> Iterator[Any]:
    """The seed index, whose shelf-reader page answers only after 10 s.

    The test acts (Ctrl-C, a kill) once the page was asked for, and must act before it answers: on two
    loaded cores a test's thread and the CLI's signal handler have taken more than 1.5 s to run. The
    wait costs nothing when the index stops first (``serve_faulty`` resets a stalled answer); after a
    Ctrl-C, the sync's thread sees its interrupt when the page answers.
    """
    rule = Rule("/simple/shelf-reader/", Fault.slow(delay=10))
    with serve_faulty(seed_index.root, [rule]) as index:
        yield index


def test_ctrl_c_stops_the_sync_without_a_version(in_home, seed_index, capsys):
    with _stalled(seed_index) as index:
        _remote(capsys, "slow", index.url, '["shelf-reader"]')
        assert _in_process(capsys, "repository", "create", "--name", "stopped")[0] == 0
        cli = subprocess.Popen(
            [MIRRORFLOW, "repository", "sync", "--name", "stopped", "--remote", "slow"],
            env=_thin_env(in_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As from a terminal: a suite started in the background (`make test &`) ignores SIGINT,
            # and a child keeps that, so Python would never raise KeyboardInterrupt in it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        index.wait_for("slow", timeout=30)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=60)
    # As Ctrl-C ends an in-process sync (Typer's exit code for it), once the warm process stopped it.
    # The module's home may get its warm process from this very sync (xdist runs the module's tests on
    # several workers, each with a home of its own): its one announcement line is all stderr may hold.
    said = [line for line in err.splitlines() if not line.startswith("started a warm sync process ")]
    assert (cli.returncode, out, said) == (130, "", [])
    shown = _in_process(capsys, "repository", "show", "--name", "stopped")
    assert json.loads(shown[1])["latest_version_href"].endswith("/versions/0/"), "no version was committed"
    [(_, status)] = WarmSyncs(in_home).all()
    assert status is not None and status["syncing"] == [], "the warm process lives on, idle"


def test_a_warm_process_that_dies_mid_sync_is_one_line(in_home, seed_index, capsys):
    """It kills this worker's warm process; a later test here starts another (and may say so)."""
    _thin(in_home, "nope")  # an answer from the warm process, which is started first when there is none
    [(state, _)] = [(state, status) for state, status in WarmSyncs(in_home).all() if status is not None]
    assert _in_process(capsys, "repository", "create", "--name", "killed")[0] == 0
    with _stalled(seed_index) as index:
        _remote(capsys, "slow", index.url, '["shelf-reader"]')
        killer = threading.Thread(
            target=lambda: (index.wait_for("slow", timeout=30), os.kill(state.pid, signal.SIGKILL))
        )
        killer.start()
        code, out, err = _thin(in_home, "killed", "slow")
        killer.join()
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith(
        f"Error: the warm sync process (pid {state.pid}) stopped during the sync of 'killed'"
    )
    assert line.endswith("rerun the sync")
    shown = _in_process(capsys, "repository", "show", "--name", "killed")
    assert json.loads(shown[1])["latest_version_href"].endswith("/versions/0/"), "no version was committed"
