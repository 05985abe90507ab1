"""fixtureindex: real distributions, a static index tree, and the loopback server (and pip using it)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from packaging.tags import Tag
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from mirrorflow.fixtureindex.__main__ import main
from mirrorflow.fixtureindex.builder import (
    FixtureFile,
    FixtureProject,
    build_index,
    make_legacy,
    make_sdist,
    make_wheel,
)
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import JSON_TYPE, RunningIndex, choose_format, serve_index
from mirrorflow.tasks.simple import parse_listing_json, parse_project_html, parse_project_json

# -- distributions ----------------------------------------------------------------------------------


def test_wheel_is_well_formed_and_deterministic() -> None:
    filename, content = make_wheel(
        "mf-demo.app",
        "1.0",
        python_tag="cp39",
        abi_tag="cp39",
        platform_tag="manylinux_2_17_x86_64.manylinux2014_x86_64",
        requires_dist=["mf-demo-lib>=1.0"],
        requires_python=">=3.8",
    )
    assert filename == "mf_demo_app-1.0-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    name, version, _, tags = parse_wheel_filename(filename)
    assert (name, version) == ("mf-demo-app", Version("1.0"))
    assert Tag("cp39", "cp39", "manylinux2014_x86_64") in tags
    assert make_wheel("mf-demo.app", "1.0", python_tag="cp39", abi_tag="cp39",
                      platform_tag="manylinux_2_17_x86_64.manylinux2014_x86_64",
                      requires_dist=["mf-demo-lib>=1.0"], requires_python=">=3.8")[1] == content  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = {member: archive.read(member) for member in archive.namelist()}
    dist_info = "mf_demo_app-1.0.dist-info"
    assert set(members) == {
        "mf_demo_app/__init__.py",
        *(f"{dist_info}/{n}" for n in ("METADATA", "WHEEL", "RECORD")),
    }
    metadata = members[f"{dist_info}/METADATA"].decode()
    assert "Name: mf-demo.app\n" in metadata and "Requires-Dist: mf-demo-lib>=1.0\n" in metadata
    assert "Requires-Python: >=3.8\n" in metadata and metadata.startswith("Metadata-Version: 2.1\n")
    wheel = members[f"{dist_info}/WHEEL"].decode()
    assert (
        "Tag: cp39-cp39-manylinux2014_x86_64\n" in wheel and "Tag: cp39-cp39-manylinux_2_17_x86_64\n" in wheel
    )
    for line in members[f"{dist_info}/RECORD"].decode().splitlines():
        path, digest, size = line.split(",")
        if path.endswith("RECORD"):
            assert (digest, size) == ("", "")
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(members[path]).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={expected}", len(members[path]))


def test_sdist_is_well_formed_and_deterministic() -> None:
    filename, content = make_sdist("shelf-reader", "0.1", requires_dist=["click>=6"], requires_python=">=3.8")
    assert filename == "shelf-reader-0.1.tar.gz"
    assert parse_sdist_filename(filename) == ("shelf-reader", Version("0.1"))
    assert (
        make_sdist("shelf-reader", "0.1", requires_dist=["click>=6"], requires_python=">=3.8")[1] == content
    )
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        names = archive.getnames()
        pyproject = archive.extractfile("shelf-reader-0.1/pyproject.toml").read().decode()  # type: ignore[union-attr]
        pkg_info = archive.extractfile("shelf-reader-0.1/PKG-INFO").read().decode()  # type: ignore[union-attr]
    assert sorted(names) == [
        "shelf-reader-0.1/PKG-INFO",
        "shelf-reader-0.1/pyproject.toml",
        "shelf-reader-0.1/shelf_reader/__init__.py",
    ]
    assert 'build-backend = "setuptools.build_meta"' in pyproject and '"click>=6"' in pyproject
    assert "Version: 0.1\n" in pkg_info and "Requires-Python: >=3.8\n" in pkg_info


@pytest.mark.parametrize(
    "filename", ["demo-1.0-py2.7.egg", "demo-1.0.win32.exe", "demo-1.0.msi", "demo-1.0.dmg"]
)
def test_legacy_files_are_distinct_stable_bytes(filename: str) -> None:
    assert make_legacy(filename) == make_legacy(filename) != make_legacy("other.rpm")


# -- the static tree --------------------------------------------------------------------------------


def test_build_index_layout_and_pages(tmp_path: Path) -> None:
    wheel_name, wheel = make_wheel("Demo", "1.0")
    legacy = make_legacy("Demo-0.9.win32.exe")
    uploaded = datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)
    project = FixtureProject(
        "Demo",
        [
            FixtureFile("Demo-0.9.win32.exe", legacy, yanked=True),
            FixtureFile(wheel_name, wheel, requires_python="<4,>=3.8", upload_time=uploaded),
        ],
    )
    index = build_index([project, FixtureProject("other", [])], tmp_path)
    assert (index.last_serial, index.serials) == (2, {"demo": 2, "other": 2})
    digest = hashlib.sha256(wheel).hexdigest()
    assert (tmp_path / "files" / digest[:2] / wheel_name).read_bytes() == wheel
    metadata = (tmp_path / "files" / digest[:2] / f"{wheel_name}.metadata").read_bytes()
    assert metadata.startswith(b"Metadata-Version: 2.1\nName: Demo\n")

    page_url = "http://127.0.0.1:1/simple/demo/"
    from_json = parse_project_json((tmp_path / "simple/demo/index.json").read_bytes(), page_url=page_url)
    from_html = parse_project_html((tmp_path / "simple/demo/index.html").read_text(), page_url=page_url)
    assert from_json.versions == ("1.0",)  # the .exe has no parseable version
    assert (from_json.last_serial, from_html.last_serial, from_html.display_name) == (2, 2, "Demo")
    exe, whl = from_json.files
    assert whl.url == f"http://127.0.0.1:1/files/{digest[:2]}/{wheel_name}"
    assert (whl.sha256, whl.size, whl.upload_time, whl.requires_python) == (
        digest,
        len(wheel),
        uploaded,
        "<4,>=3.8",
    )
    assert whl.core_metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert (exe.yanked, exe.yanked_reason, exe.core_metadata) == (True, None, False)
    assert [f.url for f in from_html.files] == [f.url for f in from_json.files]
    assert from_html.files[1].requires_python == "<4,>=3.8"

    listing = parse_listing_json((tmp_path / "simple/index.json").read_bytes(), page_url="http://h/simple/")
    assert [(p.display_name, p.last_serial) for p in listing.projects] == [("Demo", 2), ("other", 2)]


def test_build_index_writes_the_legacy_json_api(tmp_path: Path) -> None:
    wheel_name, wheel = make_wheel("Demo", "1.0")
    uploaded = datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)
    project = FixtureProject(
        "Demo",
        [
            FixtureFile("Demo-0.9.win32.exe", make_legacy("Demo-0.9.win32.exe"), yanked="old"),
            FixtureFile(wheel_name, wheel, requires_python=">=3.8", upload_time=uploaded),
        ],
    )
    build_index([project], tmp_path)
    document = json.loads((tmp_path / "pypi/demo/json").read_text())
    assert (document["info"]["name"], document["info"]["version"], document["last_serial"]) == (
        "Demo",
        "1.0",
        2,
    )
    exe, whl = document["releases"]["0.9.win32"][0], document["releases"]["1.0"][0]
    assert document["urls"] == [whl], "the files of info.version"
    digest = hashlib.sha256(wheel).hexdigest()
    assert whl["url"] == f"/packages/{digest[:2]}/{wheel_name}", "a server path; the server makes it absolute"
    assert (whl["digests"]["sha256"], whl["size"], whl["packagetype"], whl["python_version"]) == (
        digest,
        len(wheel),
        "bdist_wheel",
        "py3",
    )
    assert (whl["upload_time_iso_8601"], whl["requires_python"], whl["yanked"]) == (
        "2021-02-03T04:05:06.000000Z",
        ">=3.8",
        False,
    )
    assert (exe["packagetype"], exe["yanked"], exe["yanked_reason"]) == ("bdist_wininst", True, "old")
    assert "upload_time_iso_8601" not in exe, "no upload time is invented"


def test_build_index_refuses_duplicate_projects(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'Foo.Bar' appears twice"):
        build_index([FixtureProject("foo-bar", []), FixtureProject("Foo.Bar", [])], tmp_path)


def test_seed_catalog() -> None:
    projects = {project.name: project for project in seed_projects()}
    assert list(projects) == ["shelf-reader", "Django", "pip-tools", "scipy", "mf-demo-lib", "mf-demo-app"]
    assert [f.filename for f in projects["shelf-reader"].files] == [
        "shelf-reader-0.1.tar.gz",
        "shelf_reader-0.1-py2-none-any.whl",
    ]

    def versions(name: str) -> list[str]:
        found = {
            str(parse_wheel_filename(f.filename)[1])
            for f in projects[name].files
            if f.filename.endswith(".whl")
        }
        return sorted(found, key=Version)

    assert versions("Django") == ["1.11", "1.11.29", "2.0", "2.0.1", "2.0.2", "2.1", "2.2.28", "3.0a1", "3.0"]
    assert len(projects["Django"].files) == 18
    assert versions("pip-tools") == ["1.11.0", "1.12.0", "1.12.1", "2.0.0", "2.0.2", "3.0.0"]
    assert len(projects["scipy"].files) == 12
    assert any(f.filename == "scipy-1.6.0rc1-cp39-cp39-win_amd64.whl" for f in projects["scipy"].files)
    yanked = [(f.filename, f.yanked) for f in projects["mf-demo-lib"].files if f.yanked]
    assert yanked == [("mf_demo_lib-2.1-py3-none-any.whl", "broken")]
    times = [f.upload_time for p in projects.values() for f in p.files]
    assert all(t is not None and 2020 <= t.year <= 2024 for t in times)
    again = [f.content for p in seed_projects() for f in p.files]
    assert again == [f.content for p in projects.values() for f in p.files]  # reproducible bytes


# -- the server -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param(None, "text/html", id="no-accept"),
        pytest.param("*/*", "text/html", id="anything"),
        pytest.param("text/html", "text/html", id="html"),
        pytest.param(JSON_TYPE, JSON_TYPE, id="json"),
        pytest.param(f"{JSON_TYPE}, text/html;q=0.1", JSON_TYPE, id="json-preferred"),
        pytest.param(f"{JSON_TYPE};q=0.5, text/html", "text/html", id="html-preferred"),
        pytest.param(f"{JSON_TYPE}, text/html", "text/html", id="tie-goes-to-html"),
        pytest.param(
            "application/*", "application/vnd.pypi.simple.v1+html", id="application-wildcard-tie-is-html"
        ),
        pytest.param(f"{JSON_TYPE};q=0, */*", "text/html", id="json-refused"),
        pytest.param(
            "application/vnd.pypi.simple.v1+html, text/html;q=0.01",
            "application/vnd.pypi.simple.v1+html",
            id="v1-html",
        ),
        pytest.param(f"{JSON_TYPE};q=bad, text/html;q=0.1", "text/html", id="garbled-q-is-zero"),
    ],
)
def test_choose_format(accept: str | None, expected: str) -> None:
    assert choose_format(accept) == expected


@pytest.mark.parametrize(
    ("mode", "accept", "expected"),
    [
        pytest.param("html-only", JSON_TYPE, "text/html", id="html-only"),
        pytest.param("json-only", "text/html", JSON_TYPE, id="json-only"),
    ],
)
def test_choose_format_modes(mode: str, accept: str, expected: str) -> None:
    assert choose_format(accept, mode) == expected  # type: ignore[arg-type]


def test_server_pages_headers_and_redirects(seed_index: RunningIndex) -> None:
    with httpx.Client(base_url=seed_index.base_url) as http:
        page = http.get("/simple/django/", headers={"Accept": JSON_TYPE})
        assert page.headers["Content-Type"] == JSON_TYPE
        serial = json.loads(page.content)["meta"]["_last-serial"]
        assert page.headers["X-PyPI-Last-Serial"] == str(serial)
        assert http.get("/simple/django/").headers["Content-Type"] == "text/html; charset=utf-8"
        redirect = http.get("/simple/Django")
        assert (redirect.status_code, redirect.headers["Location"]) == (301, "/simple/django/")
        assert http.get("/simple").headers["Location"] == "/simple/"
        assert http.get("/simple/nope/").status_code == 404
        assert http.get("/elsewhere").status_code == 404
        head = http.head("/simple/scipy/")
        assert (head.status_code, head.content) == (200, b"")
        assert int(head.headers["Content-Length"]) > 0
    assert seed_index.hits["/simple/Django"] == 1


def test_server_files_and_path_traversal(seed_index: RunningIndex) -> None:
    project = json.loads((seed_index.root / "simple/shelf-reader/index.json").read_text())
    relative = project["files"][0]["url"].removeprefix("../../")
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(seed_index.base_url.rsplit(":", 1)[1].strip("/"))
    )
    try:
        for path, status in [
            (f"/{relative}", 200),
            ("/files/../index-state.json", 404),
            ("/files/%2e%2e/index-state.json", 404),
            ("/files/00/missing.whl", 404),
        ]:
            connection.request("GET", path)  # one keep-alive connection for all four
            response = connection.getresponse()
            response.read()
            assert response.status == status, path
    finally:
        connection.close()
    assert (
        hashlib.sha256((seed_index.root / relative).read_bytes()).hexdigest()
        == project["files"][0]["hashes"]["sha256"]
    )


def test_server_legacy_json_api(seed_index: RunningIndex) -> None:
    with httpx.Client(base_url=seed_index.base_url) as http:
        answer = http.get("/pypi/django/json")
        assert answer.headers["Content-Type"] == "application/json"
        document = answer.json()
        page = json.loads((seed_index.root / "simple/django/index.json").read_text())
        assert answer.headers["X-PyPI-Last-Serial"] == str(document["last_serial"])
        assert document["last_serial"] == page["meta"]["_last-serial"]
        assert sorted(document["releases"], key=Version) == page["versions"]
        files = [file for release in document["releases"].values() for file in release]
        assert sorted(f["filename"] for f in files) == sorted(f["filename"] for f in page["files"])
        first = files[0]
        assert first["url"].startswith(f"{seed_index.base_url}packages/")
        body = http.get(first["url"]).content
        assert hashlib.sha256(body).hexdigest() == first["digests"]["sha256"]
        assert all(file["url"].startswith(seed_index.base_url) for file in document["urls"])
        assert http.get("/pypi/Django/json").headers["Location"] == "/pypi/django/json"
        assert http.get("/pypi/nope/json").status_code == 404


def test_server_stop_closes_idle_keepalive_connections(tmp_path: Path) -> None:
    build_index([FixtureProject("demo", [])], tmp_path)
    running = serve_index(tmp_path, mode="json-only")
    with httpx.Client() as http, running:
        response = http.get(running.url, headers={"Accept": "text/html"})
        assert response.headers["Content-Type"] == JSON_TYPE
    # The pooled connection was still open when the server stopped: stop() must not hang on it.
    running.stop()  # idempotent


def test_serve_index_rejects_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'xml-only'"):
        serve_index(tmp_path, mode="xml-only")  # type: ignore[arg-type]


def test_cli_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--root", str(tmp_path)]) == 0
    assert "built 6 projects" in capsys.readouterr().out
    assert (tmp_path / "simple/mf-demo-app/index.json").is_file()


# -- pip, for real ----------------------------------------------------------------------------------


def _pip_env() -> dict[str, str]:
    # This machine's pip configuration adds local indexes and find-links: keep pip on ours only.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


@pytest.mark.slow
def test_pip_installs_demo_app_from_the_served_index(seed_index: RunningIndex, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", "--only-binary", ":all:",
         "--index-url", seed_index.url, "mf-demo-app"],
        check=True, env=_pip_env(), timeout=120, capture_output=True,
    )  # fmt: skip
    probe = "import mf_demo_app, mf_demo_lib; print(mf_demo_app.__version__, mf_demo_lib.__version__)"
    versions = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True)
    assert versions.stdout.split() == ["1.0", "2.0"]  # 2.1 is yanked: pip passes it over


def _setuptools_builds_wheels() -> bool:
    # setuptools builds wheels itself from 70.1 on; before that it needs the ``wheel`` package.
    try:
        import setuptools
    except ImportError:
        return False
    return Version(setuptools.__version__) >= Version("70.1") or importlib.util.find_spec("wheel") is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not _setuptools_builds_wheels(), reason="this venv's setuptools cannot build wheels offline"
)
def test_sdist_builds_with_setuptools(tmp_path: Path) -> None:
    filename, content = make_sdist("mf-demo-lib", "1.0", requires_dist=["packaging"])
    (tmp_path / filename).write_bytes(content)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "-w", str(tmp_path / "out"), str(tmp_path / filename)],
        check=True, env=_pip_env(), timeout=120, capture_output=True,
    )  # fmt: skip
    (built,) = (tmp_path / "out").iterdir()
    assert parse_wheel_filename(built.name)[:2] == ("mf-demo-lib", Version("1.0"))
