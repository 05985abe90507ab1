"""Project page rendering: the hand-written PEP 691 JSON equals ``json.dumps`` of the same document,
HTML attributes are escaped, PEP 700 versions and upload times, and the page query on both catalogs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from support_content import new_package

from mirrorflow.server.pages import HTML, JSON_V1, core_metadata_of, render_project, upload_time
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.records import PageFile
from mirrorflow.storage.serving import ServingCatalog

_IST = timezone(timedelta(hours=5, minutes=30))


def _file(filename: str, version: str, **fields) -> PageFile:
    values = dict(
        package_id=1, name="Odd_Proj", version=version, filename=filename, requires_python=None,
        sha256=hashlib.sha256(filename.encode()).hexdigest(), size=10, upload_time=None, yanked=False,
        yanked_reason=None, metadata_sha256=None, has_metadata=False, artifact_sha256=None,
        core_metadata_sha256=None,
    )  # fmt: skip
    values.update(fields)
    return PageFile(**values)


FILES = [
    _file("odd_proj-1.0.tar.gz", "1.0", requires_python='>=3.8, <4 & "x"', size=None),
    _file("odd_proj-1.0.0-py3-none-any.whl", "1.0.0", yanked=True, upload_time="2024-01-02T03:04:05.000000Z"),
    _file("odd_proj-2.0+local.1-py3-none-any.whl", "2.0+local.1", yanked=True, yanked_reason='bad <x> & "y"'),
    _file("odd_proj-v3-py3-none-any.whl", "v3", has_metadata=True, metadata_sha256="a" * 64),
    _file("odd_proj-4-py3-none-any.whl", "4", has_metadata=True, artifact_sha256="b" * 64),
    _file("odd_proj-5-py3-none-any.whl", "5", artifact_sha256="c" * 64, core_metadata_sha256="d" * 64),
    _file("odd_proj-6.tar.gz", "6", artifact_sha256="e" * 64, requires_python="\u2265 3\n"),
    _file("odd_proj-ünï cøde-1!0.1.tar.gz", "1!0.1", yanked_reason="not yanked, reason ignored"),
    _file("odd_proj-nonsense.tar.gz", "nonsense"),
]


def _reference(files: list[PageFile]) -> dict:
    """The PEP 691 document built the plain way, to compare the hand-written JSON with."""
    entries = []
    for f in files:
        entry = {
            "filename": f.filename,
            "url": f"/r%20x/files/{f.sha256}/{quote(f.filename)}",
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
        }
        if f.size is not None:
            entry["size"] = f.size
        if f.upload_time is not None:
            entry["upload-time"] = f.upload_time
        if f.yanked:
            entry["yanked"] = f.yanked_reason or True
        metadata = core_metadata_of(f)
        if metadata:
            entry["core-metadata"] = entry["dist-info-metadata"] = metadata
        entries.append(entry)
    return {
        "meta": {"api-version": "1.3", "_last-serial": 7},
        "name": "odd-proj",
        "versions": ["1.0", "2.0+local.1", "3", "4", "5", "6", "1!0.1"],
        "files": entries,
    }


def test_json_page_is_byte_for_byte_what_json_dumps_writes() -> None:
    body = render_project(
        "Odd_Proj", "odd-proj", FILES, serial=7, media_type=JSON_V1, files_prefix="/r%20x/files/"
    )
    assert body == json.dumps(_reference(FILES), separators=(",", ":")).encode()


def test_versions_list_equal_versions_once_as_first_spelled() -> None:
    files = [_file(f"p-{v}.tar.gz", v) for v in ("2.0", "1.0.0", "1.0", "v10", "junk", "1.0rc1")]
    body = render_project("p", "p", files, serial=1, media_type=JSON_V1, files_prefix="/r/files/")
    assert json.loads(body)["versions"] == ["1.0rc1", "1.0.0", "2.0", "10"]


def test_html_page_escapes_attributes_and_quotes_urls() -> None:
    text = render_project("Odd_Proj", "odd-proj", FILES, serial=7, media_type=HTML, files_prefix="/r/files/")
    text = text.decode()
    assert 'data-requires-python="&gt;=3.8, &lt;4 &amp; &quot;x&quot;"' in text
    assert 'data-yanked=""' in text and 'data-yanked="bad &lt;x&gt; &amp; &quot;y&quot;"' in text
    assert text.count("data-yanked") == 2, "a reason without the yanked flag is not a yank"
    plus = FILES[2]
    assert (
        f'href="/r/files/{plus.sha256}/odd_proj-2.0%2Blocal.1-py3-none-any.whl#sha256={plus.sha256}"' in text
    )
    odd = FILES[7]
    assert f"/{quote(odd.filename)}#sha256=" in text and ">odd_proj-ünï cøde-1!0.1.tar.gz</a>" in text
    assert f'data-core-metadata="sha256={"a" * 64}" data-dist-info-metadata="sha256={"a" * 64}"' in text
    assert 'data-core-metadata="true"' in text, "stored wheel: metadata offered without a known digest"
    assert f'data-core-metadata="sha256={"d" * 64}"' in text
    assert text.count("data-core-metadata") == 3, "sdists and wheels not stored offer none"
    assert "<!--SERIAL 7-->" in text and "<h1>Links for Odd_Proj</h1>" in text


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime(2024, 4, 9, 12, 0, tzinfo=UTC), id="whole-second"),
        pytest.param(datetime(2024, 4, 9, 12, 0, 1, 5, tzinfo=UTC), id="microseconds"),
        pytest.param(datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=_IST), id="other-zone"),
    ],
)
def test_the_page_query_writes_upload_times_as_the_renderer_would(catalog, moment: datetime) -> None:
    catalog.create_repository("r")
    repo = catalog.get_repository("r")
    writer = ContentWriter(catalog)
    packages = [
        new_package(
            filename, name="Odd_Proj", size=1, upload_time=when, url=f"https://index.example/{filename}"
        )
        for filename, when in (("odd_proj-1.0.tar.gz", moment), ("odd_proj-1.0.zip", None))
    ]
    writer.stage("s", repo.id, writer.upsert_packages(packages).values())
    writer.commit_version(repository="r", sync_id="s", mirror=False)
    files = ServingCatalog(catalog).project_files(repo.id, 1, "odd-proj")
    assert [(f.filename, f.upload_time) for f in files] == [
        ("odd_proj-1.0.tar.gz", upload_time(moment)),
        ("odd_proj-1.0.zip", None),
    ]
    assert upload_time(moment).endswith("Z") and len(upload_time(moment)) == len(
        "2024-04-09T12:00:00.000000Z"
    )
