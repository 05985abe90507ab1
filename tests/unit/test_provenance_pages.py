"""PEP 740 provenance (issue 20), pure parts: reading ``provenance`` / ``data-provenance`` off upstream
pages (the safe-URL rule), checking a fetched object, and the served pages pointing at the mirror's own
``<file URL>.provenance``, never the upstream's URL.
"""

from __future__ import annotations

import json

import pytest

from mirrorflow.server.pages import HTML, JSON_V1, render_project
from mirrorflow.storage.records import PageFile
from mirrorflow.tasks.provenance import provenance_problem
from mirrorflow.tasks.simple import parse_project_html, parse_project_json

PAGE = "https://index.example/simple/demo/"
SHA = "a" * 64


def _json_page(provenance: object) -> bytes:
    entry = {"filename": "demo-1.0.tar.gz", "url": "../../f/demo-1.0.tar.gz", "hashes": {"sha256": SHA}}
    return json.dumps(
        {"meta": {"api-version": "1.3"}, "name": "demo", "files": [{**entry, "provenance": provenance}]}
    ).encode()


def _html_page(provenance: str) -> str:
    return (
        '<a href="../../f/demo-1.0.tar.gz#sha256='
        + SHA
        + f'" data-provenance="{provenance}">demo-1.0.tar.gz</a>'
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "../../integrity/demo-1.0.tar.gz/provenance",
            "https://index.example/integrity/demo-1.0.tar.gz/provenance",
            id="relative-resolved",
        ),
        pytest.param(
            "https://files.example/demo-1.0.tar.gz.provenance",
            "https://files.example/demo-1.0.tar.gz.provenance",
            id="other-host-fine",
        ),
        pytest.param("file:///etc/passwd", None, id="file-scheme-ignored"),
        pytest.param("javascript:alert(1)", None, id="other-scheme-ignored"),
        pytest.param("http:///no-host", None, id="no-host-ignored"),
        pytest.param("http://[::1/x", None, id="unparseable-ignored"),
        pytest.param("", None, id="empty-ignored"),
    ],
)
def test_an_upstream_provenance_url_is_kept_only_when_a_sync_may_fetch_it(
    value: str, expected: str | None
) -> None:
    [from_json] = parse_project_json(_json_page(value), page_url=PAGE).files
    [from_html] = parse_project_html(_html_page(value), page_url=PAGE).files
    assert from_json.provenance == from_html.provenance == expected
    assert from_json.sha256 == SHA, "the file itself is listed either way"


def test_a_provenance_that_is_not_a_string_is_ignored_not_refused() -> None:
    for value in (3, {"url": "x"}, ["x"], True):
        [file] = parse_project_json(_json_page(value), page_url=PAGE).files
        assert file.provenance is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b'{"version": 1, "attestation_bundles": [{"attestations": []}]}', None, id="valid"),
        pytest.param(b"<html>oops</html>", "not JSON", id="html"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(b"[1]", "top level is list, not an object", id="list"),
        pytest.param(b'{"attestation_bundles": []}', "'version' is None, not 1", id="no-version"),
        pytest.param(
            b'{"version": 1, "attestation_bundles": {}}', "'attestation_bundles' is not a list", id="bundles"
        ),
    ],
)
def test_a_fetched_provenance_must_be_a_pep740_object(body: bytes, problem: str | None) -> None:
    assert provenance_problem(body) == problem


def _file(filename: str, sha256: str) -> PageFile:
    return PageFile(
        1, "Demo", "1.0", filename, None, sha256, 10, None, False, None, None, False, sha256, None
    )


FILES = [_file("demo-1.0.tar.gz", "a" * 64), _file("demo 1.0-py3-none-any.whl", "b" * 64)]


def test_served_pages_point_at_the_mirrors_own_provenance_url_and_parse_back() -> None:
    prefix = "/r%20x/files/"
    base = "http://127.0.0.1:8080"
    served, page_url = f"{base}{prefix}", f"{base}/r%20x/simple/demo/"
    pages = {
        media_type: render_project(
            "Demo", "demo", FILES, serial=1, media_type=media_type, files_prefix=prefix, provenance={"a" * 64}
        )
        for media_type in (JSON_V1, HTML)
    }
    document = json.loads(pages[JSON_V1])
    assert document["meta"]["api-version"] == "1.3"
    by_name = {f["filename"]: f for f in document["files"]}
    assert by_name["demo-1.0.tar.gz"]["provenance"] == f"{prefix}{'a' * 64}/demo-1.0.tar.gz.provenance"
    assert "provenance" not in by_name["demo 1.0-py3-none-any.whl"], "no provenance known: no key"
    assert pages[HTML].count(b"data-provenance=") == 1
    # What a client reads off the served pages: this server's URL, the file's URL + ".provenance".
    parsed_json = parse_project_json(pages[JSON_V1], page_url=page_url).files
    parsed_html = parse_project_html(pages[HTML].decode(), page_url=page_url).files
    for parsed in (parsed_json, parsed_html):
        assert [(f.filename, f.provenance) for f in parsed] == [
            ("demo-1.0.tar.gz", f"{served}{'a' * 64}/demo-1.0.tar.gz.provenance"),
            ("demo 1.0-py3-none-any.whl", None),
        ]
        assert parsed[0].provenance == parsed[0].url + ".provenance"


def test_pages_without_provenance_are_unchanged_by_it() -> None:
    for media_type in (JSON_V1, HTML):
        plain = render_project(
            "Demo", "demo", FILES, serial=1, media_type=media_type, files_prefix="/r/files/"
        )
        assert b"provenance" not in plain
