"""PEP 792 project statuses and upstream takedowns end to end (issue 20): a fixture index that serves
API 1.4 statuses, synced through the CLI in additive mode, then served and installed from with pip.

One upstream, three projects, two states: in the second, ``mf-arch`` is archived and one of its files
is taken down, ``mf-quar`` is quarantined (its page lists no file) and ``mf-gone`` has left the index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from support_content import commit as commit_packages
from support_content import new_package
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_sdist, make_wheel
from mirrorflow.server.pages import JSON_V1
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.project_statuses import latest_filenames, latest_statuses
from mirrorflow.storage.serials import SerialMemory, Touched
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.filenames import parse_filename


def _project(name: str, versions: tuple[str, ...], **status: str) -> FixtureProject:
    files = [FixtureFile(*make_wheel(name, v)) for v in versions]
    return FixtureProject(name, [*files, FixtureFile(*make_sdist(name, versions[-1]))], **status)


BEFORE = [_project("mf-arch", ("1.0", "1.1")), _project("mf-quar", ("1.0",)), _project("mf-gone", ("1.0",))]
AFTER = [
    _project("mf-arch", ("1.1",), status="archived", status_reason="moved to mf-arch2"),
    _project("mf-quar", ("1.0",), status="quarantined", status_reason="malware"),
]


def _of(*projects: str):
    return lambda filename: parse_filename(filename).name in projects


def _pip(base: str, *args: str, target: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--only-binary", ":all:",
               "--index-url", f"{base}/foo/simple/", "--target", target, *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_statuses_and_takedowns_through_additive_syncs_serve_and_pip(cli, tmp_path) -> None:
    def ok(*args: str) -> Any:
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        return result.json() if result.stdout.strip() else None

    def held() -> set[str]:
        return {p["filename"] for p in ok("content", "list", "--repository", "foo")}

    with serve_projects(BEFORE, tmp_path) as upstream:
        ok("repository", "create", "--name", "foo")
        ok("remote", "create", "--name", "up", "--url", upstream.url, "--policy", "immediate")
        first = ok("repository", "sync", "--name", "foo", "--remote", "up")["report"]
        before = held()
        assert len(before) == 7 and first["status_changes"] == {}
        refused = cli("repository", "diff", "--name", "foo", "--against-remote", "--exit-code")
        assert (refused.exit_code, refused.stdout) == (1, "") and refused.stderr.startswith("Error: remote: ")
        same = cli("repository", "diff", "--name", "foo", "--against-remote", "--remote", "up", "--exit-code")
        assert same.exit_code == 0 and same.json()["summary"] == "gone upstream: 0 projects, 0 files"

        upstream.rebuild(AFTER)
        second = ok("repository", "sync", "--name", "foo", "--remote", "up")["report"]
        assert second["status_changes"] == {
            "mf-arch": "active -> archived (moved to mf-arch2)",
            "mf-quar": "active -> quarantined (malware)",
        }
        assert second["withdrawn"] == ["mf-quar"]
        assert second["gone_upstream"] == {
            "projects": ["mf-gone"],
            "files": {"mf-arch": ["mf_arch-1.0-py3-none-any.whl"]},
        }
        after = held()
        assert not any(map(_of("mf-quar"), after)), "quarantined: gone in additive mode"
        assert after == {f for f in before if not _of("mf-quar")(f)}, "additive: takedowns are kept"

        third = ok("repository", "sync", "--name", "foo", "--remote", "up")
        assert third["changed"] is False and third["report"]["status_changes"] == {}
        assert third["report"]["gone_upstream"]["projects"] == ["mf-gone"], "noticed again, still reported"

        diff = ok("repository", "diff", "--name", "foo", "--against-remote", "--remote", "up")
        assert diff["gone_upstream"] == second["gone_upstream"]
        differs = cli("repository", "diff", "--name", "foo", "--against-remote", "--remote=up", "--exit-code")
        assert (differs.exit_code, differs.json(), differs.stderr) == (1, diff, ""), "as git diff --exit-code"
        assert ok("repository", "show", "--name", "foo")["latest_version_href"].endswith("/2/")
        assert held() == after, "diff commits nothing"

    from mirrorflow.flows.cli_serve import app_from_settings
    from mirrorflow.server.threaded import serve_in_thread

    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as client:
        archived = client.get("/foo/simple/mf-arch/", headers={"Accept": JSON_V1}).json()
        assert archived["meta"]["api-version"] == "1.4"
        assert archived["project-status"] == {"status": "archived", "reason": "moved to mf-arch2"}
        quarantined = client.get("/foo/simple/mf-quar/")
        assert quarantined.status_code == 200, quarantined.text
        assert '<meta name="pypi:project-status" content="quarantined">' in quarantined.text
        assert "<a " not in quarantined.text, "served as the upstream does: no file"
        pinned = client.get("/foo/versions/1/simple/mf-quar/", headers={"Accept": JSON_V1}).json()
        assert "project-status" not in pinned and pinned["files"], "version 1 keeps what it held"

        installed = _pip(base, "mf-arch", target=str(tmp_path / "a"))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert {p.name for p in (tmp_path / "a").glob("*.dist-info")} == {"mf_arch-1.1.dist-info"}
    assert json.dumps(second)  # the report is JSON as printed


# -- the catalog, both backends: statuses per version, quarantine removal in additive mode ----------


def test_the_catalog_keeps_statuses_per_version_and_withdraws_in_additive_mode(catalog) -> None:
    repo = catalog.create_repository("foo")
    writer, serving = ContentWriter(catalog), ServingCatalog(catalog)

    def commit(packages: list[NewPackage], **kwargs: Any):
        return commit_packages(writer, "foo", packages, mirror=False, **kwargs)

    assert commit([new_package("a-1.0.tar.gz"), new_package("q-1.0.tar.gz")]).number == 1
    changed = commit(
        [], status_changes={"a": ("archived", "done"), "q": ("quarantined", "malware")}, withdrawn=["q"]
    )
    assert (changed.number, changed.added, changed.removed) == (2, 0, 1), "additive, yet q's file left"
    assert latest_statuses(catalog, repo.id, ["a", "q", "x"]) == {
        "a": ("archived", "done"),
        "q": ("quarantined", "malware"),
    }
    assert commit([], status_changes={}, withdrawn=[]) is None, "nothing changed: no version"
    status_only = commit([], status_changes={"a": None})
    assert (status_only.number, status_only.added, status_only.removed) == (3, 0, 0), "a status alone"
    assert serving.project_statuses(repo.id, 1) == {}
    assert serving.project_statuses(repo.id, 2) == {
        "a": ("archived", "done"),
        "q": ("quarantined", "malware"),
    }
    assert serving.project_statuses(repo.id, 3) == {"q": ("quarantined", "malware")}
    assert serving.project_status(repo.id, 2, "a") == ("archived", "done")
    assert serving.project_status(repo.id, 3, "a") is None
    assert latest_filenames(catalog, repo.id, ["a", "q"]) == {"a": {"a-1.0.tar.gz"}}

    sync_id = str(uuid.uuid4())  # a mirror sync that finds q gone from the upstream
    SerialMemory(catalog).touch(sync_id, repo.id, [Touched("q", "gone")])
    gone = writer.commit_version(repository="foo", sync_id=sync_id, mirror=True, scope="touched")
    assert gone is not None and serving.project_statuses(repo.id, gone.number) == {}
    assert latest_filenames(catalog, repo.id, ["a"]) == {"a": {"a-1.0.tar.gz"}}
