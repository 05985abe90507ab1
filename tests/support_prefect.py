"""Prefect and CLI fixtures: one Prefect test harness per session, a mirrorflow environment per test.

``mirrorflow_env`` points the settings at a fresh SQLite catalog and directory store (or, with
``backend="postgres-s3"``, at the session's PostgreSQL database and a fresh S3 bucket), and
``cli`` runs ``mirrorflow`` commands in-process, as a user would type them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support_content import run_cli

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's console handler keeps the stream it first saw; under pytest's capture that stream is
# closed by the time the harness stops. Tests read flow logs through caplog instead.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The suite chooses how CLI syncs run, whatever the developer's shell says: in the test process, on
# the session's Prefect test harness. The default ("local") would start a Prefect server and a warm
# sync process in the background, left running after the tests; only test_prefect_ops_server and
# test_warm_sync choose it, and stop what they start. Subprocesses inherit the choice.
os.environ["MIRRORFLOW_PREFECT_SERVER"] = "temporary"
# Retries after a lost connection wait 0.05 s and up, not the 2 s and up of production: the fault
# tests reset hundreds of connections, and what they prove is that a sync retries and converges,
# not how long it waits (tests/unit/test_retrying.py holds the waits themselves).
os.environ.setdefault("MIRRORFLOW_RETRY_BACKOFF", "0.05")
# Servers the tests start see each commit at once: a test syncs and requests within the same second,
# which production's one-second state window would answer from before the commit (the window itself
# is held by tests/integration/test_server_cache.py, on a clock of its own).
os.environ.setdefault("MIRRORFLOW_SERVE_STATE_INTERVAL", "0")

__all__ = ["prefect_harness", "mirrorflow_env", "cli", "CliResult", "MirrorflowEnv"]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test harness (a temporary API server), started once for the whole session.

    Flow-run heartbeats are off in this process: Prefect ends every flow run by joining its
    heartbeat thread, which sleeps in one-second steps, and that added half a second on average
    to each of the suite's hundreds of flow runs. Nothing here reads them (a crashed run is what
    a Prefect server finds by them); the served deployments of ``test_prefect_ops_server`` run in
    their own processes, with them on.
    """
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=180),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        yield


@dataclass
class MirrorflowEnv:
    backend: str
    home: Any
    database_url: str
    s3_bucket: str | None = None


def _reset_runtime_caches() -> None:
    from mirrorflow.flows.runtime import reset_caches

    reset_caches()


@pytest.fixture(
    params=["sqlite-fs", pytest.param("postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3])]
)
def mirrorflow_env(request, tmp_path, monkeypatch, prefect_harness) -> Iterator[MirrorflowEnv]:
    """Settings for one test: SQLite + directory store, or PostgreSQL + S3 (moto)."""
    home = tmp_path / "home"
    monkeypatch.setenv("MIRRORFLOW_HOME", str(home))
    env = MirrorflowEnv(backend=request.param, home=home, database_url=f"sqlite:///{home / 'catalog.db'}")
    if request.param == "postgres-s3":
        env.database_url = request.getfixturevalue("catalog_url_postgres")
        from support_s3 import new_bucket_name

        env.s3_bucket = new_bucket_name()
        monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", env.database_url)
        monkeypatch.setenv("MIRRORFLOW_S3_ENDPOINT", request.getfixturevalue("s3_endpoint"))
        monkeypatch.setenv("MIRRORFLOW_S3_BUCKET", env.s3_bucket)
        monkeypatch.setenv("MIRRORFLOW_S3_ACCESS_KEY", "testing")
        monkeypatch.setenv("MIRRORFLOW_S3_SECRET_KEY", "testing")
        monkeypatch.setenv("MIRRORFLOW_S3_SECURE", "false")
    else:
        for name in ("DATABASE_URL", "S3_ENDPOINT"):
            monkeypatch.delenv(f"MIRRORFLOW_{name}", raising=False)
    _reset_runtime_caches()
    yield env
    _reset_runtime_caches()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli(mirrorflow_env, capsys):
    """Run ``mirrorflow ARGS...`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        return CliResult(*run_cli(capsys, *args))

    return run
