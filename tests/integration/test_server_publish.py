"""``repository publish``: a version as static files (read by pip, uv and pypi-simple through nginx on
the generated ``nginx.conf``, or ``http.server``), or as objects in an S3 bucket (moto on loopback)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
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
from mirrorflow.server.pages import API_VERSION
from mirrorflow.server.publish import MARKER, PublishError, publish
from mirrorflow.storage.artifacts import ArtifactNotFound
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


def add_version(
    serving: ServingCatalog, store: FileSystemStore, names: tuple[str, ...], sync_id: str
) -> None:
    """Commit the next version of ``r``: what it held plus a stored wheel of each of ``names``."""
    writer = ContentWriter(serving.catalog)
    packages, stored = [], []
    for name in names:
        filename, wheel = make_wheel(name, "1.0")
        artifact = store.put_chunks([wheel], sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel))
        packages.append(_package(name, filename, wheel))
        stored.append((artifact.sha256, artifact.size, artifact.key))
    ids = writer.upsert_packages(packages)
    writer.record_artifacts(stored)
    writer.stage(sync_id, serving.catalog.get_repository("r").id, ids.values())
    writer.commit_version(repository="r", sync_id=sync_id, mirror=False)


@pytest.fixture
def repository(sqlite_url, tmp_path) -> Iterator[tuple[ServingCatalog, FileSystemStore]]:
    """Repository ``r`` at version 1: two stored wheels."""
    catalog = Catalog.from_url(sqlite_url)
    store = FileSystemStore(tmp_path / "store")
    catalog.create_repository("r")
    serving = ServingCatalog(catalog)
    add_version(serving, store, ("mf-pub-a", "mf-pub-b"), "s1")
    yield serving, store
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
def test_pip_installs_from_a_published_version_served_statically(
    repository, tmp_path, static_server, nginx_server
):
    """Through nginx on the publication's nginx.conf (pip then reads the JSON pages) when installed,
    else through http.server (the HTML ``index.html``)."""
    serving, store = repository
    done = publish(serving, store, "r", None, tmp_path / "pub")
    assert (done.version, done.projects, done.files, done.metadata, done.linked) == (1, 2, 2, 2, 0)
    base = static_server(tmp_path / "pub") if _nginx_missing() else nginx_server(tmp_path / "pub")
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
    assert (again.files, again.metadata, again.linked, again.written) == (2, 2, 4, 0), "all linked"
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


def _tree(root: Path) -> dict[str, int]:
    """Every file under ``root`` (through the link), by relative path, with its inode."""
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def test_a_new_version_republished_writes_only_what_changed_and_links_the_rest(repository, tmp_path):
    serving, store = repository
    to = tmp_path / "pub"
    first = publish(serving, store, "r", None, to)
    # 2 wheels + 2 .metadata + 3 pages x (2 projects + the listing) + nginx.conf + the marker
    assert (first.written, first.linked, first.pages_linked) == (15, 0, 0)
    assert to.is_symlink() and to.resolve() == first.tree
    old = _tree(to)
    add_version(serving, store, ("mf-pub-c",), "s2")
    second = publish(serving, store, "r", None, to)
    assert (second.version, second.projects, second.files, second.metadata) == (2, 3, 3, 3)
    # written: c's wheel + .metadata, c's 3 pages, the listing's 3 pages, the marker
    assert (second.written, second.linked, second.pages_linked) == (9, 4, 7)
    new = _tree(to)
    assert to.resolve() == second.tree and first.tree.is_dir(), "the tree before is kept for its readers"
    shared = {path for path in old if new.get(path) == old[path]}  # the same inode: linked, not written
    unchanged = {
        path for path in old if path.startswith(("files/", "simple/mf-pub-")) or path == "nginx.conf"
    }
    assert shared == unchanged and len(shared) == 11
    assert b"mf-pub-c" in (to / "simple" / "index.html").read_bytes()
    third = publish(serving, store, "r", 1, to)
    assert not first.tree.exists() and second.tree.is_dir() and to.resolve() == third.tree
    assert b"mf-pub-c" not in (to / "simple" / "index.html").read_bytes()
    assert f"root {os.path.abspath(to)};" in (to / "nginx.conf").read_text(), "nginx follows the link"


def test_readers_always_find_a_complete_tree_and_a_failed_publish_changes_nothing(repository, tmp_path):
    serving, store = repository
    to = tmp_path / "pub"
    publish(serving, store, "r", None, to)
    add_version(serving, store, ("mf-pub-c",), "s2")
    stop, seen, errors = threading.Event(), set(), []

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(json.loads((to / MARKER).read_text())["version"])
                (to / "simple" / "mf-pub-a" / "index.html").read_bytes()
                (to / "nginx.conf").read_bytes()
            except OSError as exc:  # pragma: no cover - the failure this test looks for
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for number in (2, 1, 2, 1, 2):
            publish(serving, store, "r", number, to)
    finally:
        stop.set()
        reader.join()
    assert errors == [] and seen <= {1, 2}
    trees = sorted(p.name for p in to.with_name(".pub.trees").iterdir() if p.is_dir())
    assert len(trees) == 2, trees
    before = _tree(to)
    add_version(serving, store, ("mf-pub-d",), "s3")
    real_open = store.open_chunks

    def failing(sha256: str):
        raise ArtifactNotFound(sha256)

    store.open_chunks = failing  # type: ignore[method-assign]
    with pytest.raises(PublishError, match=r"file 'files/.*mf_pub_d-1.0-py3-none-any.whl'"):
        publish(serving, store, "r", None, to)
    store.open_chunks = real_open  # type: ignore[method-assign]
    assert _tree(to) == before and json.loads((to / MARKER).read_text())["version"] == 2
    assert sorted(p.name for p in to.with_name(".pub.trees").iterdir() if p.is_dir()) == trees


def test_a_plain_directory_publication_is_adopted_and_a_foreign_link_refused(repository, tmp_path):
    serving, store = repository
    old = tmp_path / "pub"
    (old / "files").mkdir(parents=True)
    (old / MARKER).write_text('{"repository": "r", "version": 1}\n')
    done = publish(serving, store, "r", None, old)
    assert old.is_symlink() and done.tree.name == "v1.2" and (old.with_name(".pub.trees") / "v1.1").is_dir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PublishError, match="is a link to .*elsewhere"):
        publish(serving, store, "r", None, tmp_path / "link")


def test_autopublish_publishes_a_committed_version_and_reports_a_failure_without_raising(
    repository, tmp_path, caplog
):
    from mirrorflow.flows.autopublish import publish_after_sync

    serving, store = repository
    catalog, logger = serving.catalog, logging.getLogger("test.autopublish")
    assert publish_after_sync(catalog, store, catalog.get_repository("r"), 1, logger) is None, (
        "off by default"
    )
    row = catalog.update_repository("r", autopublish=True, publish_to=str(tmp_path / "pub"))
    done = publish_after_sync(catalog, store, row, 1, logger)
    assert done is not None and (done["version"], done["written"], done["linked"]) == (1, 15, 0)
    assert json.loads((tmp_path / "pub" / MARKER).read_text())["version"] == 1
    (tmp_path / "taken").write_text("not a publication")
    row = catalog.update_repository("r", publish_to=str(tmp_path / "taken"))
    with caplog.at_level(logging.WARNING, logger="test.autopublish"):
        failed = publish_after_sync(catalog, store, row, 1, logger)
    assert failed == {
        "to": str(tmp_path / "taken"),
        "version": 1,
        "error": f"PublishError: to {str(tmp_path / 'taken')!r}: exists and holds something other than a publication",
    }
    assert "autopublish of 'r' version 1" in caplog.text and "stays committed" in caplog.text
    assert (
        serving.repository("r").latest_version == 1
        and (tmp_path / "taken").read_text() == "not a publication"
    )


def test_publish_leaves_blocklisted_files_and_their_links_out_of_every_version(repository, tmp_path):
    from mirrorflow.storage.blocklists import add_entry
    from mirrorflow.tasks.blocklist import parse_entry

    serving, store = repository
    writer = ContentWriter(serving.catalog)
    unstored = _package("mf-pub-b", "mf_pub_b-1.0.tar.gz", b"never fetched", packagetype="sdist")
    writer.stage("s2", serving.repository("r").id, writer.upsert_packages([unstored]).values())
    writer.commit_version(repository="r", sync_id="s2", mirror=False)
    for text in ("mf-pub-a", "mf_pub_b-1.0.tar.gz"):
        entry = parse_entry(text)
        add_entry(serving.catalog, "r", entry=entry.canonical, kind=entry.kind.value,
                  project=entry.project, blocks=entry.blocks)  # fmt: skip
    to = tmp_path / "pub"
    done = publish(serving, store, "r", 2, to)  # version 2 holds them all; the unstored sdist is blocked
    assert (done.projects, done.files, done.blocked) == (1, 1, 2)
    assert not (to / "simple" / "mf-pub-a").exists()
    assert sorted(p.parent.name for p in (to / "files").glob("*/*.whl")) == [
        next(iter(json.loads((to / "simple/mf-pub-b/index.v1_json").read_text())["files"]))["hashes"][
            "sha256"
        ]
    ]
    for name in ("index.html", "index.v1_html", "index.v1_json"):
        listing, page = (to / "simple" / name).read_text(), (to / "simple/mf-pub-b" / name).read_text()
        assert "mf-pub-a" not in listing and "mf-pub-b" in listing, name
        assert "mf_pub_b-1.0.tar.gz" not in page and "mf_pub_b-1.0-py3-none-any.whl" in page, name


# -- what serve's pages say besides the files: PEP 792 statuses, PEP 740 provenance ------------------

_PROVENANCE = b'{"attestation_bundles": [], "version": 1}'
_PROJECTS = ("mf-pub-a", "mf-pub-b", "mf-pub-q")


def _status_and_provenance(serving: ServingCatalog) -> None:
    """Version 2 of ``r``: mf-pub-a deprecated, mf-pub-q quarantined (no file), and mf-pub-a's wheel
    with a fetched provenance object (another repository names another for it, never published here)."""
    from mirrorflow.storage.provenance import record_urls, store_body

    writer = ContentWriter(serving.catalog)
    changes = {"mf-pub-a": ("deprecated", "use mf-pub-b <now>"), "mf-pub-q": ("quarantined", None)}
    writer.commit_version(repository="r", sync_id="s2", mirror=False, status_changes=changes)
    state = serving.repository("r")
    wheel = serving.project_files(state.id, 2, "mf-pub-a")[0]
    record_urls(serving.catalog, state.id, {wheel.sha256: "https://index.example/a.provenance"})
    store_body(serving.catalog, wheel.sha256, "https://index.example/a.provenance", _PROVENANCE)
    other = serving.catalog.create_repository("other")
    record_urls(serving.catalog, other.id, {wheel.sha256: "https://index.example/other.provenance"})
    store_body(serving.catalog, wheel.sha256, "https://index.example/other.provenance", b"{}")


def test_published_pages_say_what_serves_pages_say_statuses_and_provenance(repository, tmp_path):
    from support_server import NoUpstreams

    from mirrorflow.server.app import create_app
    from mirrorflow.server.publish import PAGES
    from mirrorflow.server.threaded import serve_in_thread

    serving, store = repository
    _status_and_provenance(serving)
    app = create_app(serving.catalog, store, NoUpstreams())
    served: dict[str, bytes] = {}
    with serve_in_thread(app) as base, httpx.Client(base_url=base) as client:
        for project in ("mf-pub-a", "mf-pub-b"):  # serve stores each wheel's metadata: both pages hash it
            (file,) = serving.project_files(serving.repository("r").id, 2, project)
            assert client.get(f"/r/files/{file.sha256}/{file.filename}.metadata").status_code == 200
        for name, media_type in PAGES:
            for project in _PROJECTS:
                answer = client.get(f"/r/simple/{project}/", headers={"Accept": media_type})
                assert answer.status_code == 200, answer.text
                served[f"simple/{project}/{name}"] = answer.content.replace(b"/r/files/", b"../../files/")
            served[f"simple/{name}"] = client.get("/r/simple/", headers={"Accept": media_type}).content
        wheel = json.loads(served["simple/mf-pub-a/index.v1_json"])["files"][0]
        provenance_url = wheel["provenance"].replace("../../files/", "/r/files/")
        assert client.get(provenance_url).content == _PROVENANCE

    to = tmp_path / "pub"
    done = publish(serving, store, "r", None, to)
    assert (done.version, done.provenance, done.provenance_missing) == (2, 1, 0)
    for key, body in served.items():
        assert (to / key).read_bytes() == body, key
    a = json.loads(served["simple/mf-pub-a/index.v1_json"])
    assert a["meta"]["api-version"] == "1.4" and a["project-status"]["status"] == "deprecated"
    assert b'name="pypi:project-status" content="quarantined"' in served["simple/mf-pub-q/index.html"]
    assert b"mf-pub-q" not in served["simple/index.html"], "holds no file: not listed, by serve either"
    assert b'data-provenance="../../files/' in served["simple/mf-pub-a/index.html"]
    assert "provenance" not in json.loads(served["simple/mf-pub-b/index.v1_json"])["files"][0]
    assert (to / "simple/mf-pub-a" / wheel["provenance"]).resolve().read_bytes() == _PROVENANCE
    assert [p.name for p in (to / "files").rglob("*.provenance")] == [wheel["filename"] + ".provenance"]

    again = publish(serving, store, "r", None, to)
    assert (again.written, again.provenance) == (0, 1), "the provenance file is linked, not written"
    from mirrorflow.storage.provenance import record_urls, store_body

    store_body(serving.catalog, wheel["hashes"]["sha256"], "https://index.example/a.provenance", b"{}")
    b_wheel = json.loads(served["simple/mf-pub-b/index.v1_json"])["files"][0]
    record_urls(
        serving.catalog, serving.repository("r").id, {b_wheel["hashes"]["sha256"]: "https://index.example/b"}
    )
    changed = publish(serving, store, "r", None, to)
    assert (changed.written, changed.provenance_missing) == (1, 1), (
        "only the changed object; b's never fetched"
    )
    assert (to / "simple/mf-pub-a" / wheel["provenance"]).resolve().read_bytes() == b"{}"
    assert (to / "simple/mf-pub-b/index.v1_json").read_bytes() == served["simple/mf-pub-b/index.v1_json"]


def test_publish_to_s3_carries_statuses_and_provenance_as_the_directory_does(repository, tmp_path, s3_client):
    from support_s3 import _drop_bucket, new_bucket_name

    from mirrorflow.server.publish_s3 import publish_to_bucket
    from mirrorflow.storage.s3_publication import PublicationBucket

    serving, store = repository
    _status_and_provenance(serving)
    to = tmp_path / "pub"
    publish(serving, store, "r", None, to)
    name = new_bucket_name()
    s3_client.make_bucket(name)
    try:
        bucket = PublicationBucket(s3_client, name, "r")
        done = publish_to_bucket(serving, store, "r", None, bucket)
        assert (done.provenance, done.provenance_missing) == (1, 0)
        tree = {str(p.relative_to(to)) for p in to.rglob("*") if p.is_file()} - {MARKER, "nginx.conf"}
        assert set(_objects(s3_client, name, "r")) - {MARKER} == tree
        for key in tree:
            assert bucket.read(key) == (to / key).read_bytes(), key
        (provenance,) = [k for k in tree if k.endswith(".provenance")]
        assert s3_client.stat_object(name, f"r/{provenance}").content_type == "application/json"
        assert publish_to_bucket(serving, store, "r", None, bucket).uploaded == 0
    finally:
        _drop_bucket(s3_client, name)


# -- publish --to s3://bucket/prefix (moto's S3 server on loopback, the real minio client) -------------


def _objects(client, bucket: str, prefix: str) -> dict[str, str]:
    """Every object under ``prefix`` by relative key, with its ETag (changes when it is re-uploaded)."""
    found = client.list_objects(bucket, prefix=prefix + "/", recursive=True)
    return {o.object_name[len(prefix) + 1 :]: o.etag for o in found}


def test_publish_to_s3_writes_the_tree_incrementally_pages_after_files_and_removes_late(
    repository, s3_client
):
    from support_s3 import new_bucket_name

    from mirrorflow.server.publish_s3 import publish_to_bucket
    from mirrorflow.storage.s3_publication import PublicationBucket

    serving, store = repository
    name = new_bucket_name()
    bucket = PublicationBucket(s3_client, name, "pub/r")
    with pytest.raises(PublishError, match=f"to 's3://{name}/pub/r': no such bucket"):
        publish_to_bucket(serving, store, "r", None, bucket)
    s3_client.make_bucket(name)
    try:
        order: list[str] = []
        put, put_chunks = bucket.put, bucket.put_chunks
        bucket.put = lambda key, body, **kw: (order.append(key), put(key, body, **kw))[1]  # type: ignore[method-assign]
        bucket.put_chunks = lambda key, chunks, **kw: (order.append(key), put_chunks(key, chunks, **kw))[1]  # type: ignore[method-assign]
        first = publish_to_bucket(serving, store, "r", None, bucket)
        # 2 wheels + 2 .metadata + 3 pages x (2 projects + the listing) + the manifest
        assert (first.version, first.projects, first.files, first.metadata, first.uploaded) == (
            1,
            2,
            2,
            2,
            13,
        )
        kinds = [
            "file" if k.startswith("files/") else "page" if k.count("/") == 2 else "listing"
            for k in order[1:-1]
        ]
        assert kinds == sorted(kinds, key=["file", "page", "listing"].index), order
        assert (order[0], order[-1]) == (MARKER + ".pending", MARKER), "what may be uploaded, named first"
        one = _objects(s3_client, name, "pub/r")
        page = json.loads(bucket.read("simple/mf-pub-a/index.v1_json") or b"")
        wheel = page["files"][0]
        key = "simple/mf-pub-a/" + wheel["url"]
        assert wheel["url"].startswith("../../files/") and os.path.normpath(key) in one
        metadata = bucket.read(os.path.normpath(key) + ".metadata") or b""
        assert hashlib.sha256(metadata).hexdigest() == wheel["core-metadata"]["sha256"]
        stat = s3_client.stat_object(name, "pub/r/simple/mf-pub-a/index.v1_json")
        assert stat.content_type == "application/vnd.pypi.simple.v1+json"
        assert b"mf-pub-a/" in (bucket.read("simple/index.html") or b"")

        again = publish_to_bucket(serving, store, "r", None, bucket)
        assert (again.uploaded, again.unchanged, again.removed) == (0, 13, 0), "nothing uploaded again"
        add_version(serving, store, ("mf-pub-c",), "s2")
        order.clear()
        second = publish_to_bucket(serving, store, "r", None, bucket)
        # c's wheel + .metadata + 3 pages, the listing's 3 pages: only what changed, then the manifest
        assert (second.version, second.uploaded, second.unchanged) == (2, 8, 10), order
        two = _objects(s3_client, name, "pub/r")
        assert {
            k: v for k, v in two.items() if k in one and k != MARKER and not k.startswith("simple/index")
        } == {k: v for k, v in one.items() if k != MARKER and not k.startswith("simple/index")}, (
            "unchanged objects were not re-uploaded"
        )
        back = publish_to_bucket(serving, store, "r", 1, bucket)  # c leaves: its pages now, its files later
        assert back.removed == 3 and not any(
            k.startswith("simple/mf-pub-c/") for k in _objects(s3_client, name, "pub/r")
        )
        assert any("mf_pub_c" in k for k in _objects(s3_client, name, "pub/r")), (
            "kept for readers of v2's pages"
        )
        later = publish_to_bucket(serving, store, "r", 1, bucket)
        assert later.removed == 2 and not any("mf_pub_c" in k for k in _objects(s3_client, name, "pub/r"))
        s3_client.put_object(name, "other/keep.txt", __import__("io").BytesIO(b"mine"), 4)
        with pytest.raises(PublishError, match="holds 'keep.txt' but no publication"):
            publish_to_bucket(serving, store, "r", 1, PublicationBucket(s3_client, name, "other"))
    finally:
        from support_s3 import _drop_bucket

        _drop_bucket(s3_client, name)


# -- a published version served by nginx (its own nginx.conf), read by uv and pypi-simple ---------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx_server(tmp_path) -> Iterator[callable]:
    """Yields a function starting nginx (one process, no master) on a publication's own ``nginx.conf``,
    moved to a free loopback port: the ``Accept`` negotiation under test is the generated one."""
    import shutil
    import time

    processes: list[subprocess.Popen[bytes]] = []

    def start(to: Path) -> str:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        port, work = _free_port(), tmp_path / "nginx"
        work.mkdir()
        server = (to / "nginx.conf").read_text().replace("listen 8080;", f"listen 127.0.0.1:{port};")
        (work / "server.conf").write_text(server)
        (work / "main.conf").write_text(
            f"daemon off; master_process off; worker_processes 1; pid {work}/nginx.pid;\n"
            f"error_log {work}/error.log;\nevents {{ worker_connections 64; }}\n"
            f"http {{ access_log off; include {work}/server.conf; }}\n"
        )
        process = subprocess.Popen([nginx, "-c", str(work / "main.conf"), "-p", str(work)])
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/simple/", timeout=1)
                return base
            except httpx.TransportError:
                assert process.poll() is None, (work / "error.log").read_text()
                time.sleep(0.05)
        raise AssertionError(f"nginx did not answer: {(work / 'error.log').read_text()}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def _nginx_missing() -> bool:
    import shutil

    return shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists()


def _uv() -> str:
    import shutil

    return (
        str(Path(sys.executable).with_name("uv"))
        if Path(sys.executable).with_name("uv").exists()
        else shutil.which("uv") or "uv"
    )


@pytest.mark.skipif(_nginx_missing(), reason="nginx is not installed (apt-get install nginx-light)")
def test_uv_and_pypi_simple_read_a_published_version_through_its_nginx_conf(
    repository, tmp_path, nginx_server
):
    from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

    serving, store = repository
    to = tmp_path / "pub"
    publish(serving, store, "r", None, to)
    base = nginx_server(to)
    json_page = httpx.get(
        f"{base}/simple/mf-pub-a/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert json_page.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert json_page.headers["vary"] == "Accept" and json_page.json()["name"] == "mf-pub-a"
    html_page = httpx.get(f"{base}/simple/mf-pub-a/", headers={"Accept": "text/html"})
    assert html_page.headers["content-type"].startswith("text/html") and b"<a href" in html_page.content
    with PyPISimple(endpoint=f"{base}/simple/") as client:
        seen = {}
        for accept in (ACCEPT_JSON_ONLY, ACCEPT_HTML_ONLY):
            listing = client.get_index_page(accept=accept)
            assert sorted(listing.projects) == ["mf-pub-a", "mf-pub-b"], accept
            page = client.get_project_page("mf-pub-a", accept=accept)
            assert page.repository_version == API_VERSION
            seen[accept] = [
                (p.filename, p.digests, p.has_metadata, p.metadata_digests, p.requires_python)
                for p in page.packages
            ]
        assert seen[ACCEPT_JSON_ONLY] == seen[ACCEPT_HTML_ONLY] and len(seen[ACCEPT_JSON_ONLY]) == 1
        (package,) = client.get_project_page("mf-pub-a", accept=ACCEPT_JSON_ONLY).packages
        assert "Name: mf-pub-a" in client.get_package_metadata(package)  # PEP 658, digest verified
        client.download_package(package, tmp_path / package.filename)  # digest verified
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_NO_CONFIG="1")
    target = tmp_path / "site"
    command = [_uv(), "pip", "install", "--no-cache", "--no-deps", "--python", sys.executable]
    command += ["--target", str(target), "--index-url", f"{base}/simple/", "mf-pub-a", "mf-pub-b"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (target / "mf_pub_a" / "__init__.py").is_file() and (target / "mf_pub_b" / "__init__.py").is_file()


def test_autopublish_to_s3_uploads_the_committed_version_to_the_settings_endpoint(
    repository, s3_client, s3_endpoint
):
    from support_s3 import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, _drop_bucket, new_bucket_name

    from mirrorflow.flows.autopublish import publish_after_sync
    from mirrorflow.flows.settings import Settings

    serving, store = repository
    catalog, logger = serving.catalog, logging.getLogger("test.autopublish")
    name = new_bucket_name()
    settings = Settings(
        s3_endpoint=s3_endpoint, s3_access_key=S3_ACCESS_KEY, s3_secret_key=S3_SECRET_KEY,
        s3_secure=False, s3_region=S3_REGION,
    )  # fmt: skip
    row = catalog.update_repository("r", autopublish=True, publish_to=f"s3://{name}/site")
    failed = publish_after_sync(catalog, store, row, 1, logger, settings=settings)
    assert failed is not None and failed["error"] == f"PublishError: to 's3://{name}/site': no such bucket"
    s3_client.make_bucket(name)
    try:
        done = publish_after_sync(catalog, store, row, 1, logger, settings=settings)
        assert done == {"to": f"s3://{name}/site", "version": 1, "written": 13, "linked": 0}
        manifest = json.loads(s3_client.get_object(name, f"site/{MARKER}").read())
        assert manifest["version"] == 1 and "simple/mf-pub-b/index.v1_json" in manifest["objects"]
    finally:
        _drop_bucket(s3_client, name)


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_publish_fetch_missing_fetches_verifies_and_stores_on_demand_files_first(cli, tmp_path):
    """As an on_demand sync leaves them: files recorded with the upstream's URLs, never downloaded.
    Publish refuses them and names --fetch-missing; with it, each is fetched from the (loopback)
    fixture index, checked against its sha256, stored, then published. A file whose bytes do not
    match its digest is refused and nothing is published."""
    from support_index import serve_projects

    from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject
    from mirrorflow.flows.cli_app import open_catalog
    from mirrorflow.tasks.index_client import IndexClient, build_http_client

    wheels = {name: make_wheel(name, "1.0") for name in ("mf-lazy-a", "mf-lazy-b", "mf-lazy-bad")}
    projects = [FixtureProject(name, [FixtureFile(*wheel)]) for name, wheel in wheels.items()]
    with serve_projects(projects, tmp_path) as upstream:
        for args in (
            ("remote", "create", "--name", "up", "--url", upstream.url, "--policy", "on_demand"),
            ("repository", "create", "--name", "r", "--remote", "up"),
            ("repository", "create", "--name", "tampered", "--remote", "up"),
        ):
            assert cli(*args).exit_code == 0
        catalog = open_catalog()
        writer = ContentWriter(catalog)
        with build_http_client(concurrency=2, timeout=10.0) as http:
            listed = {n: IndexClient(upstream.url, client=http).get_project(n).files[0] for n in wheels}
        for repository, names in (("r", ("mf-lazy-a", "mf-lazy-b")), ("tampered", ("mf-lazy-bad",))):
            packages = []
            for name in names:
                package = _package(name, wheels[name][0], wheels[name][1])._replace(url=listed[name].url)
                if repository == "tampered":  # the index serves other bytes than the digest recorded
                    package = package._replace(sha256=hashlib.sha256(b"other bytes").hexdigest())
                packages.append(package)
            ids = writer.upsert_packages(packages)
            writer.stage(repository, catalog.get_repository(repository).id, ids.values())
            writer.commit_version(repository=repository, sync_id=repository, mirror=False)

        out = tmp_path / "pub"
        refused = cli("repository", "publish", "--name", "r", "--to", str(out))
        assert (refused.exit_code, refused.stdout) == (1, "")
        assert (
            "2 file(s) are not stored" in refused.stderr
            and "rerun publish with --fetch-missing" in refused.stderr
        )
        bad = cli("repository", "publish", "--name", "tampered", "--to", str(out), "--fetch-missing")
        assert bad.exit_code == 1 and bad.stderr.startswith("Error: ") and "sha256" in bad.stderr, bad.stderr
        assert not out.exists() and not out.is_symlink(), "nothing published"

        done = cli("repository", "publish", "--name", "r", "--to", str(out), "--fetch-missing")
        assert done.exit_code == 0, done.stderr
        assert (done.json()["fetched"], done.json()["files"], done.json()["version"]) == (2, 2, 1)
        hits = dict(upstream.hits)
    for name in ("mf-lazy-a", "mf-lazy-b"):
        filename, body = wheels[name]
        assert (out / "files" / hashlib.sha256(body).hexdigest() / filename).read_bytes() == body
    again = cli("repository", "publish", "--name", "r", "--to", str(out), "--fetch-missing")
    assert again.exit_code == 0 and again.json()["fetched"] == 0, "stored now: nothing fetched again"
    assert dict(upstream.hits) == hits
