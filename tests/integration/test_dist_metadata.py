"""The metadata source over loopback: PEP 658 file, ranged wheel, whole wheel, sdist PKG-INFO, cache.

One fixture index (module scope) serves every file twice: once answering ``Range`` (206), once
ignoring it (200), as a plain static server does. Requests are counted per path by the server.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from functools import partial
from pathlib import Path

import httpx
import pytest

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index, metadata_text
from mirrorflow.fixtureindex.server import RunningIndex, serve_index
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.dependency_cache import DependencyStore
from mirrorflow.tasks import clients
from mirrorflow.tasks.clients import reader_connection
from mirrorflow.tasks.config import HttpSpec, StoreSpec
from mirrorflow.tasks.dist_metadata import DependencyReader
from mirrorflow.tasks.distributions import DistFile
from mirrorflow.tasks.index_client import IndexClient, build_http_client

REQUIRES = ("attrs>=22", "idna; extra == 'net'")
FILLER = 1024 * 1024  # incompressible bytes in the big wheel: what the ranged read must not fetch


def _wheel(name: str, version: str, *, filler: int = 0, zip64: bool = False) -> tuple[str, bytes]:
    dist_info = f"{name}-{version}.dist-info"
    buffer = io.BytesIO()
    limit = zipfile.ZIP_FILECOUNT_LIMIT
    if zip64:  # zipfile writes zip64 end records for more members than this
        zipfile.ZIP_FILECOUNT_LIMIT = 1  # type: ignore[misc]
    try:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{name}/__init__.py", "")
            if filler:
                archive.writestr(f"{name}/blob.bin", os.urandom(filler), compress_type=zipfile.ZIP_STORED)
            archive.writestr(f"{dist_info}/METADATA", metadata_text(name, version, requires_dist=REQUIRES))
            archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\n")
            archive.writestr(f"{dist_info}/RECORD", "")
    finally:
        zipfile.ZIP_FILECOUNT_LIMIT = limit  # type: ignore[misc]
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


def _sdist(name: str, version: str, pkg_info: str, *, zipped: bool = False) -> tuple[str, bytes]:
    base = f"{name}-{version}"
    members = {f"{base}/setup.py": "raise SystemExit('never built')\n", f"{base}/PKG-INFO": pkg_info}
    if zipped:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path, text in members.items():
                archive.writestr(path, text)
        return f"{base}.zip", buffer.getvalue()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", gzip.compress(raw.getvalue(), mtime=0)


def _pkg_info(version: str, *lines: str) -> str:
    return "\n".join([f"Metadata-Version: {version}", "Name: s", "Version: 1.0", *lines]) + "\n\n"


FILES = {
    "big": _wheel("big", "1.0", filler=FILLER),
    "zip64": _wheel("zsixtyfour", "1.0", zip64=True),
    "static": _sdist("static", "1.0", _pkg_info("2.2", "Requires-Dist: attrs>=22")),
    "static-zip": _sdist("staticzip", "1.0", _pkg_info("2.4"), zipped=True),
    "dynamic": _sdist("dynamic", "1.0", _pkg_info("2.2", "Dynamic: Requires-Dist", "Requires-Dist: a")),
    "old": _sdist("old", "1.0", _pkg_info("2.1", "Requires-Dist: attrs")),
}


class Served:
    def __init__(self, ranged: RunningIndex, plain: RunningIndex) -> None:
        self.ranged, self.plain = ranged, plain

    def dist(
        self, key: str, *, ranged: bool, metadata: bool = False, sha256: str | None = "right"
    ) -> DistFile:
        """The file ``key`` as a page lists it (without its .metadata unless ``metadata``)."""
        filename, content = FILES[key]
        digest = hashlib.sha256(content).hexdigest()
        server = self.ranged if ranged else self.plain
        url = f"{server.base_url}files/{digest[:2]}/{filename}"
        return DistFile(filename, url, digest if sha256 == "right" else sha256, core_metadata=metadata)  # type: ignore[arg-type]

    def path(self, key: str, suffix: str = "") -> str:
        filename, content = FILES[key]
        return f"/files/{hashlib.sha256(content).hexdigest()[:2]}/{filename}{suffix}"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    root = Path(tmp_path_factory.mktemp("dist-metadata")) / "index"
    projects = [FixtureProject(key, [FixtureFile(*FILES[key])]) for key in FILES]
    build_index(projects, root)
    with serve_index(root, ranges=True) as ranged, serve_index(root, ranges=False) as plain:
        yield Served(ranged, plain)


@pytest.fixture
def cache(sqlite_url) -> DependencyStore:
    """The catalog's cache on SQLite (tests/integration/test_dependency_cache.py runs both catalogs)."""
    catalog = Catalog.from_url(sqlite_url)
    yield DependencyStore(catalog)
    catalog.dispose()


def _read(reader: DependencyReader, dist: DistFile, **overrides):
    fields = {
        "filename": dist.filename,
        "url": dist.url,
        "sha256": dist.sha256,
        "metadata_url": f"{dist.url}.metadata" if dist.core_metadata else None,
    }
    return reader.read(**{**fields, **overrides})


def test_metadata_file_is_read_from_the_page_and_the_wheel_never(served, index_http_client):
    page = IndexClient(served.plain.url, client=index_http_client).get_project("big")
    assert page.files[0].core_metadata_sha256 is not None  # the page gave the .metadata's digest
    before = served.plain.hits.copy()
    [deps] = DependencyReader(index_http_client).read_many(page.files)
    assert (deps.requires_dist, deps.source) == (REQUIRES, "metadata-file")
    hits = served.plain.hits - before
    assert hits == {served.path("big", ".metadata"): 1}


def test_wheel_metadata_by_ranges_fetches_a_fraction_of_the_wheel(served, index_http_client):
    reader = DependencyReader(index_http_client)
    before = served.ranged.hits[served.path("big")]
    deps = _read(reader, served.dist("big", ranged=True))
    assert (deps.requires_dist, deps.source) == (REQUIRES, "wheel-range")
    assert served.ranged.hits[served.path("big")] - before == reader.stats.requests <= 3
    assert reader.stats.bytes_received < 200 * 1024 < FILLER < len(FILES["big"][1])
    # A tail too short for the directory: the directory, then the member, each its own range.
    short = DependencyReader(index_http_client, tail_bytes=64)
    assert _read(short, served.dist("big", ranged=True)).source == "wheel-range"
    assert short.stats.requests == 3 and short.stats.bytes_received < 200 * 1024


def test_zip64_wheel_by_ranges(served, index_http_client):
    deps = _read(DependencyReader(index_http_client), served.dist("zip64", ranged=True))
    assert (deps.requires_dist, deps.source) == (REQUIRES, "wheel-range")


def test_server_ignoring_range_gives_the_whole_wheel_in_one_request(served, index_http_client):
    reader = DependencyReader(index_http_client)
    before = served.plain.hits[served.path("big")]
    deps = _read(reader, served.dist("big", ranged=False))
    assert (deps.requires_dist, deps.source) == (REQUIRES, "wheel-download")
    assert served.plain.hits[served.path("big")] - before == 1  # the 200 answer was the download
    assert reader.stats.bytes_received == len(FILES["big"][1])


@pytest.mark.parametrize(
    ("key", "requires", "reason_part"),
    [
        pytest.param("static", ("attrs>=22",), "", id="tar-gz-2.2-static"),
        pytest.param("static-zip", (), "", id="zip-2.4-no-deps"),
        pytest.param("dynamic", None, "Dynamic", id="dynamic-unknown"),
        pytest.param("old", None, "'2.1' (before 2.2)", id="2.1-unknown"),
    ],
)
def test_sdist_pkg_info(served, index_http_client, key, requires, reason_part):
    deps = _read(DependencyReader(index_http_client), served.dist(key, ranged=False))
    assert deps.requires_dist == requires
    assert deps.source == ("sdist-pkg-info" if requires is not None else "unknown")
    assert reason_part in deps.reason


def test_a_resync_reads_from_the_cache_without_a_request(served, index_http_client, cache):
    files = [served.dist(key, ranged=True) for key in FILES]
    first = DependencyReader(index_http_client, cache).read_many(files)
    assert [d.source for d in first] == [
        "wheel-range", "wheel-range", "sdist-pkg-info", "sdist-pkg-info", "unknown", "unknown"
    ]  # fmt: skip
    before = served.ranged.hits.copy()
    again = DependencyReader(index_http_client, cache)
    second = again.read_many(files)
    one = _read(again, files[0])
    assert served.ranged.hits == before and again.stats.requests == 0
    assert {d.source for d in [*second, one]} == {"cache"}
    assert [(d.requires_dist, d.reason) for d in second] == [(d.requires_dist, d.reason) for d in first]


def test_metadata_file_digest_mismatch_is_unknown_and_not_cached(served, index_http_client, cache):
    dist = served.dist("big", ranged=False, metadata=True)
    reader = DependencyReader(index_http_client, cache)
    deps = _read(reader, dist, metadata_sha256="0" * 64)
    assert deps.requires_dist is None and deps.source == "unknown"
    assert "does not match its sha256" in deps.reason
    assert cache.get_many([dist.sha256]) == {}  # a resync tries again


def test_downloaded_wheel_digest_mismatch_is_unknown(served, index_http_client):
    deps = _read(DependencyReader(index_http_client), served.dist("big", ranged=False, sha256="f" * 64))
    assert deps.requires_dist is None and "does not match its sha256" in deps.reason


def test_missing_metadata_file_falls_back_to_the_wheel(served, index_http_client):
    dist = served.dist("static", ranged=False)
    deps = _read(DependencyReader(index_http_client), dist, metadata_url=f"{dist.url}.nothing")
    assert deps.source == "sdist-pkg-info"


def test_download_cap_is_unknown_with_the_reason(served, index_http_client):
    reader = DependencyReader(index_http_client, max_download_bytes=1000)
    deps = _read(reader, served.dist("big", ranged=False))
    assert deps.requires_dist is None and "download cap" in deps.reason
    assert reader.stats.bytes_received == 0  # refused on Content-Length, before the body


def test_other_files_are_unknown_without_a_request(index_http_client):
    reader = DependencyReader(index_http_client)
    deps = reader.read(
        filename="a-1.0.egg", url="http://127.0.0.1:9/a-1.0.egg", sha256=None, metadata_url=None
    )
    assert deps.requires_dist is None and "neither a wheel nor" in deps.reason
    assert reader.stats.requests == 0


def test_a_reader_pickles_and_the_copy_builds_its_client_in_the_receiving_process(
    served, index_http_client, sqlite_url, tmp_path
):
    # As a Dask worker receives it: the copy holds no client until its first read, then takes this
    # process's services for the sync's key (one HTTP client, the catalog's cache), built once.
    http = HttpSpec(index_url=served.ranged.url, concurrency=2, max_page_bytes=1 << 20)
    key = (sqlite_url, StoreSpec(root=str(tmp_path / "artifacts")), http)
    reader = DependencyReader(
        index_http_client, index_url=served.ranged.url, attempts=2, connect=partial(reader_connection, key)
    )
    dist = served.dist("static", ranged=True)
    try:
        copy = pickle.loads(pickle.dumps(reader))
        assert copy is not reader and copy._files is None and clients._built == {}, (
            "unpickling builds nothing"
        )
        assert (copy.attempts, copy.tail_bytes) == (2, reader.tail_bytes)
        first = _read(copy, dist)
        assert (first.requires_dist, first.source) == (("attrs>=22",), "sdist-pkg-info")
        assert copy.stats.requests == 1 and list(clients._built) == [key]
        second = pickle.loads(pickle.dumps(reader))
        assert _read(second, dist).source == "cache", "the copy's cache is the key's catalog"
        assert second._files is not None and second._files.http is copy._files.http, "one client per process"
        assert second.stats.requests == 0
    finally:
        for services in clients._built.values():
            services.index.http.close()
            services.writer.catalog.dispose()
        clients._built.clear()
    with pytest.raises(TypeError, match="without connect"):
        pickle.dumps(DependencyReader(index_http_client))


def _mock_reader(handle, cache=None, **options) -> DependencyReader:
    return DependencyReader(build_http_client(transport=httpx.MockTransport(handle)), cache, **options)


def test_a_server_that_honours_only_the_first_range_gets_the_checked_download():
    filename, content = _wheel("mixed", "1.0", filler=200 * 1024)
    asked: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Range"))
        if len(asked) == 1:  # the tail, as asked; then every later request gets the whole file
            tail = content[-64:]
            headers = {"Content-Range": f"bytes {len(content) - 64}-{len(content) - 1}/{len(content)}"}
            return httpx.Response(206, content=tail, headers=headers)
        return httpx.Response(200, content=content)

    reader = _mock_reader(handle, tail_bytes=64)
    deps = reader.read(
        filename=filename,
        url=f"https://index.example/f/{filename}",
        sha256=hashlib.sha256(content).hexdigest(),
        metadata_url=None,
    )
    assert (deps.requires_dist, deps.source) == (REQUIRES, "wheel-download")
    assert asked[0] == "bytes=-64" and asked[-1] is None  # the last request: a plain download


def test_an_upstream_failure_is_unknown_and_not_cached(cache):
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503)

    digest = "a" * 64
    fields = {"filename": "a-1.0-py3-none-any.whl", "url": "https://index.example/f/a-1.0-py3-none-any.whl"}
    deps = _mock_reader(handle, cache, attempts=1).read(**fields, sha256=digest, metadata_url=None)
    assert deps.requires_dist is None and "503" in deps.reason
    assert cache.get_many([digest]) == {}
    _mock_reader(handle, cache, attempts=1).read(**fields, sha256=digest, metadata_url=None)
    assert len(calls) == 2  # the resync asked again


def test_a_server_refusing_the_range_form_with_416_gets_the_download():
    filename, content = _wheel("refuser", "1.0")

    def handle(request: httpx.Request) -> httpx.Response:
        if "Range" in request.headers:
            return httpx.Response(416)
        return httpx.Response(200, content=content)

    deps = _mock_reader(handle).read(
        filename=filename, url=f"https://index.example/f/{filename}", sha256=None, metadata_url=None
    )
    assert (deps.requires_dist, deps.source) == (REQUIRES, "wheel-download")
