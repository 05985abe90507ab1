"""``repository publish``: a version as static files, installed from by pip through ``http.server``."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from mirrorflow.fixtureindex.builder import make_wheel
from mirrorflow.server.publish import MARKER, PublishError, publish
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.serving import ServingCatalog


def _package(name: str, filename: str, body: bytes, packagetype: str = "bdist_wheel") -> NewPackage:
    return NewPackage(
        name=name, normalized_name=name, version="1.0", filename=filename, packagetype=packagetype,
        python_version="py3", requires_python=">=3.8", sha256=hashlib.sha256(body).hexdigest(),
        size=len(body), upload_time=datetime(2024, 1, 1, tzinfo=UTC), yanked=False, yanked_reason=None,
        metadata_sha256=None, has_metadata=False, url=f"https://index.example/{filename}",
    )  # fmt: skip


@pytest.fixture
def repository(sqlite_url, tmp_path) -> Iterator[tuple[ServingCatalog, FileSystemStore]]:
    """Repository ``r`` at version 1: two stored wheels; ``add_unstored`` adds a file never fetched."""
    catalog = Catalog.from_url(sqlite_url)
    store = FileSystemStore(tmp_path / "store")
    catalog.create_repository("r")
    writer = ContentWriter(catalog)
    packages, stored = [], []
    for name in ("mf-pub-a", "mf-pub-b"):
        filename, wheel = make_wheel(name, "1.0")
        artifact = store.put_chunks([wheel], sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel))
        packages.append(_package(name, filename, wheel))
        stored.append((artifact.sha256, artifact.size, artifact.key))
    ids = writer.upsert_packages(packages)
    writer.record_artifacts(stored)
    writer.stage("s1", catalog.get_repository("r").id, ids.values())
    writer.commit_version(repository="r", sync_id="s1", mirror=False)
    yield ServingCatalog(catalog), store
    catalog.dispose()


@pytest.fixture
def static_server() -> Iterator[callable]:
    """Serve a directory with the standard library's http.server; yields a function starting it."""
    servers: list[ThreadingHTTPServer] = []

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format, *args) -> None:  # noqa: A002
            pass

    def start(root: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.slow  # pip starts a Python of its own
def test_pip_installs_from_a_published_version_served_by_http_server(repository, tmp_path, static_server):
    serving, store = repository
    done = publish(serving, store, "r", None, tmp_path / "pub")
    assert (done.version, done.projects, done.files, done.metadata, done.linked) == (1, 2, 2, 2, 0)
    base = static_server(tmp_path / "pub")
    page = httpx.get(f"{base}/simple/mf-pub-a/index.v1_json").json()
    wheel = page["files"][0]
    assert wheel["url"].startswith("../../files/") and page["name"] == "mf-pub-a"
    metadata = httpx.get(f"{base}/simple/mf-pub-a/{wheel['url']}.metadata").content
    assert hashlib.sha256(metadata).hexdigest() == wheel["core-metadata"]["sha256"]
    assert b"Name: mf-pub-a" in metadata
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    target = tmp_path / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-cache-dir",
        "--target",
        str(target),
    ]
    command += ["--index-url", f"{base}/simple/", "mf-pub-a", "mf-pub-b"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (target / "mf_pub_a" / "__init__.py").is_file() and (target / "mf_pub_b" / "__init__.py").is_file()


def test_republishing_links_what_was_published_and_refusals_change_nothing(repository, tmp_path):
    serving, store = repository
    to = tmp_path / "pub"
    publish(serving, store, "r", 1, to)
    again = publish(serving, store, "r", 1, to)
    assert again.linked == again.files == 2, "the files; wheel metadata is read again"
    assert json.loads((to / MARKER).read_text())["version"] == 1
    before = sorted(str(p.relative_to(to)) for p in to.rglob("*"))
    with pytest.raises(PublishError, match="version 7"):
        publish(serving, store, "r", 7, to)
    with pytest.raises(PublishError, match="repository 'nope'"):
        publish(serving, store, "nope", None, to)
    writer = ContentWriter(serving.catalog)
    unstored = _package("mf-pub-c", "mf_pub_c-1.0.tar.gz", b"never fetched", packagetype="sdist")
    writer.stage("s2", serving.repository("r").id, writer.upsert_packages([unstored]).values())
    writer.commit_version(repository="r", sync_id="s2", mirror=False)
    with pytest.raises(PublishError, match=r"1 file\(s\) are not stored \(first: 'mf_pub_c-1.0.tar.gz'\)"):
        publish(serving, store, "r", None, to)
    assert sorted(str(p.relative_to(to)) for p in to.rglob("*")) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(PublishError, match="holds something other than a publication"):
        publish(serving, store, "r", 1, tmp_path / "other")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
