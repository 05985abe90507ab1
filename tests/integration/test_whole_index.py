"""A whole-index sync (no includes) of a fixture index with thousands of projects.

The listing is read once, name-only excludes are applied before any project page is fetched,
and excludes with a specifier drop only the versions they match.
"""

from __future__ import annotations

import hashlib

import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject

PROJECTS = 2000


def _projects() -> list[FixtureProject]:
    projects = []
    for n in range(PROJECTS):
        name = f"proj-{n:04d}"
        files = [
            FixtureFile(
                f"{name}-{version}.tar.gz", f"{name} {version}".encode()
            )  # bytes: on_demand fetches none
            for version in ("1.0", "1.1")
        ]
        projects.append(FixtureProject(name, files))
    return projects


@pytest.mark.slow
def test_a_whole_index_sync_lists_once_and_excludes_before_fetching(cli, tmp_path):
    with serve_projects(_projects(), tmp_path) as index:
        assert cli("repository", "create", "--name", "all").exit_code == 0
        created = cli(
            "remote", "create", "--name", "everything", "--url", index.url,
            "--excludes", '["proj-0007", "Proj_0123", "proj-1500>=1.1"]',
        )  # fmt: skip
        assert created.exit_code == 0, created.stderr
        synced = cli("repository", "sync", "--name", "all", "--remote", "everything")
        assert synced.exit_code == 0, synced.stderr
        version = synced.json()
        hits = dict(index.hits)

    expected = (PROJECTS - 2) * 2 - 1  # two projects excluded by name, one version of another
    assert version["number"] == 1
    assert version["content_summary"]["present"]["python.python"]["count"] == expected
    assert version["report"]["projects"] == PROJECTS - 2
    assert hits.get("/simple/") == 1, "the listing is read once"
    page_hits = {path for path in hits if path.startswith("/simple/") and path != "/simple/"}
    assert len(page_hits) == PROJECTS - 2
    assert "/simple/proj-0007/" not in page_hits and "/simple/proj-0123/" not in page_hits, (
        "name-only excludes are applied before fetching"
    )
    assert not any(path.startswith("/files/") for path in hits), "on_demand downloads nothing"

    packages = cli("content", "list", "--repository", "all").json()
    assert len(packages) == expected
    versions_1500 = sorted(p["version"] for p in packages if p["name"] == "proj-1500")
    assert versions_1500 == ["1.0"]
    digest = hashlib.sha256(b"proj-0042 1.1").hexdigest()
    assert any(p["sha256"] == digest for p in packages)
