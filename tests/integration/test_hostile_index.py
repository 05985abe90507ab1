"""An index that attacks its mirror: hostile filenames and URLs, lies about sizes, broken or huge pages.

Per-file problems are skipped with a reason counted in the run report and the rest of the sync
proceeds; a page that cannot be read fails its project (and so the sync: no new version) while
every other project is still fetched. Nothing is written outside the store; memory stays bounded by
``max_page_bytes``. See docs/reliability.md.
"""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index, make_sdist, make_wheel
from mirrorflow.fixtureindex.faults import Fault, Rule, serve_faulty
from mirrorflow.fixtureindex.server import serve_index
from mirrorflow.flows.runtime import catalog_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter
from mirrorflow.tasks.filters import FilterSpec, SkipReason, select_files
from mirrorflow.tasks.index_client import IndexClient, UpstreamError, build_http_client
from mirrorflow.tasks.simple import parse_project_json

JSON = "application/vnd.pypi.simple.v1+json"
SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory) -> Path:
    projects = [
        FixtureProject("evil", [FixtureFile(*make_sdist("evil", "1.0"))]),
        FixtureProject("calm", [FixtureFile(*make_sdist("calm", "1.0"))]),
        FixtureProject("other", [FixtureFile(*make_sdist("other", "1.0"))]),
        FixtureProject(
            "evil-files", [FixtureFile(*make_wheel("evil", "1.0"))]
        ),  # served by a second server: the "file host"
    ]
    root = tmp_path_factory.mktemp("hostile") / "index"
    build_index(projects, root)
    return root


def _entry(root: Path, project: str) -> dict:
    return json.loads((root / "simple" / project / "index.json").read_text())["files"][0]


def _hostile_page(root: Path, index_url: str, file_host_url: str) -> bytes:
    """evil's page: one good sdist, a good wheel on another host, and every kind of hostile entry."""
    good = _entry(root, "evil")
    good["url"] = index_url + "evil/" + good["url"]
    other = _entry(root, "other")
    other["url"] = index_url + "other/" + other["url"]
    wheel = _entry(root, "evil-files")
    wheel["url"] = file_host_url + "evil-files/" + wheel["url"]
    bad = [
        ("../evil-1.0.tar.gz", good["url"], {}),
        ("/tmp/evil-1.0.tar.gz", good["url"], {}),
        ("..\\evil-1.1.tar.gz", good["url"], {}),
        ("evil-1.2.tar.gz\x00.whl", good["url"], {}),
        ("evil-not a version.tar.gz", good["url"], {}),
        ("evil-" + "9" * 5000 + ".tar.gz", good["url"], {}),
        ("evil-2.0.tar.gz", "file:///etc/passwd", {}),
        ("evil-2.1.tar.gz", "ftp://127.0.0.1/evil-2.1.tar.gz", {}),
        ("evil-3.0.tar.gz", index_url + "../files/huge/evil-3.0.tar.gz", {"size": 10**12}),
        ("evil-4.0.tar.gz", good["url"] + "?4", {"requires-python": ">=3\x00"}),
    ]
    files = [good, wheel, other]
    files += [
        {"filename": f, "url": u, "hashes": {"sha256": good["hashes"]["sha256"]}, **x} for f, u, x in bad
    ]
    page = {"meta": {"api-version": "1.1"}, "name": "not-evil", "files": files}
    return json.dumps(page).encode()


EXPECTED_SKIPS = {
    "invalid-filename": 6,
    "wrong-project": 1,
    "unsafe-url": 2,
    "too-large": 1,
    "invalid-field": 1,
}


def _files(tree: Path) -> set[Path]:
    return {p for p in tree.rglob("*") if p.is_file()}


def test_hostile_entries_are_skipped_with_reasons_and_the_rest_is_synced(
    cli, hostile_root, tmp_path, monkeypatch, mirrorflow_env
):
    monkeypatch.setenv("MIRRORFLOW_MAX_FILE_BYTES", str(10 << 20))
    with serve_index(hostile_root) as file_host, serve_faulty(hostile_root, []) as index:
        index.rules = [
            Rule("/simple/evil/", Fault.replace(_hostile_page(hostile_root, index.url, file_host.url), JSON))
        ]
        before = _files(tmp_path)
        cli("repository", "create", "--name", "foo")
        cli(
            "remote", "create", "--name", "up", "--url", index.url, "--includes", '["evil", "calm"]',
            "--policy", "immediate",
        )  # fmt: skip
        result = cli("repository", "sync", "--name", "foo", "--remote", "up")
        assert result.exit_code == 0, result.stderr
        report = result.json()["report"]
        assert {k: v for k, v in report["skipped"].items() if k in EXPECTED_SKIPS} == EXPECTED_SKIPS
        assert not any("huge" in path or "passwd" in path for path in index.hits), (
            "refused before any request"
        )
        assert file_host.hits, "a file on another http host is fetched"
    packages = ContentWriter(catalog_for(Settings())).content_at("foo")
    assert sorted((p.normalized_name, p.filename) for p in packages) == [
        ("calm", "calm-1.0.tar.gz"),
        ("evil", "evil-1.0-py3-none-any.whl"),
        ("evil", "evil-1.0.tar.gz"),
    ], "filed under the project asked for, whatever name the page claims"
    new = _files(tmp_path) - before
    assert all(p.is_relative_to(mirrorflow_env.home) for p in new), "nothing written outside the store"
    assert not Path("/tmp/evil-1.0.tar.gz").exists()


def test_the_parser_keeps_a_hostile_filename_for_the_filters_to_skip():
    page = parse_project_json(
        json.dumps(
            {"name": "evil", "files": [{"filename": "../evil-1.0.tar.gz", "url": "x", "hashes": {}}]}
        ).encode(),
        page_url="https://index.example/simple/evil/",
    )
    selection = select_files(page.name, page.files, FilterSpec.build(), now=datetime.now(UTC))
    assert [s.reason for s in selection.skipped] == [SkipReason.INVALID_FILENAME]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        pytest.param(b'{"name": "evil", "files": [', JSON, "is not JSON", id="malformed-json"),
        pytest.param(b'{"name": "ev\xffil", "files": []}', JSON, "not UTF-8", id="non-utf8-json"),
        pytest.param(
            b'{"meta": {"api-version": "9.0"}, "name": "evil", "files": []}', JSON, "newer", id="api-9"
        ),
        pytest.param(
            b"<a href='x'>\xff\xfe</a>", "text/html; charset=utf-8", "does not decode", id="non-utf8-html"
        ),
        pytest.param(b"%PDF-1.4", "application/pdf", "is not a simple page", id="wrong-content-type"),
    ],
)
def test_an_unreadable_page_fails_its_project_while_the_others_are_fetched(
    cli, hostile_root, body, content_type, reason
):
    with serve_faulty(hostile_root, [Rule("/simple/evil/", Fault.replace(body, content_type))]) as index:
        cli("repository", "create", "--name", "foo")
        cli(
            "remote", "create", "--name", "up", "--url", index.url, "--includes", '["evil", "calm"]',
            "--policy", "immediate",
        )  # fmt: skip
        result = cli("repository", "sync", "--name", "foo", "--remote", "up")
        line = result.stderr.strip().splitlines()[-1]
        assert (
            result.exit_code == 1
            and "project 'evil':" in line
            and reason in line
            and "no new version" in line
        )
        assert "Rerun" not in line and "--excludes" in line, "a rerun cannot fix an unreadable page"
        assert any(path.endswith("calm-1.0.tar.gz") for path in index.hits), "the other project was fetched"
        assert catalog_for(Settings()).get_repository("foo").latest_version == 0
        index.rules = []
        assert cli("repository", "sync", "--name", "foo", "--remote", "up").exit_code == 0


@SQLITE_ONLY
def test_garbage_html_is_a_page_without_files_not_a_crash(cli, hostile_root):
    garbage = b"<html><a href=<<<'\"><a><<body>>> </a href=x>" * 1000
    with serve_faulty(hostile_root, [Rule("/simple/evil/", Fault.replace(garbage, "text/html"))]) as index:
        cli("repository", "create", "--name", "foo")
        cli("remote", "create", "--name", "up", "--url", index.url, "--includes", '["evil", "calm"]')
        result = cli("repository", "sync", "--name", "foo", "--remote", "up")
    assert result.exit_code == 0, result.stderr
    names = {p.normalized_name for p in ContentWriter(catalog_for(Settings())).content_at("foo")}
    assert names == {"calm"}


@SQLITE_ONLY
@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_a_100_mb_page_is_refused_at_the_limit_with_bounded_memory(
    cli, hostile_root, monkeypatch, declare_length
):
    monkeypatch.setenv("MIRRORFLOW_MAX_PAGE_BYTES", str(1 << 20))
    rule = Rule("/simple/evil/", Fault.huge(100 << 20, declare_length=declare_length))
    with serve_faulty(hostile_root, [rule]) as index:
        cli("repository", "create", "--name", "foo")
        cli("remote", "create", "--name", "up", "--url", index.url, "--includes", '["evil", "calm"]')
        tracemalloc.start()
        try:
            result = cli("repository", "sync", "--name", "foo", "--remote", "up")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sent = index.sent_bytes["/simple/evil/"]
    line = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 1 and "project 'evil':" in line and "max_page_bytes" in line
    assert sent < 30 << 20, f"the client stopped reading ({sent} of 100 MB sent)"
    assert peak < 40 << 20, f"memory stayed bounded (peak {peak} bytes)"


@SQLITE_ONLY
def test_a_redirect_loop_on_a_page_fails_that_project_only(cli, hostile_root):
    with serve_faulty(hostile_root, [Rule("/simple/evil/", Fault.redirect_loop())]) as index:
        cli("repository", "create", "--name", "foo")
        cli("remote", "create", "--name", "up", "--url", index.url, "--includes", '["evil", "calm"]')
        result = cli("repository", "sync", "--name", "foo", "--remote", "up")
        assert 2 <= index.served[("/simple/evil/", "redirect")] <= 10, "the client gave up after a few hops"
    line = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 1 and "project 'evil':" in line and "TooManyRedirects" in line


def test_stream_file_refuses_other_schemes_and_keeps_credentials_on_the_index_origin():
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Authorization")))
        return httpx.Response(200, content=b"x")

    http = build_http_client(auth=("user", "s3cret"), transport=httpx.MockTransport(handler))
    with http:
        index = IndexClient("https://index.example/simple/", client=http)
        for url in ("file:///etc/passwd", "ftp://index.example/x", "https:///no-host"):
            with pytest.raises(UpstreamError, match="not an http"), index.stream_file(url):
                pass
        with index.stream_file("https://index.example/files/a.whl"):
            pass
        with index.stream_file("https://files.example/files/a.whl"):
            pass
    assert seen[0][0] == "index.example" and seen[0][1] is not None and seen[0][1].startswith("Basic ")
    assert seen[1] == ("files.example", None), "no credentials for another host"
