"""deployments.serve points Prefect where the CLI does, before Prefect is imported: without
PREFECT_API_URL, the home's local server (so 'repository sync --background' finds its deployments),
and Prefect's results under the home. No server is started here: the start is recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mirrorflow.deployments import serve


@pytest.fixture
def started(monkeypatch, tmp_path) -> list[Path]:
    calls: list[Path] = []
    monkeypatch.setattr(serve, "use_local_server", calls.append)
    monkeypatch.setenv("MIRRORFLOW_HOME", str(tmp_path))
    for name in (
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "PREFECT_LOCAL_STORAGE_PATH",
        "MIRRORFLOW_PREFECT_SERVER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", "")  # unset, and restored so after the test
    return calls


@pytest.mark.parametrize("choice", [None, "local"])
def test_without_an_api_url_serve_uses_the_homes_local_server(started, monkeypatch, tmp_path, choice):
    if choice is not None:
        monkeypatch.setenv("MIRRORFLOW_PREFECT_SERVER", choice)
    serve.choose_prefect_server()
    assert started == [tmp_path]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("PREFECT_API_URL", "http://127.0.0.1:9/api", id="api-url"),
        pytest.param("MIRRORFLOW_PREFECT_SERVER", "temporary", id="temporary"),
    ],
)
def test_an_explicit_server_choice_is_kept(started, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    serve.choose_prefect_server()
    assert started == []


def test_results_go_under_the_home_unless_the_user_chose(started, monkeypatch, tmp_path):
    import os

    serve.choose_prefect_server()
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(tmp_path / "prefect" / "storage")
    monkeypatch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", "/elsewhere")
    serve.choose_prefect_server()
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == "/elsewhere"


def test_importing_serve_leaves_prefect_unimported():
    # Prefect reads its settings once, when imported: main must choose the server before that.
    code = "import sys, mirrorflow.deployments.serve; print('prefect' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_the_cli_keeps_prefect_results_under_the_home_for_its_runs_and_the_warm_process(
    started, monkeypatch, tmp_path, capsys
):
    import os

    from mirrorflow.flows.console import main

    monkeypatch.setattr(sys, "argv", ["mirrorflow", "--version"])
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    # The warm sync process and in-process runs inherit this process's environment.
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(tmp_path / "prefect" / "storage")
