"""Deployments against a real Prefect server on loopback: served, started as the UI does
(``run_deployment``), started by ``mirrorflow repository sync --background``, and by a schedule.

The server is the local one (``mirrorflow.flows.local_server``, issue 14 item 3): started once in
the background, reused, shown by ``mirrorflow server status``, stopped. One server for both stories:
a Prefect server takes seconds of CPU to start, on two cores shared by the whole suite.

Everything that talks to this server runs in other processes: the test process keeps the session's
Prefect test harness, and a served deployment is what users run, a separate process. One helper
process (``_AGENT``) runs the ``mirrorflow`` commands (in-process, as the ``cli`` fixture does) and the
Prefect client calls, one per line it reads: importing Prefect and mirrorflow once, not in twenty
processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirrorflow.flows.local_server import LocalServer

pytestmark = pytest.mark.slow


def _stop(process: subprocess.Popen) -> None:
    """Stop a process this test started in its own session, and whatever it started."""
    os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


_AGENT = """
import contextlib, io, json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, DeploymentFilter, DeploymentFilterName
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from mirrorflow.flows.console import main


def mirrorflow(*args):  # as the console script runs it; exit code, stdout, stderr
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["mirrorflow", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def client_call(client, action, *args):
    if action == "ready":  # the serve process has registered these deployments
        deadline = time.monotonic() + 60
        missing = list(args)
        while missing and time.monotonic() < deadline:
            for name in list(missing):
                try:
                    client.read_deployment_by_name(name)
                    missing.remove(name)
                except ObjectNotFound:
                    time.sleep(0.5)
        return missing
    if action == "run":  # as the UI's "Quick run" (or "Custom run", with parameters) does, then wait
        parameters = json.loads(args[1]) if len(args) > 1 else None
        run = run_deployment(args[0], parameters=parameters, timeout=90, poll_interval=1)
        return {"id": str(run.id), "state": run.state.type.value, "auto": run.auto_scheduled,
                "message": run.state.message}
    if action == "wait":  # one flow run, by id
        deadline = time.monotonic() + 90
        while True:
            run = client.read_flow_run(args[0])
            if run.state.is_final() or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {"id": str(run.id), "state": run.state.type.value}
    if action == "scheduled":  # the first completed auto-scheduled run of a deployment
        deadline = time.monotonic() + 90
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[args[0]]))
            )
            done = [r for r in runs if r.auto_scheduled and r.state.is_final()]
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return [{"id": str(r.id), "state": r.state.type.value} for r in done]
    if action == "artifacts":
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(args))))
        return [{"key": a.key, "data": a.data, "flow_run_id": str(a.flow_run_id)} for a in found]
    raise ValueError(action)


answers = sys.stdout
with get_client(sync_client=True) as client:
    for line in sys.stdin:
        kind, *args = json.loads(line)
        answer = mirrorflow(*args) if kind == "mirrorflow" else client_call(client, kind, *args)
        answers.write(json.dumps(answer) + "\\n")
        answers.flush()
"""


class Agent:
    """The helper process: ``mirrorflow(...)`` runs a command, ``client(...)`` a Prefect client call."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _AGENT],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def _ask(self, *request: str):
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the agent died: {self.log.read_text()}"
        return json.loads(line)

    def mirrorflow(self, *args: str):
        done = self._ask("mirrorflow", *args)
        assert done["code"] == 0, done["stderr"]
        return json.loads(done["stdout"]) if done["stdout"].strip() else None

    def client(self, action: str, *args: str):
        return self._ask(action, *args)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._stderr.close()


@pytest.fixture
def local_server(tmp_path, monkeypatch) -> Iterator[tuple[LocalServer, Path]]:
    """The local Prefect server of a fresh home, not started yet; stopped after the test if it runs."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # The server starts with this process's environment: a scheduler that looks every second.
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "1")
    home = tmp_path / "home"
    server = LocalServer(home)
    try:
        yield server, home
    finally:
        with contextlib.suppress(Exception):
            server.stop()


def _client_env(home: Path, api_url: str) -> dict[str, str]:
    """The environment of the processes that talk to the server: no setting of this test session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MIRRORFLOW_"))}
    return env | {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_API_URL": api_url,
        "MIRRORFLOW_HOME": str(home),
    }


def test_the_local_server_runs_served_deployments_from_the_ui_the_cli_and_a_schedule(
    local_server, seed_index, tmp_path
):
    server, home = local_server
    assert server.running() is None
    state, started = server.ensure()
    assert started
    assert httpx.get(f"{state.api_url}/health", timeout=5).status_code == 200
    again, started_again = LocalServer(home).ensure()
    assert (again, started_again) == (state, False), "a second start reuses the running server"
    assert (home / "prefect" / "server.json").is_file()

    env = _client_env(home, state.api_url)
    agent = Agent(env, tmp_path / "agent.log")
    log = (tmp_path / "serve.log").open("wb")
    try:
        shown = agent.mirrorflow("server", "status")
        assert shown["running"] is True and shown["url"] == state.url and shown["pid"] == state.pid
        _served_deployments(agent, env, seed_index, tmp_path, log)
    finally:
        agent.close()
        log.close()

    stopped = server.stop()
    assert stopped == state
    assert server.running() is None and not (home / "prefect" / "server.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)


def _served_deployments(agent: Agent, env: dict[str, str], seed_index, tmp_path: Path, log) -> None:
    mirrorflow, client = agent.mirrorflow, agent.client
    mirrorflow("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    mirrorflow("remote", "create", "--name", "tools", "--url", seed_index.url, "--includes", '["pip-tools"]')
    mirrorflow("repository", "create", "--name", "foo", "--remote", "bar")
    mirrorflow("repository", "create", "--name", "tick")
    mirrorflow("repository", "create", "--name", "spare")  # no schedule: nothing else syncs it
    mirrorflow("repository", "schedule", "--name", "tick", "--remote", "bar", "--interval", "5")

    serve = subprocess.Popen(
        [sys.executable, "-m", "mirrorflow.deployments.serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its flow-run processes join its group: stopped together below
    )
    try:
        missing = client("ready", "sync-repository/foo", "sync-repository/tick", "sync-repository/spare")
        assert missing == [], (tmp_path / "serve.log").read_text()
        ui = client("run", "sync-repository/foo")  # waits while the served process picks it up
        assert ui["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()
        assert mirrorflow("repository", "show", "--name", "foo")["latest_version"] == 1
        # foo's form pointed at another repository: refused, and that repository is left alone.
        other = client("run", "sync-repository/foo", json.dumps({"repository": "spare", "remote": "bar"}))
        assert other["state"] == "FAILED" and "syncs 'foo' only" in (other["message"] or ""), other
        assert mirrorflow("repository", "show", "--name", "spare")["latest_version"] == 0

        background = mirrorflow("repository", "sync", "--name", "foo", "--remote", "tools", "--background")
        assert background["deployment"] == "sync-repository/foo" and background["flow_run_id"]
        assert client("wait", background["flow_run_id"])["state"] == "COMPLETED"
        version = mirrorflow("repository", "version", "show", "--repository", "foo")
        added = version["content_summary"]["added"]["python.python"]["count"]
        assert version["number"] == 2 and added > 0
        assert version["content_summary"]["present"]["python.python"]["count"] == 2 + added

        scheduled = client("scheduled", "tick")
        assert scheduled and scheduled[0]["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()
        assert mirrorflow("repository", "show", "--name", "tick")["latest_version"] == 1

        artifacts = client("artifacts", "sync-foo", "sync-foo-summary", "sync-foo-progress")
        by_run = {(a["key"], a["flow_run_id"]): a["data"] for a in artifacts}
        assert ("sync-foo", ui["id"]) in by_run and ("sync-foo-progress", ui["id"]) in by_run
        assert "version 2" in by_run[("sync-foo-summary", background["flow_run_id"])]
        rows = {
            row["metric"]: row["value"] for row in json.loads(by_run[("sync-foo", background["flow_run_id"])])
        }
        assert rows["added"] == str(added) and rows["present"] == str(2 + added)
    finally:
        _stop(serve)
