"""pip and uv install from ``mirrorflow serve`` (the real app under uvicorn on loopback).

One client virtual environment per session (``python -m venv``: pip and setuptools from the
interpreter's ensurepip, nothing downloaded). Installs go to a fresh ``--target`` directory per test.
uv is used when it is found (``MIRRORFLOW_TEST_UV`` or ``uv`` on PATH); otherwise those tests skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_wheel
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.content import ContentWriter

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)]

INCLUDES = '["mf-demo-app", "mf-demo-lib", "mf-py-gate"]'


def _gate() -> FixtureProject:
    """mf-py-gate: 1.0 installs anywhere, 2.0 needs Python 4 (requires-python must make pip pick 1.0)."""
    files = []
    for version, requires in (("1.0", ">=3.8"), ("2.0", ">=4")):
        name, content = make_wheel("mf-py-gate", version, requires_python=requires)
        files.append(FixtureFile(name, content, requires_python=requires))
    return FixtureProject("mf-py-gate", files)


def _projects() -> list[FixtureProject]:
    demo = [p for p in seed_projects() if p.name.startswith("mf-demo")]
    return [*demo, _gate()]


@pytest.fixture(scope="session")
def client_python(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where / "bin" / "python"


#: A local (file://) index holding setuptools>=70, which builds wheels without the ``wheel`` package.
LOCAL_INDEX = os.environ.get("MIRRORFLOW_TEST_LOCAL_INDEX", "file:///opt/pypi/simple")


@pytest.fixture(scope="session")
def builder_python(tmp_path_factory) -> Path:
    """A client venv able to build sdists without build isolation (setuptools>=70), or skip."""
    where = tmp_path_factory.mktemp("builder-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    command = [str(python), "-m", "pip", "install", "-q", "--index-url", LOCAL_INDEX, "setuptools>=70"]
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=300)
    if result.returncode != 0:
        pytest.skip(f"setuptools>=70 not available offline from {LOCAL_INDEX!r}: {result.stderr[-300:]}")
    return python


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


def _pip(python: Path, index: str, target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index]
    command += ["--target", str(target), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _installed(target: Path) -> set[str]:
    return {p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info")}


def _sync(cli, url: str, policy: str) -> None:
    for args in (
        ("repository", "create", "--name", "foo"),
        ("remote", "create", "--name", "up", "--url", url, "--includes", INCLUDES, "--policy", policy),
        ("repository", "sync", "--name", "foo", "--remote", "up"),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr


def test_pip_installs_from_an_immediate_repository_with_the_upstream_stopped(
    cli, tmp_path, client_python, access_lines
):
    with serve_projects(_projects(), tmp_path) as upstream:
        _sync(cli, upstream.url, "immediate")
    with serve_in_thread(app_from_settings()) as base:
        index = f"{base}/foo/simple/"
        wheels = tmp_path / "wheels"
        _pip(client_python, index, wheels, "mf-demo-app", "mf-py-gate")
        assert _installed(wheels) == {"mf_demo_app-1.0", "mf_demo_lib-2.0", "mf_py_gate-1.0"}, (
            "2.1 is yanked and mf-py-gate 2.0 needs Python 4"
        )
        lines = access_lines()
        assert any("mf_demo_app-1.0-py3-none-any.whl.metadata" in line and " 200 " in line for line in lines)
        pinned = tmp_path / "pinned"
        _pip(client_python, index, pinned, "mf-demo-lib==2.1")
        assert _installed(pinned) == {"mf_demo_lib-2.1"}, "a yanked file is still installable when pinned"


def test_pip_builds_sdists_from_the_server(cli, tmp_path, builder_python, access_lines):
    with serve_projects(_projects(), tmp_path) as upstream:
        _sync(cli, upstream.url, "immediate")
    with serve_in_thread(app_from_settings()) as base:
        target = tmp_path / "sdists"
        args = ("--no-binary", ":all:", "--no-build-isolation", "mf-demo-app")
        _pip(builder_python, f"{base}/foo/simple/", target, *args)
    assert _installed(target) == {"mf_demo_app-1.0", "mf_demo_lib-2.0"}
    assert any("mf-demo-app-1.0.tar.gz" in line and " 200 " in line for line in access_lines())
    assert any("mf-demo-lib-2.0.tar.gz" in line and " 200 " in line for line in access_lines())


def test_pip_installs_on_demand_and_the_files_are_then_stored_once(
    cli, tmp_path, client_python, access_lines
):
    with serve_projects(_projects(), tmp_path) as upstream:
        _sync(cli, upstream.url, "on_demand")
        with serve_in_thread(app_from_settings()) as base:
            _pip(client_python, f"{base}/foo/simple/", tmp_path / "one", "mf-demo-app")
            _pip(client_python, f"{base}/foo/simple/", tmp_path / "two", "mf-demo-app")
        downloads = {path: count for path, count in upstream.hits.items() if path.endswith(".whl")}
    assert sorted(Path(p).name for p in downloads) == [
        "mf_demo_app-1.0-py3-none-any.whl",
        "mf_demo_lib-2.0-py3-none-any.whl",
    ]
    assert set(downloads.values()) == {1}, "each file fetched from the upstream once"
    settings = Settings()
    store = store_for(settings)
    for package in ContentWriter(catalog_for(settings)).content_at("foo"):
        if any(path.endswith(package.filename) for path in downloads):
            assert package.artifact_sha256 == package.sha256
            body = b"".join(store.open_chunks(package.sha256))
            assert hashlib.sha256(body).hexdigest() == package.sha256
        else:
            assert package.artifact_sha256 is None and not store.exists(package.sha256)


def _uv() -> str | None:
    beside_python = Path(sys.executable).with_name("uv")  # the test extra installs uv into the venv
    return (
        os.environ.get("MIRRORFLOW_TEST_UV")
        or shutil.which("uv")
        or (str(beside_python) if beside_python.exists() else None)
    )


@pytest.mark.skipif(_uv() is None, reason="uv not found: set MIRRORFLOW_TEST_UV or put uv on PATH")
def test_uv_installs_from_an_immediate_repository_with_the_upstream_stopped(cli, tmp_path, client_python):
    with serve_projects(_projects(), tmp_path) as upstream:
        _sync(cli, upstream.url, "immediate")
    with serve_in_thread(app_from_settings()) as base:
        target = tmp_path / "uv"
        command = [
            _uv(), "pip", "install", "--no-cache", "--python", str(client_python),
            "--index-url", f"{base}/foo/simple/", "--target", str(target), "mf-demo-app", "mf-py-gate",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert _installed(target) == {"mf_demo_app-1.0", "mf_demo_lib-2.0", "mf_py_gate-1.0"}
