"""mirrorflow.tasks.index_client: PEP 691 negotiation, error translation and page bounds.

Happy paths run against a real fixture index on loopback; failure modes use ``httpx.MockTransport``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from collections.abc import Callable, Iterator

import certifi
import httpx
import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import RunningIndex
from mirrorflow.tasks.index_client import (
    ACCEPT,
    IndexClient,
    PageTooLarge,
    ProjectNotFound,
    TransientError,
    UpstreamError,
    build_http_client,
)
from mirrorflow.tasks.simple import InvalidPage

ROOT = "https://index.example/simple/"
JSON_PAGE = b'{"meta": {"api-version": "1.1"}, "name": "demo", "files": []}'


def _mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True, max_redirects=5)


# -- against the fixture index ----------------------------------------------------------------------


def test_listing_negotiates_json(seed_index: RunningIndex, index_http_client: httpx.Client) -> None:
    listing = IndexClient(seed_index.url, client=index_http_client).get_listing()
    names = {project.name: project for project in listing.projects}
    assert set(names) == {"shelf-reader", "django", "pip-tools", "scipy", "mf-demo-lib", "mf-demo-app"}
    assert names["django"].display_name == "Django"
    assert names["django"].last_serial is not None
    assert listing.last_serial == max(p.last_serial or 0 for p in listing.projects)


def test_project_page_files_resolve_and_match_their_digests(
    seed_index: RunningIndex, index_http_client: httpx.Client
) -> None:
    client = IndexClient(seed_index.url.rstrip("/"), client=index_http_client)  # slash added back
    page = client.get_project("DJANGO")
    assert (page.name, len(page.files)) == ("django", 18)
    assert "3.0a1" in page.versions
    assert page.last_serial is not None
    file = next(f for f in page.files if f.filename == "Django-3.0-py3-none-any.whl")
    assert file.url.startswith(seed_index.base_url + "files/")
    assert file.core_metadata and file.core_metadata_sha256 is not None
    with client.stream_file(file.url) as response:
        content = response.read()
    assert hashlib.sha256(content).hexdigest() == file.sha256
    assert len(content) == file.size
    assert seed_index.hits["/simple/django/"] >= 1


def test_html_only_index_gives_the_same_files(
    seed_index: RunningIndex, index_http_client: httpx.Client, tmp_path
) -> None:
    json_page = IndexClient(seed_index.url, client=index_http_client).get_project("mf-demo-lib")
    with serve_projects(seed_projects(), tmp_path, mode="html-only") as html_index:
        html_page = IndexClient(html_index.url, client=index_http_client).get_project("mf-demo-lib")
        listing = IndexClient(html_index.url, client=index_http_client).get_listing()

    def portable(file):  # HTML has no PEP 700 fields, and the two servers have different ports.
        return dataclasses.replace(file, size=None, upload_time=None, url=file.url.split("/files/")[1])

    assert [portable(f) for f in html_page.files] == [portable(f) for f in json_page.files]
    assert html_page.last_serial == json_page.last_serial
    assert html_page.display_name == "mf-demo-lib"
    assert len(listing.projects) == 6
    yanked = [f for f in html_page.files if f.yanked]
    assert [(f.filename, f.yanked_reason) for f in yanked] == [("mf_demo_lib-2.1-py3-none-any.whl", "broken")]


def test_unknown_project_and_missing_file(seed_index: RunningIndex, index_http_client: httpx.Client) -> None:
    client = IndexClient(seed_index.url, client=index_http_client)
    with pytest.raises(ProjectNotFound) as caught:
        client.get_project("no-such-project")
    assert caught.value.project == "no-such-project"
    assert caught.value.url == seed_index.url + "no-such-project/"
    with (
        pytest.raises(UpstreamError) as missing,
        client.stream_file(seed_index.base_url + "files/00/nope.whl"),
    ):
        pass
    assert missing.value.status == 404


@pytest.mark.parametrize("name", ["a/b", "", "-leading-dash", "spaces in name"])
def test_invalid_project_name_is_refused_before_any_request(name: str) -> None:
    unexpected = _mock_client(lambda request: pytest.fail(f"unexpected request {request}"))
    with unexpected as http, pytest.raises(ValueError, match=repr(name)):
        IndexClient(ROOT, client=http).get_project(name)


# -- negotiation and content types ------------------------------------------------------------------


def test_request_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=JSON_PAGE, headers={"Content-Type": "application/vnd.pypi.simple.v1+json"}
        )

    with build_http_client(transport=httpx.MockTransport(handler)) as http:
        IndexClient(ROOT, client=http).get_project("Demo")
    assert str(seen[0].url) == "https://index.example/simple/demo/"
    assert seen[0].headers["Accept"] == ACCEPT
    assert seen[0].headers["User-Agent"].startswith("mirrorflow/")


def test_a_remotes_accept_header_replaces_the_negotiation() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, content=b'<a href="x-1.0.tar.gz">x-1.0.tar.gz</a>', headers={"Content-Type": "text/html"}
        )

    with build_http_client(headers={"accept": "text/html"}, transport=httpx.MockTransport(handler)) as http:
        page = IndexClient(ROOT, client=http).get_project("Demo")
    assert seen[0].headers["Accept"] == "text/html"
    assert [file.filename for file in page.files] == ["x-1.0.tar.gz"]


@pytest.mark.parametrize(
    ("content_type", "body", "expected_files"),
    [
        pytest.param("application/vnd.pypi.simple.v1+json", JSON_PAGE, 0, id="json"),
        pytest.param(
            "application/vnd.pypi.simple.v1+json; charset=utf-8", JSON_PAGE, 0, id="json-with-param"
        ),
        pytest.param("text/html", b'<a href="x-1.0.tar.gz">x-1.0.tar.gz</a>', 1, id="text-html"),
        pytest.param(
            "Text/HTML; charset=UTF-8", b'<a href="x-1.0.tar.gz">x-1.0.tar.gz</a>', 1, id="html-case"
        ),
        pytest.param(
            "application/vnd.pypi.simple.v1+html", b'<a href="x-1.0.zip">x-1.0.zip</a>', 1, id="v1-html"
        ),
        pytest.param(
            "text/html; charset=latin-1", '<a href="x">é-1.0.zip</a>'.encode("latin-1"), 1, id="latin-1"
        ),
    ],
)
def test_content_type_dispatch(content_type: str, body: bytes, expected_files: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    with _mock_client(handler) as http:
        page = IndexClient(ROOT, client=http).get_project("demo")
    assert len(page.files) == expected_files


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        pytest.param("application/json", JSON_PAGE, UpstreamError, id="plain-json-refused"),
        pytest.param(None, JSON_PAGE, UpstreamError, id="no-content-type"),
        pytest.param("text/html", b"<a href='\xff'>x</a>", InvalidPage, id="html-not-utf8"),
        pytest.param("text/html; charset=no-such-codec", b"<a>x</a>", InvalidPage, id="unknown-charset"),
        pytest.param("application/vnd.pypi.simple.v1+json", b"{", InvalidPage, id="broken-json"),
    ],
)
def test_unusable_pages(content_type: str | None, body: bytes, error: type[Exception]) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    with _mock_client(handler) as http, pytest.raises(error):
        IndexClient(ROOT, client=http).get_project("demo")


def test_redirected_page_resolves_urls_against_the_final_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "index.example":
            return httpx.Response(301, headers={"Location": "https://mirror.example/pypi/simple/demo/"})
        body = b'<a href="../../files/demo-1.0.tar.gz">demo-1.0.tar.gz</a><!--SERIAL 5-->'
        return httpx.Response(200, content=body, headers={"Content-Type": "text/html"})

    with _mock_client(handler) as http:
        page = IndexClient(ROOT, client=http).get_project("demo")
    assert page.files[0].url == "https://mirror.example/pypi/files/demo-1.0.tar.gz"
    assert page.last_serial == 5


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fetch", "error"),
    [
        pytest.param(404, "project", ProjectNotFound, id="project-404"),
        pytest.param(410, "project", ProjectNotFound, id="project-410"),
        pytest.param(404, "listing", UpstreamError, id="listing-404"),
        pytest.param(404, "file", UpstreamError, id="file-404"),
        pytest.param(401, "project", UpstreamError, id="project-401"),
        pytest.param(403, "file", UpstreamError, id="file-403"),
        pytest.param(429, "project", TransientError, id="rate-limited"),
        pytest.param(500, "listing", TransientError, id="listing-500"),
        pytest.param(503, "file", TransientError, id="file-503"),
    ],
)
def test_status_errors(status: int, fetch: str, error: type[Exception]) -> None:
    with _mock_client(lambda request: httpx.Response(status)) as http:
        client = IndexClient(ROOT, client=http)
        with pytest.raises(error) as caught:
            if fetch == "project":
                client.get_project("demo")
            elif fetch == "listing":
                client.get_listing()
            else:
                with client.stream_file("https://index.example/files/demo-1.0.tar.gz"):
                    pass
    assert getattr(caught.value, "status", status) == status
    assert caught.value.url.startswith("https://index.example/")


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        pytest.param(httpx.ConnectError("refused"), TransientError, id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), TransientError, id="read-timeout"),
        pytest.param(httpx.ConnectTimeout("slow"), TransientError, id="connect-timeout"),
        pytest.param(httpx.RemoteProtocolError("peer closed"), TransientError, id="protocol"),
        pytest.param(httpx.UnsupportedProtocol("ftp"), UpstreamError, id="unsupported-protocol"),
    ],
)
def test_transport_errors(exception: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    with _mock_client(handler) as http, pytest.raises(error) as caught:
        IndexClient(ROOT, client=http).get_listing()
    assert caught.value.status is None  # type: ignore[attr-defined]
    assert caught.value.__cause__ is exception


def test_too_many_redirects() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url.copy_with(query=b"again"))})

    with _mock_client(handler) as http, pytest.raises(UpstreamError, match="TooManyRedirects"):
        IndexClient(ROOT, client=http).get_listing()


class _FailingStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b"first chunk"
        raise httpx.ReadError("connection reset")


def test_stream_file_translates_errors_while_reading() -> None:
    with _mock_client(lambda request: httpx.Response(200, stream=_FailingStream())) as http:
        client = IndexClient(ROOT, client=http)
        with (
            pytest.raises(TransientError, match="connection reset"),
            client.stream_file(ROOT + "f.whl") as response,
        ):
            for _ in response.iter_bytes():
                pass


class _EndlessStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield b"<a>" * 1000


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(lambda: httpx.Response(200, content=b"x" * 2048), id="content-length"),
        pytest.param(lambda: httpx.Response(200, stream=_EndlessStream()), id="chunked-endless"),
    ],
)
def test_page_size_is_bounded(response: Callable[[], httpx.Response]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        answer = response()
        answer.headers["Content-Type"] = "text/html"
        return answer

    with _mock_client(handler) as http, pytest.raises(PageTooLarge) as caught:
        IndexClient(ROOT, client=http, max_page_bytes=1024).get_project("demo")
    assert caught.value.limit == 1024
    assert "max_page_bytes" in str(caught.value)


# -- build_http_client ------------------------------------------------------------------------------


def test_build_http_client_settings() -> None:
    with build_http_client(
        concurrency=3,
        timeout=20.0,
        connect_timeout=5.0,
        headers={"X-Mirror": "eu"},
        auth=("user", "secret"),
        http2=False,
    ) as http:
        assert http.timeout == httpx.Timeout(20.0, connect=5.0)
        assert http.headers["X-Mirror"] == "eu"
        assert http.headers["User-Agent"].startswith("mirrorflow/")
        assert http.follow_redirects and http.max_redirects == 5
        assert isinstance(http.auth, httpx.BasicAuth)


def test_build_http_client_ca_bundle_path_needs_no_deprecated_api() -> None:
    # pytest turns warnings into errors: a deprecated verify=<str> would fail here.
    with build_http_client(verify=certifi.where(), read_timeout=1.0) as http:
        assert http.timeout.read == 1.0
    with pytest.raises((FileNotFoundError, ssl.SSLError)):
        build_http_client(cert="/nonexistent/client.pem")
