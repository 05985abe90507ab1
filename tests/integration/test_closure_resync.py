"""The dependency closure's resync (issue 19): an unchanged upstream costs no closure page and no
metadata read; a new release that asks for a new project brings it in.

The closure catalog is served with ETags (a matching If-None-Match answers 304), as the upstream
index serves its pages; the server counts every request and every 304 per path.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_wheel
from mirrorflow.fixtureindex.closure_catalog import CLOSURE_REMOTE, closure_projects

pytestmark = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)

#: Asked again on every sync: a 404 has no validator (``broken`` needs ``ghost``, on no index).
MISSING = "/simple/ghost/"


def _remote_args() -> list[str]:
    return [
        "--includes", json.dumps(CLOSURE_REMOTE["includes"]),
        "--python-versions", json.dumps(CLOSURE_REMOTE["python_versions"]),
        "--exclude-platforms", json.dumps(CLOSURE_REMOTE["exclude_platforms"]),
        "--include-dependencies",
    ]  # fmt: skip


def _whole_pages(upstream, since_hits: Counter[str], since_304: Counter[str]) -> Counter[str]:
    """Project pages sent whole (not 304) since the two snapshots, by path."""
    sent = Counter(
        {
            path: (n - since_hits[path]) - (upstream.not_modified[path] - since_304[path])
            for path, n in upstream.hits.items()
            if path.startswith("/simple/") and path not in ("/simple/", MISSING)
        }
    )
    return +sent  # drops the zeros


def _remembered() -> dict[tuple[str, str], datetime]:
    """The closure's page memory: when each (project, key) row was last used."""
    from sqlalchemy import select

    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.closure_pages import ClosurePageRow

    columns = (ClosurePageRow.project, ClosurePageRow.key, ClosurePageRow.updated)
    with catalog_for(Settings()).reading() as session:
        return {(project, key): updated for project, key, updated in session.execute(select(*columns))}


def _remember_a_page_no_longer_needed(repository: str, remote: str) -> None:
    """A row as a closure that needed ``gone-dep`` left it (no release of the index needs it now)."""
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.closure_pages import ClosurePages, RememberedPage

    catalog = catalog_for(Settings())
    page = {("gone-dep", "0" * 64): RememberedPage('"gone"', None, ())}
    ClosurePages(catalog).put_many(page, repository_id=catalog.get_repository(repository).id, remote=remote)


def _sync(cli) -> dict:
    synced = cli("repository", "sync", "--name", "foo", "--remote", "up")
    assert synced.exit_code == 0, synced.stderr
    return json.loads(synced.stdout)


def test_an_unchanged_resync_fetches_no_closure_page_and_a_new_release_brings_its_dependency(cli, tmp_path):
    with serve_projects(closure_projects(), tmp_path, ranges=True, etags=True) as upstream:
        assert cli("repository", "create", "--name", "foo").exit_code == 0
        created = cli("remote", "create", "--name", "up", "--url", upstream.url, *_remote_args())
        assert created.exit_code == 0, created.stderr
        first = _sync(cli)
        remembered = _remembered()
        first_pages = _whole_pages(upstream, Counter(), Counter())
        hits, not_modified = upstream.hits.copy(), upstream.not_modified.copy()

        again = _sync(cli)
        assert _remembered().keys() == remembered.keys(), "the pages a 304 confirmed are kept"
        resync_pages = _whole_pages(upstream, hits, not_modified)
        resync_304 = sum((upstream.not_modified - not_modified).values())
        # The first sync's 26 whole pages (closure rounds and the sync proper), asked again: 25 are 304.
        assert resync_304 == sum(first_pages.values()) - 1
        file_reads = sum(n - hits[p] for p, n in upstream.hits.items() if p.startswith("/files/"))
        assert again["report"]["closure"] == first["report"]["closure"], "the same closure"
        assert again["changed"] is False
        # Only the page whose outcome may differ next time is fetched again: sd-dynamic's release
        # has unknown dependencies (its sdist's Requires-Dist is dynamic), which is never remembered.
        assert resync_pages == Counter({"/simple/sd-dynamic/": 1})
        assert file_reads == 0, "no metadata read: the remembered outcomes need none"
        assert sum(first_pages.values()) >= 2 * len(first["report"]["closure"]["added"])

        # A new release that needs a project the closure did not have.
        new_dep = FixtureProject("new-dep", [FixtureFile(*make_wheel("new-dep", "1.0"))])
        webapp_3 = FixtureFile(*make_wheel("webapp", "3.0", requires_dist=["asgi-ref>=3.8", "new-dep>=1"]))
        projects = [
            FixtureProject(p.name, [*p.files, webapp_3]) if p.name == "webapp" else p
            for p in closure_projects()
        ]
        upstream.rebuild([*projects, new_dep])
        _remember_a_page_no_longer_needed("foo", "up")
        started = datetime.now(UTC)
        changed = _sync(cli)
        kept = _remembered()
        assert kept and all(updated >= started for updated in kept.values()), "what it did not use went"
        assert any(project == "new-dep" for project, _ in kept)
        assert not any(project == "gone-dep" for project, _ in kept)
    added = {item["project"]: item["chain"] for item in changed["report"]["closure"]["added"]}
    assert added["new-dep"] == "new-dep>=1 <- webapp 3.0"
    assert set(added) - {"new-dep"} == {i["project"] for i in first["report"]["closure"]["added"]}
    listed = cli("content", "list", "--repository", "foo")
    assert {(p["name"], p["version"]) for p in json.loads(listed.stdout)} >= {
        ("new-dep", "1.0"),
        ("webapp", "3.0"),
    }
