"""The local Prefect server (issue 14, item 3): started once in the background, reused, stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from mirrorflow.flows.local_server import LocalServer

pytestmark = pytest.mark.slow


def _status(home) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MIRRORFLOW_", "PREFECT_"))}
    done = subprocess.run(
        [sys.executable, "-c", "from mirrorflow.flows.console import main; main()", "server", "status"],
        env=env | {"MIRRORFLOW_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_local_server_starts_once_is_reused_and_stops(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = LocalServer(tmp_path)
    assert server.running() is None and _status(tmp_path)["running"] is False
    try:
        state, started = server.ensure()
        assert started
        with urllib.request.urlopen(f"{state.api_url}/health", timeout=5) as response:
            assert response.status == 200
        again, started_again = LocalServer(tmp_path).ensure()
        assert (again, started_again) == (state, False), "a second start reuses the running server"
        shown = _status(tmp_path)
        assert shown["running"] is True and shown["url"] == state.url and shown["pid"] == state.pid
        assert (tmp_path / "prefect" / "server.json").is_file()
    finally:
        stopped = server.stop()
    assert stopped == state
    assert server.running() is None and not (tmp_path / "prefect" / "server.json").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)
