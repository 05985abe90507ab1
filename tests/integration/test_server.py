"""The simple-index server over loopback: pages, negotiation, redirects, 404s, pinned versions, files.

Each test syncs the seed fixture index into a repository with the real sync (through the CLI),
then starts the real app with uvicorn on a loopback port, on both backend pairs.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support_content import new_package

from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.server.files import FileServer
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.records import ServedFile
from mirrorflow.tasks.index_client import IndexClient

DEMO = '["mf-demo-app", "mf-demo-lib"]'


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def _sync(cli, url: str, *, policy: str, includes: str = DEMO, repo: str = "foo", remote: str = "up") -> None:
    cli("repository", "create", "--name", repo)
    cli("remote", "create", "--name", remote, "--url", url, "--includes", includes, "--policy", policy)
    _ok(cli("repository", "sync", "--name", repo, "--remote", remote))


@pytest.fixture
def server():
    """Start the server built from the test's settings; yields its base URL and an httpx client."""
    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def test_project_page_json_has_every_field(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="immediate")
    response = server.get("/foo/simple/mf-demo-lib/", headers={"Accept": JSON_V1})
    assert response.status_code == 200 and response.headers["content-type"] == JSON_V1
    page = response.json()
    assert page["name"] == "mf-demo-lib" and page["versions"] == ["1.0", "2.0", "2.1"]
    assert page["meta"]["api-version"] == "1.3"
    assert page["meta"]["_last-serial"] == int(response.headers["X-PyPI-Last-Serial"]) > 0
    files = {f["filename"]: f for f in page["files"]}
    wheel = files["mf_demo_lib-2.1-py3-none-any.whl"]
    assert wheel["yanked"] == "broken" and wheel["requires-python"] == ">=3.8"
    assert wheel["upload-time"].startswith("2024-04-09T12:00:00") and wheel["size"] > 0
    assert set(wheel["core-metadata"]) == {"sha256"} and wheel["dist-info-metadata"] == wheel["core-metadata"]
    assert "yanked" not in files["mf_demo_lib-2.0-py3-none-any.whl"]
    body = server.get(wheel["url"]).content
    assert hashlib.sha256(body).hexdigest() == wheel["hashes"]["sha256"] and len(body) == wheel["size"]


def test_html_is_the_default_and_escapes_requires_python(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="on_demand")
    response = server.get("/foo/simple/mf-demo-lib/")
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert 'data-requires-python="&gt;=3.8"' in text and 'data-yanked="broken"' in text
    assert "#sha256=" in text and 'data-core-metadata="sha256=' in text
    assert '<meta name="pypi:repository-version" content="1.3">' in text
    listing = server.get("/foo/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
    assert [p["name"] for p in listing["projects"]] == ["mf-demo-app", "mf-demo-lib"]
    html = server.get("/foo/simple/", headers={"Accept": "text/html;q=0.5, */*;q=0.1"})
    assert '<a href="mf-demo-app/">mf-demo-app</a>' in html.text


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        pytest.param("/foo/simple/MF_Demo.Lib/", 301, "/foo/simple/mf-demo-lib/", id="redirect-normalized"),
        pytest.param("/foo/simple/mf-demo-lib", 301, "/foo/simple/mf-demo-lib/", id="redirect-slash"),
        pytest.param(
            "/foo/versions/1/simple/Mf_Demo_Lib/",
            301,
            "/foo/versions/1/simple/mf-demo-lib/",
            id="pinned-redirect",
        ),
        pytest.param("/nope/simple/", 404, None, id="unknown-repository"),
        pytest.param("/foo/simple/django/", 404, None, id="unknown-project"),
        pytest.param("/foo/versions/7/simple/", 404, None, id="unknown-version"),
        pytest.param("/foo/files/" + "0" * 64 + "/x-1.0.tar.gz", 404, None, id="unknown-file"),
    ],
)
def test_redirects_and_not_found(cli, seed_index, server, path, status, location):
    _sync(cli, seed_index.url, policy="on_demand")
    response = server.get(path)
    assert response.status_code == status
    if location is not None:
        assert response.headers["location"] == location
    else:
        assert len(response.text) < 200 and response.text[-1] == "\n"


def test_etag_gives_304_and_accept_without_match_is_406(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="on_demand")
    first = server.get("/foo/simple/mf-demo-app/")
    again = server.get("/foo/simple/mf-demo-app/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    as_json = server.get(
        "/foo/simple/mf-demo-app/", headers={"If-None-Match": first.headers["etag"], "Accept": JSON_V1}
    )
    assert as_json.status_code == 200, "the ETag depends on the format"
    assert server.get("/foo/simple/", headers={"Accept": "application/json"}).status_code == 406


def test_a_pinned_version_keeps_what_it_held(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="on_demand", includes='["mf-demo-lib<2"]')
    _ok(cli("remote", "update", "--name", "up", "--includes", '["mf-demo-lib>=2"]'))
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "up", "--mirror"))
    pinned = server.get("/foo/versions/1/simple/mf-demo-lib/", headers={"Accept": JSON_V1}).json()
    latest = server.get("/foo/simple/mf-demo-lib/", headers={"Accept": JSON_V1}).json()
    assert pinned["versions"] == ["1.0"] and latest["versions"] == ["2.0", "2.1"]
    old_file = pinned["files"][0]["url"]
    assert server.get(old_file).status_code == 200, "files of older versions stay downloadable"


def test_on_demand_downloads_once_under_concurrency_and_stores_verified(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="on_demand")
    page = server.get("/foo/simple/mf-demo-app/", headers={"Accept": JSON_V1}).json()
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    # The wheel's path on the upstream, from the upstream's own page: an on_demand sync fetched no
    # file, and earlier tests may or may not have (the seed index and its counters are per session).
    upstream_page = httpx.get(f"{seed_index.url}mf-demo-app/", headers={"Accept": JSON_V1}).json()
    upstream_url = next(f["url"] for f in upstream_page["files"] if f["filename"] == wheel["filename"])
    upstream_path = httpx.URL(seed_index.url).join(upstream_url).path
    before = seed_index.hits[upstream_path]  # a Counter: 0 when no test fetched it yet
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: server.get(wheel["url"]).content, range(8)))
    assert {hashlib.sha256(b).hexdigest() for b in bodies} == {wheel["hashes"]["sha256"]}
    assert seed_index.hits[upstream_path] - before == 1, "one upstream download for 8 requests"
    settings = Settings()
    writer = ContentWriter(catalog_for(settings))
    stored = {p.filename: p for p in writer.content_at("foo")}[wheel["filename"]]
    assert stored.artifact_sha256 == wheel["hashes"]["sha256"]
    assert store_for(settings).stat(stored.sha256) == wheel["size"]
    again = server.get(wheel["url"])
    assert again.headers["x-mirrorflow-source"] == "store"
    assert seed_index.hits[upstream_path] - before == 1


class _PausingStore(FileSystemStore):
    """Holds the first ``exists`` call (a request's first look at the store) until told to go on."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.looked, self.go_on, self._held = threading.Event(), threading.Event(), False

    def exists(self, sha256: str) -> bool:
        found = super().exists(sha256)
        if not self._held:
            self._held = True
            self.looked.set()
            assert self.go_on.wait(10), "the test never let the first request go on"
        return found


class _Upstream:
    """``mirrorflow.server.upstream.Upstreams`` over a mock transport that serves one body and counts requests."""

    def __init__(self, body: bytes) -> None:
        self.requests = 0

        def answer(request: httpx.Request) -> httpx.Response:
            self.requests += 1
            return httpx.Response(200, content=body)

        self.client = httpx.Client(transport=httpx.MockTransport(answer))

    def remote(self, name):
        return None

    def fallback(self) -> IndexClient:
        return IndexClient("http://upstream.test/simple/", client=self.client)


class _Serving:
    def link_artifact(self, stored) -> None:
        pass


def test_a_request_that_looked_before_another_flight_landed_does_not_download_again(tmp_path):
    """The single-flight race: request A finds the store empty, then request B downloads, stores
    and lands its flight before A reaches the flight table. A must serve B's copy, not download."""
    body = b"wheel bytes" * 1000
    filename = "a-1.0-py3-none-any.whl"
    package = new_package(
        filename, content=body, size=len(body), url=f"http://upstream.test/files/{filename}"
    )
    file = ServedFile(1, package, artifact_sha256=None, remote=None, core_metadata_sha256=None)
    store, upstream = _PausingStore(tmp_path / "store"), _Upstream(body)
    files = FileServer(store, _Serving(), upstream, redirect_to_store=False)  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as pool, upstream.client:
        first = pool.submit(files.prepare, file)
        assert store.looked.wait(10)  # A saw an empty store and is held there
        second = files.prepare(file)  # B: leads a flight, downloads, stores, lands
        assert second.source == "fetch" and b"".join(second.chunks or ()) == body
        store.go_on.set()
        delivery = first.result(10)
    assert delivery.source == "store" and b"".join(delivery.chunks or ()) == body
    assert upstream.requests == 1, "one upstream download for two requests"


def test_streamed_is_proxied_and_never_stored(cli, seed_index, server):
    _sync(cli, seed_index.url, policy="streamed")
    page = server.get("/foo/simple/mf-demo-lib/", headers={"Accept": JSON_V1}).json()
    sdist = next(f for f in page["files"] if f["filename"].endswith(".tar.gz"))
    response = server.get(sdist["url"])
    assert response.headers["x-mirrorflow-source"] == "stream"
    assert hashlib.sha256(response.content).hexdigest() == sdist["hashes"]["sha256"]
    assert not store_for(Settings()).exists(sdist["hashes"]["sha256"])


def test_metadata_comes_from_the_upstream_and_is_stored_once(cli, seed_index, server, access_lines):
    _sync(cli, seed_index.url, policy="on_demand")
    page = server.get("/foo/simple/mf-demo-app/", headers={"Accept": JSON_V1}).json()
    wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
    response = server.get(wheel["url"] + ".metadata")
    assert response.status_code == 200 and b"Requires-Dist: mf-demo-lib>=1.0" in response.content
    assert hashlib.sha256(response.content).hexdigest() == wheel["core-metadata"]["sha256"]
    assert not store_for(Settings()).exists(wheel["hashes"]["sha256"]), "the wheel itself is not fetched"
    upstream = next(p for p in list(seed_index.hits) if p.endswith(wheel["filename"] + ".metadata"))
    before = seed_index.hits[upstream]
    assert server.get(wheel["url"] + ".metadata").content == response.content
    assert seed_index.hits[upstream] == before, "served from the store the second time"
    assert any(".metadata" in line and " 200 " in line for line in access_lines())
    sdist = next(f for f in page["files"] if f["filename"].endswith(".tar.gz"))
    assert server.get(sdist["url"] + ".metadata").status_code == 404
