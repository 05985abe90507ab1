"""The dependency closure end to end (issue 19): sync the closure catalog with ``include_dependencies``,
stop the upstream, and ``pip download --only-binary=:all:`` each explicit include from ``mirrorflow
serve`` for every target environment; nothing outside the closure is synced, the report says what
is incomplete and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from support_index import serve_projects

from mirrorflow.fixtureindex.closure_catalog import CLOSURE_EXPECTED, CLOSURE_REMOTE, closure_projects
from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.server.threaded import serve_in_thread

pytestmark = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)

#: The target platforms of CLOSURE_REMOTE as pip spells them: one pip run per Python version takes
#: them all (pip accepts several ``--platform``; a wheel of any of them is accepted).
PLATFORMS = ("manylinux2014_x86_64", "manylinux2014_aarch64", "macosx_11_0_arm64", "macosx_10_9_x86_64")
#: The explicit includes pip can resolve: ``broken`` needs a project no index has (reported, below).
RESOLVABLE = ["webapp[secure]", "client"]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _download(index: str, dest: Path, python: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pip", "download", "--no-cache-dir", "--only-binary=:all:"]
    command += ["--python-version", python, "--index-url", index, "-d", str(dest)]
    command += [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return subprocess.Popen(
        [*command, *RESOLVABLE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env()
    )


def test_the_closure_is_synced_and_pip_resolves_every_include_in_every_target_env(cli, tmp_path) -> None:
    remote = [
        "--includes",
        json.dumps(CLOSURE_REMOTE["includes"]),
        "--python-versions",
        json.dumps(CLOSURE_REMOTE["python_versions"]),
        "--exclude-platforms",
        json.dumps(CLOSURE_REMOTE["exclude_platforms"]),
        "--include-dependencies",
        "--policy",
        "immediate",
    ]
    with serve_projects(closure_projects(), tmp_path) as upstream:
        assert cli("repository", "create", "--name", "foo").exit_code == 0
        created = cli("remote", "create", "--name", "up", "--url", upstream.url, *remote)
        assert created.exit_code == 0, created.stderr
        assert json.loads(created.stdout)["include_dependencies"] is True
        synced = cli("repository", "sync", "--name", "foo", "--remote", "up")
        assert synced.exit_code == 0, synced.stderr
        report = json.loads(synced.stdout)["report"]["closure"]
        file_reads = sum(n for path, n in upstream.hits.items() if "/files/" in path)
        again = cli("repository", "sync", "--name", "foo", "--remote", "up")
        assert again.exit_code == 0, again.stderr
        # The resync reads no file twice: the answers are cached by sha256, the files stored.
        assert sum(n for path, n in upstream.hits.items() if "/files/" in path) == file_reads
        assert json.loads(again.stdout)["changed"] is False, (
            "a resync of an unchanged closure changes nothing"
        )
    # What the closure added, with the chains; what it could not close.
    added = {item["project"]: item["chain"] for item in report["added"]}
    assert set(added) == set(CLOSURE_EXPECTED) - {"webapp", "client", "broken"}
    assert added["typing-ext"] == "typing-ext>=4 <- asgi-ref 3.8 <- asgi-ref>=3.8 <- webapp 2.0"
    assert added["argon-bind"] == "argon-bind <- argon 1.0 <- argon>=1 <- webapp 2.0"
    assert {i["requirement"] for i in report["unsatisfied"]} == {"ghost>=1 <- broken 1.0"}
    assert {i["release"] for i in report["unknown"]} == {"sd-dynamic 1.0"}, "sd-static's PKG-INFO is 2.2"
    assert added["idna-x"] == "idna-x>=2 <- client 1.0"
    assert "added asgi-ref: asgi-ref<3.8,>=3.7 <- webapp 1.0" in synced.stderr
    # Nothing outside the closure.
    listed = cli("content", "list", "--repository", "foo")
    assert listed.exit_code == 0, listed.stderr
    synced_files = {(canonicalize_name(p["name"]), p["version"]) for p in json.loads(listed.stdout)}
    expected = {(name, version) for name, versions in CLOSURE_EXPECTED.items() for version in versions}
    assert synced_files == expected
    # pip resolves every include in every target environment from the mirror alone (upstream stopped).
    with serve_in_thread(app_from_settings()) as base:
        pythons = CLOSURE_REMOTE["python_versions"]
        runs = [(python, _download(f"{base}/foo/simple/", tmp_path / python, python)) for python in pythons]
        try:
            for python, run in runs:
                output, _ = run.communicate(timeout=120)
                assert run.returncode == 0, f"{python}: {output[-2000:]}"
                got = {p.name.split("-")[0] for p in (tmp_path / python).iterdir()}
                assert got >= {"webapp", "argon_bind", "uvloop_x"}, output[-2000:]
        finally:
            for _, run in runs:
                if run.poll() is None:
                    run.kill()
                    run.communicate()
