"""Fetch-through failures, pull-through caching, and the pure negotiation rules of the server."""

from __future__ import annotations

import httpx
import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_wheel
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.server.pages import HTML, HTML_V1, JSON_V1, etag_matches, negotiate
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.serving import ServingCatalog


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param(None, HTML, id="no-header-html"),
        pytest.param("*/*", HTML, id="wildcard-html"),
        pytest.param("text/*", HTML, id="text-wildcard"),
        pytest.param(f"{JSON_V1}, {HTML_V1};q=0.1, text/html;q=0.01", JSON_V1, id="pip"),
        pytest.param(f"{JSON_V1};q=0.5, text/html", HTML, id="q-decides"),
        pytest.param("application/vnd.pypi.simple.latest+html", HTML_V1, id="latest-html"),
        pytest.param(f"{JSON_V1};q=0, */*;q=0.1", HTML, id="q0-refuses"),
        pytest.param(f"text/html;q=0, {HTML_V1};q=0, {JSON_V1};q=0", None, id="all-refused"),
        pytest.param("application/json", None, id="unknown"),
        pytest.param(f"{JSON_V1};q=bogus, text/html;q=0.2", HTML, id="bad-q-is-zero"),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) == expected


def test_etag_matches_lists_weak_and_star():
    assert etag_matches('"a", W/"b"', '"b"') and etag_matches("*", '"x"')
    assert not etag_matches('"a"', '"b"') and not etag_matches(None, '"b"')


def _tiny() -> list[FixtureProject]:
    name, content = make_wheel("mf-tiny", "1.0")
    return [FixtureProject("mf-tiny", [FixtureFile(name, content)])]


def test_a_digest_mismatch_stores_nothing_and_answers_502(cli, tmp_path):
    with serve_projects(_tiny(), tmp_path) as upstream:
        cli("repository", "create", "--name", "foo")
        cli("remote", "create", "--name", "up", "--url", upstream.url, "--includes", '["mf-tiny"]')
        _ok(cli("repository", "sync", "--name", "foo", "--remote", "up"))
        on_disk = next(upstream.root.glob("files/*/mf_tiny-1.0-py3-none-any.whl"))
        on_disk.write_bytes(bytes(b ^ 0xFF for b in on_disk.read_bytes()))  # same size, other bytes
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as client:
            page = client.get("/foo/simple/mf-tiny/", headers={"Accept": JSON_V1}).json()
            url = page["files"][0]["url"]
            with pytest.raises(httpx.RemoteProtocolError):
                client.get(url)  # the first client: the body stops short of Content-Length
            again = client.get(url)
            assert (
                again.status_code == 502 and "do not match" in again.text and "nothing stored" in again.text
            )
    assert not store_for(Settings()).exists(page["files"][0]["hashes"]["sha256"])


def test_pull_through_serves_and_caches_projects_the_repository_lacks(cli, tmp_path):
    projects = [p for p in seed_projects() if p.name.startswith("mf-demo") or p.name == "shelf-reader"]
    with serve_projects(projects, tmp_path) as upstream:
        cli("repository", "create", "--name", "foo")
        cli(
            "remote", "create", "--name", "pt", "--url", upstream.url, "--policy", "on_demand",
            "--excludes", '["shelf-reader", "mf-demo-lib==1.0"]',
        )  # fmt: skip
        shown = _ok(cli("repository", "pull-through", "--name", "foo", "--remote", "pt"))
        assert shown["pull_through"] == "pt"
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as client:
            page = client.get("/foo/simple/mf-demo-lib/", headers={"Accept": JSON_V1})
            assert page.status_code == 200
            assert page.json()["versions"] == ["2.0", "2.1"], "the remote's excludes apply"
            assert client.get("/foo/simple/shelf-reader/").status_code == 404, "excluded project"
            hits = upstream.hits["/simple/mf-demo-lib/"]
            client.get("/foo/simple/mf-demo-lib/")
            assert upstream.hits["/simple/mf-demo-lib/"] == hits, "cached: not fetched again"
            wheel = next(f for f in page.json()["files"] if f["filename"].endswith("2.0-py3-none-any.whl"))
            assert client.get(wheel["url"]).status_code == 200
            listing = client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()
            assert [p["name"] for p in listing["projects"]] == ["mf-demo-lib"]
            assert client.get("/foo/versions/0/simple/mf-demo-lib/").status_code == 404, "pinned: no pull"
    settings = Settings()
    assert store_for(settings).exists(wheel["hashes"]["sha256"])
    catalog = catalog_for(settings)
    assert catalog.get_repository("foo").latest_version == 0, "no repository version per request"
    assert (
        len(ServingCatalog(catalog).pull_through_files(catalog.get_repository("foo").id, "mf-demo-lib")[0])
        == 3
    )


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_pull_through_leaves_out_what_a_blocking_advisory_names_page_listing_and_file(cli, tmp_path):
    from support_osv import osv, osv_zip, since

    projects = [p for p in seed_projects() if p.name in ("mf-demo-lib", "mf-demo-app")]
    with serve_projects(projects, tmp_path) as upstream:
        cli("repository", "create", "--name", "foo")
        cli("remote", "create", "--name", "pt", "--url", upstream.url, "--policy", "on_demand")
        _ok(cli("repository", "pull-through", "--name", "foo", "--remote", "pt"))
        advisories = osv_zip(
            tmp_path / "all.zip",
            osv("MAL-2024-1", "mf-demo-lib", versions=["2.1"]),
            osv("MAL-2024-2", "mf-demo-app", ranges=since("0")),
        )
        assert _ok(cli("advisories", "import", str(advisories)))["added"] == 2
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as client:
            page = client.get("/foo/simple/mf-demo-lib/", headers={"Accept": JSON_V1})
            assert page.status_code == 200, page.text
            assert page.json()["versions"] == ["1.0", "2.0"], "2.1 is left out of the pulled page"
            app = client.get("/foo/simple/mf-demo-app/")
            assert app.status_code == 404 and "blocked by advisory MAL-2024-2" in app.text
            listing = client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()
            assert [p["name"] for p in listing["projects"]] == ["mf-demo-lib"]
            wheel = next(f for f in page.json()["files"] if f["filename"].endswith("2.0-py3-none-any.whl"))
            blocked = wheel["url"].replace("2.0-py3", "2.1-py3").split("/files/")[0] + "/files/"
            pulled = ServingCatalog(catalog_for(Settings())).pull_through_files(
                catalog_for(Settings()).get_repository("foo").id, "mf-demo-lib"
            )[0]
            (held,) = [f.package for f in pulled if f.package.filename == "mf_demo_lib-2.1-py3-none-any.whl"]
            refused = client.get(f"{blocked}{held.sha256}/{held.filename}")
            assert refused.status_code == 404 and "MAL-2024-1" in refused.text, refused.text


def test_pull_through_command_rejects_unknown_names(cli):
    cli("repository", "create", "--name", "foo")
    result = cli("repository", "pull-through", "--name", "foo", "--remote", "nope")
    assert result.exit_code == 1 and "remote 'nope' does not exist" in result.stderr
    detached = _ok(cli("repository", "pull-through", "--name", "foo", "--remote", ""))
    assert detached["pull_through"] is None
