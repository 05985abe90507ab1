"""mirrorflow.tasks.simple: PEP 503 / 691 pages parsed into records, from recorded pages and from tables."""

from __future__ import annotations

import dataclasses
import doctest
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import mirrorflow.tasks.simple
from mirrorflow.tasks.distributions import DistFile, ListedProject
from mirrorflow.tasks.simple import (
    InvalidPage,
    display_name_of,
    parse_listing_html,
    parse_listing_json,
    parse_project_html,
    parse_project_json,
)

PAGES = Path(__file__).parent.parent / "pages"
PAGE_URL = "https://index.example/simple/django/"
DIGEST = "ab" * 32


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- recorded pages ---------------------------------------------------------------------------------

DJANGO_FILES = (
    DistFile(
        filename="Django-2.2.28-py3-none-any.whl",
        url="https://index.example/packages/b3/4d/Django-2.2.28-py3-none-any.whl",
        sha256=_sha("Django-2.2.28-py3-none-any.whl"),
        requires_python=">=3.5",
        size=7521123,
        upload_time=datetime(2022, 4, 11, 8, 31, 7, 421623, tzinfo=UTC),
        core_metadata=True,
        core_metadata_sha256=_sha("m1"),
    ),
    DistFile(
        filename="Django-2.2.28.tar.gz",
        url="https://index.example/packages/e9/95/Django-2.2.28.tar.gz",
        sha256=_sha("Django-2.2.28.tar.gz"),  # served uppercase: lowercased
        requires_python=">=3.5",
        size=9114567,
        upload_time=datetime(2022, 4, 11, 8, 31, 12, 117040, tzinfo=UTC),
    ),
    DistFile(
        filename="Django-3.0a1-py3-none-any.whl",
        url="https://index.example/packages/0c/7a/Django-3.0a1-py3-none-any.whl",
        sha256=_sha("Django-3.0a1-py3-none-any.whl"),
        requires_python=">=3.6",
        yanked=True,
        yanked_reason="Security issue, use 3.0",
        size=7420000,
        upload_time=datetime(2019, 9, 10, 9, 18, 43, 312498, tzinfo=UTC),
        core_metadata=True,  # only the pre-PEP 714 key
        core_metadata_sha256=_sha("m3"),
    ),
    DistFile(
        filename="Django-3.0-py3-none-any.whl",
        url="https://index.example/packages/43/4f/Django-3.0-py3-none-any.whl",
        sha256=None,  # md5 only
        requires_python=">=3.6",
        yanked=True,
        size=7426523,
        upload_time=datetime(2019, 12, 2, 11, 4, 19, tzinfo=UTC),
        core_metadata=True,
    ),
)


def test_recorded_json_project_page() -> None:
    page = parse_project_json((PAGES / "django.v1.json").read_bytes(), page_url=PAGE_URL)
    # PEP 691 gives the normalized name; the display spelling is read from the files, as HTML shows it.
    assert (page.name, page.display_name, page.last_serial) == ("django", "Django", 20123456)
    assert page.versions == ("2.2.28", "3.0", "3.0a1")
    assert page.files == DJANGO_FILES


def test_recorded_html_project_page_matches_json_but_for_pep700_fields() -> None:
    page = parse_project_html((PAGES / "django.html").read_text(encoding="utf-8"), page_url=PAGE_URL)
    assert (page.name, page.display_name, page.last_serial, page.versions) == (
        "django",
        "Django",
        20123456,
        (),
    )
    assert page.files == tuple(dataclasses.replace(f, size=None, upload_time=None) for f in DJANGO_FILES)


def test_recorded_bandersnatch_page_resolves_relative_urls() -> None:
    text = (PAGES / "shelf-reader.bandersnatch.html").read_text(encoding="utf-8")
    page = parse_project_html(
        text, page_url="https://index.example/simple/shelf-reader/", last_serial_header="1"
    )
    assert (page.name, page.display_name, page.last_serial) == ("shelf-reader", "shelf-reader", 4406743)
    assert [f.url for f in page.files] == [
        "https://index.example/packages/4b/1b/shelf-reader-0.1.tar.gz",
        "https://index.example/packages/8c/07/shelf_reader-0.1-py2-none-any.whl",
        "https://index.example/packages/aa/bb/shelf_reader-0.1.win32.exe",
    ]
    assert [f.sha256 for f in page.files] == [
        _sha("shelf-reader-0.1.tar.gz"),
        _sha("shelf_reader-0.1-py2-none-any.whl"),
        None,
    ]
    assert page.files[1].requires_python == ">=2.7, !=3.0.*, !=3.1.*, <4"


EXPECTED_LISTING = (
    ListedProject("django", "Django", 20123456),
    ListedProject("pip-tools", "pip-tools", 19000001),
    ListedProject("shelf-reader", "Shelf.Reader", 4406743),
    ListedProject("zope-interface", "zope.interface", 18000000),
)


def test_recorded_json_listing() -> None:
    listing = parse_listing_json(
        (PAGES / "listing.v1.json").read_bytes(), page_url="https://index.example/simple/"
    )
    assert listing.projects == EXPECTED_LISTING
    assert listing.last_serial == 20123460
    assert listing.extra == {"api-version": "1.1"}


def test_recorded_html_listing_has_names_but_no_serials() -> None:
    listing = parse_listing_html(
        (PAGES / "listing.html").read_text(encoding="utf-8"),
        page_url="https://index.example/simple/",
        last_serial_header="20123460",
    )
    assert listing.projects == tuple(dataclasses.replace(p, last_serial=None) for p in EXPECTED_LISTING)
    assert listing.last_serial == 20123460


# -- JSON file entries ------------------------------------------------------------------------------


def _json_page(entry: dict[str, Any] | None = None, **top: Any) -> bytes:
    base = {"filename": "demo-1.0.tar.gz", "url": "../../files/demo-1.0.tar.gz", "hashes": {}}
    document: dict[str, Any] = {
        "meta": {"api-version": "1.0"},
        "name": "Demo",
        "files": [{**base, **(entry or {})}],
    }
    document.update(top)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            {}, {"url": "https://index.example/files/demo-1.0.tar.gz", "sha256": None}, id="relative-url"
        ),
        pytest.param(
            {"url": "https://other.example/x/demo-1.0.tar.gz#sha256=" + DIGEST},
            {"url": "https://other.example/x/demo-1.0.tar.gz"},
            id="absolute-url-fragment-removed",
        ),
        pytest.param(
            {"url": "/f/demo-1.0.tar.gz"},
            {"url": "https://index.example/f/demo-1.0.tar.gz"},
            id="root-relative",
        ),
        pytest.param({"hashes": {"sha256": DIGEST.upper()}}, {"sha256": DIGEST}, id="sha256-lowercased"),
        pytest.param({"hashes": {"sha256": "abc"}}, {"sha256": None}, id="sha256-malformed-none"),
        pytest.param({"hashes": {"sha512": "ab" * 64}}, {"sha256": None}, id="other-algorithm-none"),
        pytest.param({"yanked": True}, {"yanked": True, "yanked_reason": None}, id="yanked-true"),
        pytest.param(
            {"yanked": "bad build"}, {"yanked": True, "yanked_reason": "bad build"}, id="yanked-reason"
        ),
        pytest.param({"yanked": ""}, {"yanked": True, "yanked_reason": None}, id="yanked-empty-reason"),
        pytest.param({"yanked": False}, {"yanked": False, "yanked_reason": None}, id="not-yanked"),
        pytest.param({"requires-python": ">=3.8"}, {"requires_python": ">=3.8"}, id="requires-python"),
        pytest.param({"requires-python": ""}, {"requires_python": None}, id="requires-python-empty"),
        pytest.param({"size": 123}, {"size": 123}, id="size"),
        pytest.param(
            {"upload-time": "2021-05-06T07:08:09.123456Z"},
            {"upload_time": datetime(2021, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)},
            id="upload-time-z",
        ),
        pytest.param(
            {"upload-time": "2021-05-06T07:08:09"},
            {"upload_time": datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)},
            id="upload-time-naive-read-as-utc",
        ),
        pytest.param(
            {"core-metadata": True},
            {"core_metadata": True, "core_metadata_sha256": None},
            id="core-metadata-true",
        ),
        pytest.param(
            {"core-metadata": {"sha256": DIGEST}},
            {"core_metadata": True, "core_metadata_sha256": DIGEST},
            id="core-metadata-hash",
        ),
        pytest.param(
            {"dist-info-metadata": {"sha256": DIGEST}},
            {"core_metadata": True, "core_metadata_sha256": DIGEST},
            id="dist-info-metadata-old-name",
        ),
        pytest.param(
            {"core-metadata": False, "dist-info-metadata": {"sha256": DIGEST}},
            {"core_metadata": False, "core_metadata_sha256": None},
            id="core-metadata-preferred-over-old-name",
        ),
        pytest.param({"x-unknown": [1, 2]}, {"filename": "demo-1.0.tar.gz"}, id="unknown-key-ignored"),
        pytest.param(
            {"upload-time": "2021-05-06T07:08:09Z"},
            {"upload_time": datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)},
            id="upload-time-no-fraction",
        ),
        pytest.param(
            {"upload-time": "2021-05-06T07:08:09.1Z"},
            {"upload_time": datetime(2021, 5, 6, 7, 8, 9, 100000, tzinfo=UTC)},
            id="upload-time-short-fraction",
        ),
        pytest.param({"upload-time": "yesterday"}, {"upload_time": None}, id="upload-time-garbled-missing"),
        pytest.param(
            {"url": "http://[::1/demo-1.0.tar.gz"},
            {"url": "http://[::1/demo-1.0.tar.gz"},
            id="unparsable-url-kept-as-written",
        ),
        pytest.param(
            {"provenance": "../../integrity/demo/1.0/demo-1.0.tar.gz/provenance"},
            {"provenance": "https://index.example/integrity/demo/1.0/demo-1.0.tar.gz/provenance"},
            id="pep740-provenance",
        ),
        pytest.param({"provenance": None}, {"provenance": None}, id="pep740-no-provenance"),
        pytest.param({"provenance": 3}, {"provenance": None}, id="pep740-garbled-ignored"),
    ],
)
def test_json_file_entry(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    page = parse_project_json(_json_page(entry), page_url="https://index.example/simple/demo/")
    (file,) = page.files
    assert {key: getattr(file, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "not JSON", id="malformed-json"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
        pytest.param(b"[]", "not an object", id="top-level-list"),
        pytest.param(_json_page(meta={"api-version": "2.0"}), "newer than the supported", id="api-major-2"),
        pytest.param(_json_page(meta={"api-version": "one"}), "is not '<major>.<minor>'", id="api-garbled"),
        pytest.param(_json_page(meta="x"), "'meta' is 'x'", id="meta-not-object"),
        pytest.param(_json_page(name=None), "no 'name'", id="no-name"),
        pytest.param(_json_page(files={}), "'files' is {}", id="files-not-list"),
        pytest.param(b'{"name": "demo"}', "no 'files'", id="files-missing"),
        pytest.param(_json_page({"filename": None}), "files[0] has no 'filename'", id="entry-no-filename"),
        pytest.param(_json_page({"url": None}), "files[0] has no 'url'", id="entry-no-url"),
        pytest.param(_json_page({"hashes": ["sha256"]}), "'hashes' is ['sha256']", id="hashes-not-object"),
        pytest.param(_json_page({"size": "12"}), "'size' is '12'", id="size-string"),
        pytest.param(_json_page({"size": True}), "'size' is True", id="size-bool"),
        pytest.param(_json_page({"size": -1}), "negative", id="size-negative"),
        pytest.param(_json_page({"yanked": 1}), "'yanked' is 1", id="yanked-int"),
        pytest.param(_json_page(versions=[1.0]), "'versions'", id="versions-not-strings"),
        pytest.param(
            b'{"name": "a", "files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nests too deeply",
            id="deeply-nested",
        ),
    ],
)
def test_json_project_page_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPage) as caught:
        parse_project_json(body, page_url=PAGE_URL)
    assert reason in caught.value.reason
    assert caught.value.url == PAGE_URL
    assert repr(PAGE_URL) in str(caught.value)


@pytest.mark.parametrize(
    ("meta", "header", "expected"),
    [
        pytest.param({"_last-serial": 7}, "9", 7, id="body-wins"),
        pytest.param({"_last-serial": "2124101"}, None, 2124101, id="string-serial-read"),
        pytest.param({"_last-serial": "seven"}, "9", 9, id="garbled-serial-ignored"),
        pytest.param({"_last-serial": -1}, None, None, id="negative-serial-ignored"),
        pytest.param({"_last-serial": True}, None, None, id="bool-serial-ignored"),
        pytest.param({}, "9", 9, id="header-fallback"),
        pytest.param({}, " 9 ", 9, id="header-whitespace"),
        pytest.param({}, "nine", None, id="header-garbled-ignored"),
        pytest.param({}, None, None, id="none"),
    ],
)
def test_json_last_serial(meta: dict[str, Any], header: str | None, expected: int | None) -> None:
    page = parse_project_json(_json_page(meta=meta), page_url=PAGE_URL, last_serial_header=header)
    assert page.last_serial == expected


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        pytest.param(
            {"project-status": {"status": "quarantined", "reason": "malware"}},
            ("quarantined", "malware"),
            id="quarantined",
        ),
        pytest.param({"project-status": {"status": "Archived"}}, ("archived", None), id="archived-no-reason"),
        pytest.param({}, (None, None), id="absent"),
        pytest.param({"project-status": "archived"}, (None, None), id="garbled-ignored"),
    ],
)
def test_json_pep792_project_status(top: dict[str, Any], expected: tuple[str | None, str | None]) -> None:
    body = _json_page(meta={"api-version": "1.4"}, **top)
    page = parse_project_json(body, page_url=PAGE_URL)
    assert (page.status, page.status_reason) == expected


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.4", "1.99"])
def test_every_1x_api_version_is_read(version: str) -> None:
    body = _json_page(meta={"api-version": version, "_last-serial": "5"}, **{"x-future": {"a": 1}})
    assert parse_project_json(body, page_url=PAGE_URL).last_serial == 5


def test_json_name_canonicalized_once_display_kept() -> None:
    page = parse_project_json(_json_page(name="Zope.Interface", versions=["1.0"]), page_url=PAGE_URL)
    assert (page.name, page.display_name, page.versions) == ("zope-interface", "Zope.Interface", ("1.0",))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"projects": "x"}', id="projects-not-list"),
        pytest.param(b'{"projects": [{"_last-serial": 1}]}', id="entry-no-name"),
        pytest.param(b'{"projects": ["django"]}', id="entry-not-object"),
        pytest.param(b'{"meta": {"api-version": "3.0"}, "projects": []}', id="api-major-3"),
        pytest.param(b'{"meta": {}}', id="projects-missing"),
    ],
)
def test_json_listing_rejected(body: bytes) -> None:
    with pytest.raises(InvalidPage):
        parse_listing_json(body, page_url="https://index.example/simple/")


# -- HTML anchors -----------------------------------------------------------------------------------


def _html_page(anchor: str, head: str = "") -> str:
    return f"<html><head>{head}<title>Links for Demo</title></head><body>{anchor}</body></html>"


@pytest.mark.parametrize(
    ("anchor", "expected"),
    [
        pytest.param(
            f'<a href="../../f/demo-1.0.tar.gz#sha256={DIGEST}">demo-1.0.tar.gz</a>',
            {"url": "https://index.example/f/demo-1.0.tar.gz", "sha256": DIGEST},
            id="relative-with-sha256",
        ),
        pytest.param(
            f'<a href="demo-1.0.tar.gz#SHA256={DIGEST.upper()}">demo-1.0.tar.gz</a>',
            {"url": "https://index.example/simple/demo/demo-1.0.tar.gz", "sha256": DIGEST},
            id="sha256-uppercase",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz#md5=5d41402abc4b2a76b9719d911017c592">demo-1.0.tar.gz</a>',
            {"sha256": None},
            id="md5-only",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz" data-requires-python="&gt;=3.8,&lt;4">demo-1.0.tar.gz</a>',
            {"requires_python": ">=3.8,<4"},
            id="requires-python-unescaped",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz" data-yanked>x</a>',
            {"yanked": True, "yanked_reason": None},
            id="yanked-bare",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz" data-yanked="">x</a>',
            {"yanked": True, "yanked_reason": None},
            id="yanked-empty",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz" data-yanked="bad &amp; broken">x</a>',
            {"yanked": True, "yanked_reason": "bad & broken"},
            id="yanked-reason",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz">x</a>', {"yanked": False, "core_metadata": False}, id="plain"
        ),
        pytest.param(
            '<a href="/f/demo-1.0.whl" data-core-metadata="true">x</a>',
            {"core_metadata": True, "core_metadata_sha256": None},
            id="core-metadata-true",
        ),
        pytest.param(
            f'<a href="/f/demo-1.0.whl" data-dist-info-metadata="sha256={DIGEST}">x</a>',
            {"core_metadata": True, "core_metadata_sha256": DIGEST},
            id="dist-info-metadata-hash",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.whl" data-core-metadata="sha512=abc">x</a>',
            {"core_metadata": True, "core_metadata_sha256": None},
            id="core-metadata-other-hash",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.whl" data-core-metadata="nonsense">x</a>',
            {"core_metadata": False},
            id="core-metadata-garbled",
        ),
        pytest.param(
            '<a href="/f/demo%2B1.0.tar.gz"></a>',
            {"filename": "demo+1.0.tar.gz"},
            id="empty-text-filename-from-url",
        ),
        pytest.param(
            '<a href="/f/x.whl"> demo-1.0.whl\n</a>', {"filename": "demo-1.0.whl"}, id="text-stripped"
        ),
        pytest.param(
            '<a href="http://[::1/demo-1.0.tar.gz#sha256=00">demo-1.0.tar.gz</a>',
            {"url": "http://[::1/demo-1.0.tar.gz", "filename": "demo-1.0.tar.gz"},
            id="unparsable-url-kept-as-written",
        ),
        pytest.param(
            '<a href="/f/demo-1.0.tar.gz" data-provenance="/integrity/demo-1.0.tar.gz/provenance">x</a>',
            {"provenance": "https://index.example/integrity/demo-1.0.tar.gz/provenance"},
            id="pep740-provenance",
        ),
    ],
)
def test_html_anchor(anchor: str, expected: dict[str, Any]) -> None:
    page = parse_project_html(_html_page(anchor), page_url="https://index.example/simple/demo/")
    (file,) = page.files
    assert {key: getattr(file, key) for key in expected} == expected


def test_html_pep792_project_status() -> None:
    head = (
        '<meta name="pypi:repository-version" content="1.4">'
        '<meta name="pypi:project-status" content="quarantined">'
        '<meta name="pypi:project-status-reason" content="malware reported">'
    )
    page = parse_project_html(_html_page("", head=head), page_url=PAGE_URL)
    assert (page.status, page.status_reason) == ("quarantined", "malware reported")


def test_html_unparsable_base_href_refuses_the_page_cleanly() -> None:
    with pytest.raises(InvalidPage, match="base href"):
        parse_project_html(_html_page("", head='<base href="http://[::1">'), page_url=PAGE_URL)


def test_html_base_href_and_anchors_without_href() -> None:
    text = _html_page(
        '<a name="top">top</a><a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>',
        head='<base href="https://mirror.example/pkgs/">',
    )
    page = parse_project_html(text, page_url=PAGE_URL)
    assert [f.url for f in page.files] == ["https://mirror.example/pkgs/demo-1.0.tar.gz"]


@pytest.mark.parametrize(
    ("text", "page_url", "expected"),
    [
        pytest.param(
            "<title>Links for Zope.Interface</title>",
            PAGE_URL,
            ("zope-interface", "Zope.Interface"),
            id="title",
        ),
        pytest.param(
            "<p>no title</p>",
            "https://index.example/simple/Zope.Interface/",
            ("zope-interface", "Zope.Interface"),
            id="url",
        ),
    ],
)
def test_html_project_name(text: str, page_url: str, expected: tuple[str, str]) -> None:
    page = parse_project_html(text, page_url=page_url)
    assert (page.name, page.display_name) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            _html_page("", head='<meta name="pypi:repository-version" content="2.0">'),
            "newer",
            id="api-major-2",
        ),
    ],
)
def test_html_project_page_rejected(text: str, reason: str) -> None:
    with pytest.raises(InvalidPage, match=reason):
        parse_project_html(text, page_url=PAGE_URL)


@pytest.mark.parametrize(
    ("comment", "header", "expected"),
    [
        pytest.param("<!--SERIAL 1234-->", "99", 1234, id="bandersnatch-comment-wins"),
        pytest.param("<!-- SERIAL 1234 -->", None, 1234, id="comment-spaces"),
        pytest.param("<!-- generated -->", "99", 99, id="other-comment-header"),
        pytest.param("", None, None, id="none"),
    ],
)
def test_html_serial(comment: str, header: str | None, expected: int | None) -> None:
    page = parse_project_html(_html_page("") + comment, page_url=PAGE_URL, last_serial_header=header)
    assert page.last_serial == expected


def test_html_listing_name_from_href_when_text_empty() -> None:
    listing = parse_listing_html('<a href="/simple/zope-interface/"></a><a>no href</a>', page_url=PAGE_URL)
    assert listing.projects == (ListedProject("zope-interface", "zope-interface"),)


def _named(*filenames: str) -> list[DistFile]:
    return [DistFile(filename, f"https://index.example/{filename}", None) for filename in filenames]


@pytest.mark.parametrize(
    ("name", "filenames", "expected"),
    [
        pytest.param(
            "django", ["Django-2.0.tar.gz", "Django-2.0-py3-none-any.whl"], "Django", id="sdist-spelling"
        ),
        pytest.param("django", ["Django-2.0-py3-none-any.whl"], "Django", id="wheel-spelling"),
        pytest.param(
            "zope-interface",
            ["Zope_Interface-1.0-py3-none-any.whl"],
            "Zope-Interface",
            id="wheel-underscores",
        ),
        pytest.param(
            "shelf-reader", ["shelf_reader-0.1-py2-none-any.whl"], "shelf-reader", id="wheel-normalized"
        ),
        pytest.param(
            "django", ["django-1.0.tar.gz", "Django-2.0.tar.gz"], "Django", id="newest-listed-sdist-wins"
        ),
        pytest.param(
            "django", ["evil-1.0.tar.gz", "Evil-1.0-py3-none-any.whl"], "django", id="other-project-ignored"
        ),
        pytest.param("django", ["Django-2.0.exe", "-2.0.tar.gz"], "django", id="no-usable-file"),
        pytest.param(
            "Zope.Interface", ["zope_interface-1.0.tar.gz"], "Zope.Interface", id="page-spelling-kept"
        ),
        pytest.param("django", [], "django", id="no-files"),
    ],
)
def test_display_name_prefers_the_files_spelling_over_a_normalized_page_name(
    name, filenames, expected
) -> None:
    assert display_name_of(name, _named(*filenames)) == expected


def test_simple_doctests() -> None:
    assert doctest.testmod(mirrorflow.tasks.simple, raise_on_error=True).attempted > 0
