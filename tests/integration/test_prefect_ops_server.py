"""Deployments against a real ``prefect server start`` on loopback: served, started as the UI does
(``run_deployment``), started by ``mirrorflow repository sync --background``, and by a schedule.

Everything that talks to this server runs in subprocesses: the test process keeps the session's
Prefect test harness, and a served deployment is what users run, a separate process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_env(tmp_path) -> Iterator[dict[str, str]]:
    """A Prefect server on a loopback port (own PREFECT_HOME), and the environment to reach it."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MIRRORFLOW_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "MIRRORFLOW_HOME": str(tmp_path / "home"),
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start in 180 s"
            time.sleep(0.3)
        yield env
    finally:
        _stop(server)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop a process this test started in its own session, and whatever it started."""
    os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _mirrorflow(env: dict[str, str], *args: str):
    done = subprocess.run(
        [str(BIN / "mirrorflow"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


_CLIENT = """
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, DeploymentFilter, DeploymentFilterName
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

action = sys.argv[1]
with get_client(sync_client=True) as client:
    if action == "ready":  # the serve process has registered these deployments
        deadline = time.monotonic() + 60
        missing = sys.argv[2:]
        while missing and time.monotonic() < deadline:
            for name in list(missing):
                try:
                    client.read_deployment_by_name(name)
                    missing.remove(name)
                except ObjectNotFound:
                    time.sleep(0.5)
        print(json.dumps(missing))
    elif action == "run":  # as the UI's "Quick run" (or "Custom run", with parameters) does, then wait
        parameters = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
        run = run_deployment(sys.argv[2], parameters=parameters, timeout=90, poll_interval=1)
        print(json.dumps({"id": str(run.id), "state": run.state.type.value, "auto": run.auto_scheduled,
                          "message": run.state.message}))
    elif action == "wait":  # one flow run, by id
        deadline = time.monotonic() + 90
        while True:
            run = client.read_flow_run(sys.argv[2])
            if run.state.is_final() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(json.dumps({"id": str(run.id), "state": run.state.type.value}))
    elif action == "scheduled":  # the first completed auto-scheduled run of a deployment
        deadline = time.monotonic() + 90
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[sys.argv[2]]))
            )
            done = [r for r in runs if r.auto_scheduled and r.state.is_final()]
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        print(json.dumps([{"id": str(r.id), "state": r.state.type.value} for r in done]))
    elif action == "artifacts":
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=sys.argv[2:])))
        print(json.dumps([{"key": a.key, "data": a.data, "flow_run_id": str(a.flow_run_id)} for a in found]))
"""


def _client(env: dict[str, str], *args: str):
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, *args], env=env, capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_served_deployments_run_from_the_ui_the_cli_and_a_schedule(server_env, seed_index, tmp_path):
    env = server_env
    _mirrorflow(
        env, "remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]'
    )
    _mirrorflow(
        env, "remote", "create", "--name", "tools", "--url", seed_index.url, "--includes", '["pip-tools"]'
    )
    _mirrorflow(env, "repository", "create", "--name", "foo", "--remote", "bar")
    _mirrorflow(env, "repository", "create", "--name", "tick")
    _mirrorflow(env, "repository", "create", "--name", "spare")  # no schedule: nothing else syncs it
    _mirrorflow(env, "repository", "schedule", "--name", "tick", "--remote", "bar", "--interval", "5")

    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "mirrorflow.deployments.serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its flow-run processes join its group: stopped together below
    )
    try:
        missing = _client(
            env, "ready", "sync-repository/foo", "sync-repository/tick", "sync-repository/spare"
        )
        assert missing == [], (tmp_path / "serve.log").read_text()
        ui = _client(env, "run", "sync-repository/foo")  # waits while the served process picks it up
        assert ui["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()
        assert _mirrorflow(env, "repository", "show", "--name", "foo")["latest_version"] == 1
        # foo's form pointed at another repository: refused, and that repository is left alone.
        other = _client(
            env, "run", "sync-repository/foo", json.dumps({"repository": "spare", "remote": "bar"})
        )
        assert other["state"] == "FAILED" and "syncs 'foo' only" in (other["message"] or ""), other
        assert _mirrorflow(env, "repository", "show", "--name", "spare")["latest_version"] == 0

        background = _mirrorflow(
            env, "repository", "sync", "--name", "foo", "--remote", "tools", "--background"
        )
        assert background["deployment"] == "sync-repository/foo" and background["flow_run_id"]
        assert _client(env, "wait", background["flow_run_id"])["state"] == "COMPLETED"
        version = _mirrorflow(env, "repository", "version", "show", "--repository", "foo")
        added = version["content_summary"]["added"]["python.python"]["count"]
        assert version["number"] == 2 and added > 0
        assert version["content_summary"]["present"]["python.python"]["count"] == 2 + added

        scheduled = _client(env, "scheduled", "tick")
        assert scheduled and scheduled[0]["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()
        assert _mirrorflow(env, "repository", "show", "--name", "tick")["latest_version"] == 1

        artifacts = _client(env, "artifacts", "sync-foo", "sync-foo-summary", "sync-foo-progress")
        by_run = {(a["key"], a["flow_run_id"]): a["data"] for a in artifacts}
        assert ("sync-foo", ui["id"]) in by_run and ("sync-foo-progress", ui["id"]) in by_run
        assert "version 2" in by_run[("sync-foo-summary", background["flow_run_id"])]
        rows = {
            row["metric"]: row["value"] for row in json.loads(by_run[("sync-foo", background["flow_run_id"])])
        }
        assert rows["added"] == str(added) and rows["present"] == str(2 + added)
    finally:
        _stop(serve)
        log.close()
