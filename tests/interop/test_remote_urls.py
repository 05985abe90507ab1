"""Remote URLs as users write them: the index root (Pulp), the simple root (pip) and devpi's ``+simple``.

The rule is ``mirrorflow.tasks.index_url``'s; ``mirrorflow.tasks.index_client.locate_simple_root`` asks the upstream. A
URL that answers as no simple index, or a remote none of whose includes the index has, fails the
sync with one line naming what was asked, and makes no version.
"""

from __future__ import annotations

import json

import httpx
import pytest

from mirrorflow.tasks.index_client import NoSimpleIndex, build_http_client, locate_simple_root
from mirrorflow.tasks.index_url import simple_root_candidates

SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://index.example/", ("simple/", "+simple/", ""), id="pulp-index-root"),
        pytest.param("https://index.example", ("simple/", "+simple/", ""), id="root-without-slash"),
        pytest.param("https://index.example/simple/", ("simple/",), id="pip-simple-root"),
        pytest.param("https://index.example/simple", ("simple/",), id="simple-root-without-slash"),
        pytest.param(
            "https://index.example/root/pypi/+simple/", ("root/pypi/+simple/",), id="devpi-simple-root"
        ),
        pytest.param(
            "https://index.example/root/pypi/",
            ("root/pypi/simple/", "root/pypi/+simple/", "root/pypi/"),
            id="devpi-index-root",
        ),
        pytest.param(
            "https://index.example/pypi/foo/simple/", ("pypi/foo/simple/",), id="pulp-distribution-simple"
        ),
        pytest.param(
            "https://index.example/index/", ("index/simple/", "index/+simple/", "index/"), id="proxpi"
        ),
    ],
)
def test_simple_root_candidates(url: str, expected: tuple[str, ...]) -> None:
    assert simple_root_candidates(url) == tuple(f"https://index.example/{path}" for path in expected)


def _upstream(routes: dict[str, tuple[int, str, bytes]]) -> httpx.Client:
    """A client whose transport answers ``routes`` (path -> status, content type, body), else 404."""
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        status, content_type, body = routes.get(request.url.path, (404, "text/plain", b"not found"))
        return httpx.Response(status, headers={"Content-Type": content_type}, content=body)

    client = build_http_client(transport=httpx.MockTransport(handle))
    client.asked = asked  # type: ignore[attr-defined]
    return client


JSON = "application/vnd.pypi.simple.v1+json"
LISTING = (200, JSON, json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": "a"}]}).encode())
PROJECT_A = (200, JSON, json.dumps({"meta": {"api-version": "1.1"}, "name": "a", "files": []}).encode())
PROJECT_SIMPLE = (
    200,
    "text/html",
    b'<html><title>Links for simple</title><a href="/f/simple-1.0.tar.gz#sha256=00">simple-1.0.tar.gz</a>',
)


@pytest.mark.parametrize(
    ("routes", "projects", "expected"),
    [
        pytest.param({"/simple/": LISTING}, (), "/simple/", id="index-root-listing"),
        pytest.param({"/simple/a/": PROJECT_A}, ("a",), "/simple/", id="index-root-project"),
        pytest.param({"/+simple/": LISTING}, (), "/+simple/", id="devpi-listing"),
        pytest.param({"/+simple/a/": PROJECT_A}, ("missing", "a"), "/+simple/", id="devpi-second-include"),
        pytest.param({"/": LISTING}, (), "/", id="url-itself-listing"),
        pytest.param(
            {"/simple/": PROJECT_SIMPLE, "/": LISTING}, (), "/", id="project-named-simple-is-not-a-listing"
        ),
        pytest.param(
            {"/simple/": (200, "text/html", b"<title>Simple index</title><a href='a/'>a</a>")},
            (),
            "/simple/",
            id="html-listing",
        ),
    ],
)
def test_locate_simple_root(routes, projects, expected) -> None:
    with _upstream(routes) as client:
        url = "https://index.example/"
        root = locate_simple_root(url, simple_root_candidates(url), client=client, projects=projects)
    assert root == f"https://index.example{expected}"


def test_a_single_candidate_is_taken_without_a_request() -> None:
    with _upstream({}) as client:
        url = "https://index.example/simple/"
        assert locate_simple_root(url, simple_root_candidates(url), client=client) == url
        assert client.asked == []  # type: ignore[attr-defined]


def test_no_simple_index_names_every_url_tried() -> None:
    with _upstream({"/": (200, "text/plain", b"hi"), "/simple/": (500, "text/plain", b"")}) as client:
        url = "https://index.example/"
        with pytest.raises(Exception) as caught:
            locate_simple_root(url, simple_root_candidates(url), client=client)
    # A 5xx is transient: the caller retries rather than trying the next form.
    assert type(caught.value).__name__ == "TransientError"
    with _upstream({"/": (200, "text/plain", b"hi")}) as client, pytest.raises(NoSimpleIndex) as refused:
        locate_simple_root(url, simple_root_candidates(url), client=client)
    message = str(refused.value)
    assert "'https://index.example/simple/' answered 404" in message
    assert "'https://index.example/+simple/' answered 404" in message
    assert "'https://index.example/' answered Content-Type 'text/plain'" in message


# -- the seed's commands, with each form of the URL ------------------------------------------------


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


@SQLITE_ONLY
@pytest.mark.parametrize("form", ["index-root", "index-root-no-slash", "simple-root"])
def test_the_seed_commands_sync_shelf_reader_from_every_url_form(cli, seed_index, form) -> None:
    root = seed_index.url.removesuffix("simple/")
    url = {"index-root": root, "index-root-no-slash": root.rstrip("/"), "simple-root": seed_index.url}[form]
    _ok(cli("repository", "create", "--name", "foo"))
    remote = _ok(cli("remote", "create", "--name", "bar", "--url", url, "--includes", '["shelf-reader"]'))
    assert remote["url"] == url  # shown as given
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    version = _ok(cli("repository", "version", "show", "--repository", "foo"))
    assert version["number"] == 1
    assert version["content_summary"]["present"]["python.python"]["count"] == 2


@SQLITE_ONLY
def test_a_whole_index_sync_from_the_index_root_gets_what_the_simple_root_gets(cli, seed_index) -> None:
    counts = {}
    for name, url in (("root", seed_index.url.removesuffix("simple/")), ("simple", seed_index.url)):
        _ok(cli("repository", "create", "--name", name))
        _ok(cli("remote", "create", "--name", name, "--url", url))
        result = _ok(cli("repository", "sync", "--name", name, "--remote", name))
        counts[name] = result["content_summary"]["present"]["python.python"]["count"]
    assert counts["root"] == counts["simple"] > 10


@SQLITE_ONLY
def test_a_wrong_url_fails_in_one_line_naming_the_urls_tried_and_makes_no_version(cli, seed_index) -> None:
    url = seed_index.url.removesuffix("simple/") + "nothing/"
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", url, "--includes", '["shelf-reader"]'))
    result = cli("repository", "sync", "--name", "foo", "--remote", "bar")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    for tried in ("nothing/simple/shelf-reader/", "nothing/+simple/shelf-reader/", "nothing/shelf-reader/"):
        assert f"{url.removesuffix('nothing/')}{tried}' answered 404" in line
    assert _ok(cli("repository", "show", "--name", "foo"))["latest_version"] == 0


@SQLITE_ONLY
def test_a_sync_that_finds_none_of_its_includes_fails_and_makes_no_version(cli, seed_index) -> None:
    _ok(cli("repository", "create", "--name", "foo"))
    includes = '["no-such-project", "nor-this-one"]'
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", includes))
    result = cli("repository", "sync", "--name", "foo", "--remote", "bar")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "found none of its included projects ('no-such-project', 'nor-this-one')" in line
    assert repr(seed_index.url) in line
    assert _ok(cli("repository", "show", "--name", "foo"))["latest_version"] == 0


@SQLITE_ONLY
def test_an_included_project_the_index_lacks_is_a_warning(cli, seed_index) -> None:
    _ok(cli("repository", "create", "--name", "foo"))
    includes = '["shelf-reader", "no-such-project"]'
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", includes))
    result = cli("repository", "sync", "--name", "foo", "--remote", "bar")
    assert result.exit_code == 0, result.stderr
    assert result.json()["report"]["not_found"] == ["no-such-project"]
    assert "Warning: included project 'no-such-project' is not on the index" in result.stderr


@SQLITE_ONLY
@pytest.mark.parametrize(("given", "expected"), [("false", False), ("true", True), ("False", False)])
def test_prereleases_takes_pulp_clis_spelling(cli, given, expected) -> None:
    remote = _ok(
        cli("remote", "create", "--name", "bar", "--url", "https://index.example/", "--prereleases", given)
    )
    assert remote["prereleases"] is expected
    assert _ok(cli("remote", "update", "--name", "bar", "--no-prereleases"))["prereleases"] is False
    refused = cli("remote", "update", "--name", "bar", "--prereleases", "maybe")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "Error: prereleases: 'maybe' is not true or false"


@SQLITE_ONLY
def test_a_typo_in_an_include_under_the_index_root_is_named_as_such(cli, seed_index) -> None:
    root = seed_index.url.removesuffix("simple/")
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", root, "--includes", '["shelf-raeder"]'))
    result = cli("repository", "sync", "--name", "foo", "--remote", "bar")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    # The index root answered with a listing: the name is what is wrong, and the line says which.
    assert f"found none of its included projects ('shelf-raeder') under '{seed_index.url}'" in line


def test_a_host_that_does_not_resolve_is_not_called_transient() -> None:
    from mirrorflow.tasks.index_client import IndexClient, UpstreamError

    with build_http_client(timeout=10.0) as client:
        index = IndexClient("http://no-such-host.invalid/simple/", client=client)
        with pytest.raises(UpstreamError) as caught:
            index.get_project("shelf-reader")
    assert "host 'no-such-host.invalid' not found: check the remote's url" in str(caught.value)
