"""Convergence: a whole-index sync over a partly broken upstream commits what it can, and converges.

``failure_policy`` (``mirrorflow.tasks.outcome``): a whole-index remote commits without its failed projects
(``auto`` is ``partial`` there), each keeping exactly its previous content and retried by the next
sync; bytes that fail their digest twice are quarantined. More than ``max_failed_percent`` failing
is still a failure with no version, as is an upstream that is down.
"""

from __future__ import annotations

import httpx
import pytest
from packaging.utils import canonicalize_name

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index
from mirrorflow.fixtureindex.faults import Fault, Rule, serve_faulty

SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
BROKEN_PAGES = ("/simple/scipy/", "/simple/pip-tools/")
BAD_FILE = "/files/*/Django-2.2.28-py3-none-any.whl"


@pytest.fixture
def faulty(seed_index):
    with serve_faulty(seed_index.root, []) as running:
        yield running


def _setup(cli, url: str, *options: str) -> None:
    assert cli("repository", "create", "--name", "all").exit_code == 0
    created = cli(
        "remote",
        "create",
        "--name",
        "up",
        "--url",
        url,
        "--policy",
        "immediate",
        "--max-retries",
        "1",
        *options,
    )
    assert created.exit_code == 0, created.stderr


def _sync(cli, *options: str):
    return cli("repository", "sync", "--name", "all", "--remote", "up", *options)


def _content(cli) -> dict[str, str]:
    listed = cli("content", "list", "--repository", "all")
    assert listed.exit_code == 0, listed.stderr
    return {package["filename"]: package["sha256"] for package in listed.json()}


def _listed(seed_index) -> dict[str, str]:
    """filename -> sha256 of every file the index lists."""
    accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    listing = httpx.get(seed_index.url, headers=accept).json()
    files = {}
    for project in listing["projects"]:
        page = httpx.get(f"{seed_index.url}{canonicalize_name(project['name'])}/", headers=accept).json()
        files.update({file["filename"]: file["hashes"]["sha256"] for file in page["files"]})
    return files


def _broken() -> list[Rule]:
    return [Rule(page, Fault.status(503)) for page in BROKEN_PAGES] + [Rule(BAD_FILE, Fault.corrupt())]


@SQLITE_ONLY
def test_a_whole_index_sync_commits_what_it_can_then_converges(cli, faulty, seed_index) -> None:
    expected = _listed(seed_index)
    faulty.rules = _broken()
    _setup(cli, faulty.url, "--max-failed-percent", "50")
    first = _sync(cli)
    assert first.exit_code == 3, first.stderr
    report = first.json()["report"]
    assert sorted(report["failures"]) == ["pip-tools", "scipy"]
    assert list(report["unverifiable"]) == ["Django-2.2.28-py3-none-any.whl"]
    assert sorted(report["stale"]) == ["django", "pip-tools", "scipy"]
    (line,) = [line for line in first.stderr.splitlines() if line.startswith("Error:")]
    assert "committed version 1 without 3 project(s) or file(s)" in line and "retries them" in line
    partial = _content(cli)
    shown = cli("repository", "version", "show", "--repository", "all").json()
    assert sorted(shown["stale"]) == ["Django-2.2.28-py3-none-any.whl", "pip-tools", "scipy"]
    missing = set(expected) - set(partial)
    assert "Django-2.2.28-py3-none-any.whl" in missing
    assert all(
        name.lower().startswith(("scipy", "pip_tools", "pip-tools", "django-2.2.28-py3")) for name in missing
    )
    assert all(expected[name] == digest for name, digest in partial.items()), "every good file, verified"

    # Still broken: the rerun fetches the stale projects again (the rest is unchanged) and, judged
    # against every project it covers, commits what it can once more, instead of failing.
    again = _sync(cli)
    assert again.exit_code == 3, again.stderr
    assert again.json()["report"]["incremental"]["unchanged"] >= 3
    assert _content(cli) == partial

    faulty.rules = []  # the faults stop: the next run is complete
    second = _sync(cli)
    assert second.exit_code == 0, second.stderr
    assert second.json()["number"] == 2
    assert _content(cli) == expected


@SQLITE_ONLY
def test_a_failed_project_keeps_exactly_its_previous_content_in_mirror_mode(cli, faulty) -> None:
    _setup(cli, faulty.url, "--max-failed-percent", "50")
    assert _sync(cli).exit_code == 0
    before = _content(cli)  # then a mirror sync: a full re-evaluation that removes what was not staged
    faulty.rules = _broken()
    result = _sync(cli, "--mirror")
    assert result.exit_code == 3, result.stderr
    assert result.json()["changed"] is False and result.json()["number"] == 1
    assert _content(cli) == before, "nothing of a failed or quarantined project was removed"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("options", "rules"),
    [
        pytest.param((), _broken(), id="over-the-default-5-percent"),
        pytest.param(("--failure-policy", "all_or_nothing"), _broken()[:1], id="all-or-nothing"),
        pytest.param(
            ("--max-failed-percent", "50"), [Rule("/simple/*/", Fault.status(503))], id="upstream-down"
        ),
    ],
)
def test_too_many_failures_or_all_or_nothing_still_fail_with_no_version(cli, faulty, options, rules) -> None:
    faulty.rules = rules
    _setup(cli, faulty.url, *options)
    result = _sync(cli)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: sync of repository 'all' failed")
    shown = cli("repository", "show", "--name", "all").json()
    assert shown["latest_version"] == 0


# -- at scale: 1,000 files, 20% resets throughout, 0.4% permanently bad files -----------------------

SCALE_PROJECTS, FILES_EACH = 250, 4


def _many_projects() -> list[FixtureProject]:
    """250 projects of 4 small sdists each (1,000 files), every file's bytes its own."""
    projects = []
    for p in range(SCALE_PROJECTS):
        name = f"scale-{p:03d}"
        files = [
            FixtureFile(f"{name}-1.{v}.tar.gz", f"{name} 1.{v} fixture sdist bytes\n".encode() * 8)
            for v in range(FILES_EACH)
        ]
        projects.append(FixtureProject(name, files))
    return projects


@SQLITE_ONLY
@pytest.mark.slow
def test_at_scale_20_percent_resets_and_bad_files_converge(cli, tmp_path) -> None:
    projects = _many_projects()
    root = tmp_path / "index"
    build_index(projects, root)
    bad = [f"/files/*/scale-{p:03d}-1.0.tar.gz" for p in (7, 101, 202, 249)]  # 4 of 1,000 files
    flaky = Rule("/files/*", Fault.reset(), share=0.2)  # every attempt at any file: a 1-in-5 reset
    listed = {f.filename for project in projects for f in project.files}
    with serve_faulty(root, [*(Rule(path, Fault.corrupt()) for path in bad), flaky]) as index:
        _setup(cli, index.url, "--max-retries", "2")  # 3 attempts: about 1 file in 125 fails a run
        stale_before: set[str] | None = None
        for _ in range(2):  # the first run, and a rerun under the same faults
            result = _sync(cli)
            assert result.exit_code == 3, result.stderr
            report = result.json()["report"]
            for project in ("scale-007", "scale-101", "scale-202", "scale-249"):
                # Quarantined, or its project failed on a file that kept resetting this run.
                assert f"{project}-1.0.tar.gz" in report["unverifiable"] or project in report["failures"]
            stale = set(report["stale"])
            assert stale >= {"scale-007", "scale-101", "scale-202", "scale-249"}
            assert stale_before is None or stale <= stale_before, "each rerun shrinks the stale set"
            missing = listed - set(_content(cli))
            stuck = {name for name in missing if name.rsplit("-1.", 1)[0] in stale}
            assert missing == stuck, "every file of a project that is not stale is in the version"
            stale_before = stale
        index.rules = []  # the faults stop: the next run is complete
        final = _sync(cli)
    assert final.exit_code == 0, final.stderr
    assert set(_content(cli)) == listed
