"""A mirror keeps what the upstream lists: a whole-index sync of an index with legacy and odd names holds
every file the index lists (``mirrorflow.tasks.filenames`` reads a name packaging refuses knowing its project)."""

from __future__ import annotations

import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_legacy, make_sdist, make_wheel

SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)


def _legacy(filename: str) -> FixtureFile:
    return FixtureFile(filename, make_legacy(filename))


def _odd_projects() -> list[FixtureProject]:
    sdist_name, sdist = make_sdist("oddity", "1.0")
    wheel_name, wheel = make_wheel(
        "Drift_Core", "1.0.0", python_tag="cp36", abi_tag="cp36m", platform_tag="win_amd64"
    )
    return [
        FixtureProject(
            "oddity",
            [
                FixtureFile(sdist_name, sdist),
                _legacy("oddity-1.0-py2.7-macosx10.6.dmg"),  # bdist_dmg's usual name
                _legacy("oddity-1.0-beta.tar.gz"),  # a dash inside the version
                _legacy("oddity-1.1.dev-r123.zip"),  # an svn revision after a dev release
                _legacy("oddity_1.2.tar.gz"),  # underscore between name and version
                _legacy("oddity-1.0.win32-py2.7.exe"),
                _legacy("oddity-1.0-py2.7.egg"),
            ],
        ),
        # The wheel's project part as an old bdist_wheel wrote it: not normalized.
        FixtureProject("Drift-Core", [FixtureFile(wheel_name.replace("Drift_Core", "Drift__Core"), wheel)]),
    ]


@SQLITE_ONLY
def test_a_whole_index_sync_keeps_every_safe_file_the_index_lists(cli, tmp_path) -> None:
    projects = _odd_projects()
    listed = sorted(file.filename for project in projects for file in project.files)
    with serve_projects(projects, tmp_path) as index:
        assert cli("repository", "create", "--name", "all").exit_code == 0
        assert cli("remote", "create", "--name", "all", "--url", index.url).exit_code == 0
        result = cli("repository", "sync", "--name", "all", "--remote", "all")
    assert result.exit_code == 0, result.stderr
    report = result.json()["report"]
    assert report["skipped"] == {}
    # Read knowing the project: the beta and r123 versions, the underscore sdist and the wheel.
    assert report["legacy_filenames"] == 4
    content = cli("content", "list", "--repository", "all").json()
    assert sorted(package["filename"] for package in content) == listed
    versions = {package["filename"]: package["version"] for package in content}
    assert versions["oddity-1.0-beta.tar.gz"] == "1.0b0"
    assert versions["oddity-1.1.dev-r123.zip"] == "1.1.dev0"
    assert versions["Drift__Core-1.0.0-cp36-cp36m-win_amd64.whl"] == "1.0.0"
