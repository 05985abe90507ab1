"""Air-gap transfer: ``repository export`` / ``repository import`` (mirrorflow.storage.export, mirrorflow.storage.import_).

Unit-level tests build small repositories straight through ``ContentWriter`` (no sync, no
Prefect); the end-to-end tests sync from a fixture index, export on SQLite + directory store,
import into a second home (PostgreSQL + S3 for the first), and install with pip from ``serve``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.export import export_version
from mirrorflow.storage.export_format import CorruptChunk, ExportGap, InvalidExport, MissingContent
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.import_ import import_export

# -- unit level: repositories written directly ----------------------------------------------


def _files(*names: str, size: int = 3000) -> dict[str, bytes]:
    return {name: hashlib.sha256(name.encode()).digest() * (size // 32) for name in names}


def _commit(catalog: Catalog, store, repository: str, files: dict[str, bytes], *, stored: bool = True) -> int:
    """Make the next version of ``repository`` hold exactly ``files`` (wheel name -> bytes)."""
    writer = ContentWriter(catalog)
    packages = []
    for filename, content in files.items():
        name, version = filename.split("-")[:2]
        digest = hashlib.sha256(content).hexdigest()
        packages.append(
            NewPackage(
                name,
                name,
                version,
                filename,
                "bdist_wheel",
                "py3",
                None,
                digest,
                len(content),
                None,
                False,
                None,
                None,
                False,
                f"https://index.example/files/{filename}",
            )  # fmt: skip
        )
    ids = writer.upsert_packages(packages)
    for content in files.values() if stored else ():
        done = store.put_chunks([content], sha256=hashlib.sha256(content).hexdigest(), size=len(content))
        writer.record_artifacts([(done.sha256, done.size, done.key)])
    repo = catalog.get_repository(repository)
    sync_id = str(uuid.uuid4())
    writer.stage(sync_id, repo.id, ids.values())
    view = writer.commit_version(repository=repository, sync_id=sync_id, mirror=True)
    assert view is not None
    return view.number


def _file_set(catalog: Catalog, repository: str) -> set[tuple[str, str]]:
    return {(p.filename, p.sha256) for p in ContentWriter(catalog).content_at(repository)}


@pytest.fixture
def homes(tmp_path):
    """Two homes (SQLite + directory store each): the connected side and the offline side."""
    sides = []
    for side in ("online", "offline"):
        catalog = Catalog.from_url(f"sqlite:///{tmp_path / side}.db")
        sides.append((catalog, FileSystemStore(tmp_path / side / "artifacts")))
    yield sides
    for catalog, _ in sides:
        catalog.dispose()


def _export(catalog, store, directory, *, version=None, since=None, chunk_size=8192):
    return export_version(catalog, store, repository="foo", version=version, since_version=since,
                          directory=directory, chunk_size=chunk_size, writer="test")  # fmt: skip


def test_full_then_incremental_export_carries_additions_and_removals(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"))
    full = _export(online, online_store, tmp_path / "v1")
    assert (full.toc.packages, full.toc.removed, full.toc.artifacts) == (2, 0, 2)
    assert len(full.toc.chunks) == 2, "records, then both 3 kB files in one 8 KiB chunk"
    result = import_export(offline, offline_store, directory=tmp_path / "v1", repository="bar")
    assert (result.version, result.added, result.present) == (1, 2, 2)

    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl", "c-1.0-py3-none-any.whl"))
    delta = _export(online, online_store, tmp_path / "v2", since=1)
    assert (delta.toc.packages, delta.toc.removed, delta.toc.artifacts) == (1, 1, 1), "c added, b removed"
    result = import_export(offline, offline_store, directory=tmp_path / "v2", repository="bar")
    assert (result.version, result.added, result.removed, result.present) == (2, 1, 1, 2)
    assert _file_set(offline, "bar") == _file_set(online, "foo")
    for chunk in tmp_path.glob("v*/chunk-*.tar"):
        with tarfile.open(chunk) as tar:  # each chunk is a tar file on its own
            assert tar.getnames()

    again = import_export(offline, offline_store, directory=tmp_path / "v2", repository="bar")
    assert (again.changed, again.version) == (False, 2), (
        "importing twice makes no second version, and names the current one"
    )
    assert offline.get_repository("bar").latest_version == 2


def test_an_incremental_export_refuses_a_gap_in_one_line(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    for names in (("a-1.0-py3-none-any.whl",), ("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"),
                  ("b-1.0-py3-none-any.whl",)):  # fmt: skip
        _commit(online, online_store, "foo", _files(*names))
    _export(online, online_store, tmp_path / "v1", version=1)
    _export(online, online_store, tmp_path / "d3", version=3, since=2)
    with pytest.raises(ExportGap, match="^this export needs version 2 of foo; bar holds no version of foo$"):
        import_export(offline, offline_store, directory=tmp_path / "d3", repository="bar")
    import_export(offline, offline_store, directory=tmp_path / "v1", repository="bar")
    with pytest.raises(ExportGap, match="^this export needs version 2 of foo; bar holds version 1 of foo$"):
        import_export(offline, offline_store, directory=tmp_path / "d3", repository="bar")
    assert offline.get_repository("bar").latest_version == 1


def test_a_corrupted_chunk_is_refused_by_name_and_nothing_is_imported(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files(*(f"p{i}-1.0-py3-none-any.whl" for i in range(4))))
    toc = _export(online, online_store, tmp_path / "x", chunk_size=4096).toc
    assert len(toc.chunks) == 5, "records + one 3 kB file per 4 KiB chunk"
    chunk = tmp_path / "x" / "chunk-00002.tar"
    good = chunk.read_bytes()
    for offset, why in (
        (1000, "holds 'artifacts/"),
        (3500, "has sha256 "),
        (100, "has a damaged tar header"),
    ):
        data = bytearray(good)  # in a file's bytes, in its padding, in its header
        data[offset] ^= 0xFF
        chunk.write_bytes(bytes(data))
        with pytest.raises(CorruptChunk, match=f"^chunk 'chunk-00002.tar' {why}.* nothing was imported"):
            import_export(offline, offline_store, directory=tmp_path / "x", repository="bar")
        assert [r.name for r in offline.list_repositories()] == []
    # Chunk 1 was read (and its file stored, verified) before chunk 2: invisible, content-addressed.
    stored = list((tmp_path / "offline" / "artifacts").rglob("sha256/*/*/*"))
    assert all(hashlib.sha256(path.read_bytes()).hexdigest() == path.name for path in stored)
    assert len(stored) <= 1
    chunk.write_bytes(good)  # copied again: the rerun finishes
    result = import_export(offline, offline_store, directory=tmp_path / "x", repository="bar")
    assert (result.version, result.present) == (1, 4)
    assert _file_set(offline, "bar") == _file_set(online, "foo")


class _Killed(Exception):
    pass


class _DyingStore:
    """A store that dies (as a killed process would) after ``puts`` successful puts."""

    def __init__(self, store, puts: int) -> None:
        self.store, self.left = store, puts

    def __getattr__(self, name):
        return getattr(self.store, name)

    def deferred(self):
        return self.store.deferred() if False else _Deferred(self)


class _Deferred:
    def __init__(self, owner: _DyingStore) -> None:
        self.owner = owner

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def put_chunks(self, chunks, *, sha256, size):
        if self.owner.left == 0:
            raise _Killed
        self.owner.left -= 1
        return self.owner.store.put_chunks(chunks, sha256=sha256, size=size)


def test_a_killed_import_leaves_no_partial_version_and_a_rerun_finishes(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files(*(f"p{i}-1.0-py3-none-any.whl" for i in range(4))))
    _export(online, online_store, tmp_path / "x", chunk_size=4096)
    with pytest.raises(_Killed):
        import_export(offline, _DyingStore(offline_store, 2), directory=tmp_path / "x", repository="bar")
    assert [r.name for r in offline.list_repositories()] == [], "made only once every chunk is in"
    result = import_export(offline, offline_store, directory=tmp_path / "x", repository="bar")
    assert (result.version, result.present, result.artifacts_stored, result.artifacts_present) == (1, 4, 2, 2)
    assert _file_set(offline, "bar") == _file_set(online, "foo")


def test_an_interrupted_export_resumes_and_skips_intact_chunks(homes, tmp_path):
    (online, online_store), _ = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files(*(f"p{i}-1.0-py3-none-any.whl" for i in range(4))))
    first = _export(online, online_store, tmp_path / "x", chunk_size=4096)
    assert (first.written, first.skipped) == (5, 0)
    (tmp_path / "x" / "chunk-00004.tar").unlink()
    (tmp_path / "x" / "chunk-00002.tar").write_bytes(b"half a chunk")
    (tmp_path / "x" / "toc.json").unlink()  # killed before the TOC
    again = _export(online, online_store, tmp_path / "x", chunk_size=4096)
    assert (again.written, again.skipped) == (2, 3)
    assert again.toc == first.toc


def test_on_demand_content_is_refused_by_name_and_nothing_is_written(homes, tmp_path):
    (online, online_store), _ = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files("lazy-1.0-py3-none-any.whl"), stored=False)
    with pytest.raises(MissingContent, match=r"'lazy-1.0-py3-none-any.whl'; rerun with --fetch-missing"):
        _export(online, online_store, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_flows_run_under_prefect_and_publish_progress_and_reports(
    homes, tmp_path, monkeypatch, capsys, prefect_harness
):
    """The export flow called directly; the import through the CLI, which runs its flow when a
    Prefect server is configured (PREFECT_API_URL: the harness's)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL

    from mirrorflow.flows.airgap import export_repository
    from mirrorflow.flows.cli import main

    (online, online_store), (offline, _) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files(*(f"p{i}-1.0-py3-none-any.whl" for i in range(3))))
    for side in ("online", "offline"):
        monkeypatch.setenv("MIRRORFLOW_HOME", str(tmp_path / side))
        monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", f"sqlite:///{tmp_path / side}.db")
        if side == "online":
            exported = export_repository(repository="foo", to=str(tmp_path / "x"), chunk_size="4KiB")
        else:
            monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
            monkeypatch.setattr(sys, "argv", ["mirrorflow", "repository", "import", "--name", "bar",
                                              "--from", str(tmp_path / "x")])  # fmt: skip
            capsys.readouterr()
            main()
            imported = json.loads(capsys.readouterr().out)
    assert (exported["chunks"], exported["artifacts"], imported["version"]) == (4, 3, 1)
    assert _file_set(offline, "bar") == _file_set(online, "foo")
    keys = [f"{kind}-{name}{suffix}" for kind, name in (("export", "foo"), ("import", "bar"))
            for suffix in ("", "-summary", "-progress")]  # fmt: skip
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    assert {row["metric"]: row["value"] for row in json.loads(by_key["export-foo"].data)}["artifacts"] == "3"
    assert {row["metric"]: row["value"] for row in json.loads(by_key["import-bar"].data)}["added"] == "3"
    assert "is now at version 1" in by_key["import-bar-summary"].data
    assert by_key["export-foo-progress"].data == by_key["import-bar-progress"].data == 100.0


def test_an_unknown_format_version_is_refused_naming_the_field(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl"))
    _export(online, online_store, tmp_path / "x")
    toc = json.loads((tmp_path / "x" / "toc.json").read_text())
    toc["format_version"] = 3
    (tmp_path / "x" / "toc.json").write_text(json.dumps(toc))
    with pytest.raises(InvalidExport, match="^toc.json: format_version 3 is not supported"):
        import_export(offline, offline_store, directory=tmp_path / "x", repository="bar")
    assert offline.list_repositories() == []


# -- what serve shows besides the files: PEP 792 statuses, PEP 740 provenance ------------------------


def _statuses(catalog: Catalog, repository: str, changes: dict) -> None:
    """A version of ``repository`` whose only change is its project statuses."""
    view = ContentWriter(catalog).commit_version(
        repository=repository, sync_id=str(uuid.uuid4()), mirror=False, status_changes=changes
    )
    assert view is not None


def _provenance(catalog: Catalog, repository: str, filename: str, body: bytes | None) -> None:
    """The provenance URL ``repository``'s remote names for ``filename`` (and its object, unless None)."""
    from mirrorflow.storage.provenance import record_urls, store_body

    sha256 = hashlib.sha256(_files(filename)[filename]).hexdigest()
    url = f"https://index.example/{filename}.provenance"
    record_urls(catalog, catalog.get_repository(repository).id, {sha256: url})
    if body is not None:
        store_body(catalog, sha256, url, body)


def _pages(catalog: Catalog, store, repository: str, projects: tuple[str, ...]) -> dict[str, object]:
    """What serve answers for each project's JSON page (files URLs without the repository's name),
    and for every provenance URL they give."""
    import httpx
    from support_server import NoUpstreams

    from mirrorflow.server.app import create_app
    from mirrorflow.server.pages import JSON_V1
    from mirrorflow.server.threaded import serve_in_thread

    found: dict[str, object] = {}
    with (
        serve_in_thread(create_app(catalog, store, NoUpstreams())) as base,
        httpx.Client(base_url=base) as client,
    ):
        for project in projects:
            page = client.get(f"/{repository}/simple/{project}/", headers={"Accept": JSON_V1})
            assert page.status_code == 200, page.text
            found[project] = json.loads(page.text.replace(f"/{repository}/files/", "/files/"))
            # A serial is the version of its repository that last changed the project: the import's
            # versions are numbered on their side.
            assert isinstance(found[project]["meta"].pop("_last-serial"), int)
            for file in page.json()["files"]:
                if "provenance" in file:
                    found[file["filename"] + ".provenance"] = client.get(file["provenance"]).content
    return found


def test_statuses_and_provenance_cross_full_and_incremental_and_serve_shows_them_alike(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"))
    _statuses(online, "foo", {"a": ("archived", "moved to b"), "gone": ("quarantined", "malware")})
    _provenance(online, "foo", "a-1.0-py3-none-any.whl", b'{"attestation_bundles": []}')
    _provenance(online, "foo", "b-1.0-py3-none-any.whl", None)  # on_demand, never fetched: cannot cross
    full = _export(online, online_store, tmp_path / "v1")
    assert (full.toc.format_version, full.toc.statuses, full.toc.provenance, full.provenance_missing) == (
        2,
        2,
        1,
        1,
    )
    result = import_export(offline, offline_store, directory=tmp_path / "v1", repository="bar")
    assert (result.version, result.provenance) == (1, 1)
    online_pages = _pages(online, online_store, "foo", ("a", "gone"))
    assert online_pages["a"]["project-status"] == {"status": "archived", "reason": "moved to b"}
    assert online_pages["a-1.0-py3-none-any.whl.provenance"] == b'{"attestation_bundles": []}'
    assert _pages(offline, offline_store, "bar", ("a", "gone")) == online_pages

    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl", "c-1.0-py3-none-any.whl"))
    _statuses(online, "foo", {"a": None, "c": ("deprecated", None)})
    _provenance(online, "foo", "c-1.0-py3-none-any.whl", b'{"c": 1}')
    delta = _export(online, online_store, tmp_path / "v2", since=2)
    assert (delta.toc.statuses, delta.toc.provenance) == (2, 1), "every status; the added file's provenance"
    result = import_export(offline, offline_store, directory=tmp_path / "v2", repository="bar")
    assert result.version == 2
    online_pages = _pages(online, online_store, "foo", ("a", "c", "gone"))
    assert (
        "project-status" not in online_pages["a"]
        and online_pages["c"]["project-status"]["status"] == "deprecated"
    )
    assert _pages(offline, offline_store, "bar", ("a", "c", "gone")) == online_pages
    again = import_export(offline, offline_store, directory=tmp_path / "v2", repository="bar")
    assert (again.changed, again.version) == (False, 2)


def _as_format_1(directory: Path) -> None:
    """Rewrite an export as mirrorflow wrote format 1: no statuses or provenance in its records chunk."""
    import io

    records = directory / "chunk-00000.tar"
    members = {}
    with tarfile.open(records) as tar:
        for name in ("records/packages.jsonl", "records/removed.jsonl"):
            members[name] = tar.extractfile(name).read()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    records.write_bytes(buffer.getvalue())
    toc = json.loads((directory / "toc.json").read_text())
    toc["format_version"] = 1
    for count in ("statuses", "provenance"):
        del toc["counts"][count]
    toc["chunks"][0].update(sha256=hashlib.sha256(buffer.getvalue()).hexdigest(), size=len(buffer.getvalue()))
    (directory / "toc.json").write_text(json.dumps(toc))


def test_a_format_1_export_still_imports_and_changes_no_status(homes, tmp_path):
    (online, online_store), (offline, offline_store) = homes
    online.create_repository("foo")
    _commit(online, online_store, "foo", _files("a-1.0-py3-none-any.whl"))
    _export(online, online_store, tmp_path / "v1")
    _as_format_1(tmp_path / "v1")
    offline.create_repository("bar")
    _statuses(offline, "bar", {"a": ("deprecated", "kept")})
    result = import_export(offline, offline_store, directory=tmp_path / "v1", repository="bar")
    assert (result.version, result.added, result.provenance) == (2, 1, 0)
    assert _file_set(offline, "bar") == _file_set(online, "foo")
    assert _pages(offline, offline_store, "bar", ("a",))["a"]["project-status"]["reason"] == "kept"


# -- the command line ------------------------------------------------------------------------

LOCAL = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)


@LOCAL
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--chunk-size", "2 parsecs"), "chunk_size: '2 parsecs' is not a size", id="chunk-size"),
        pytest.param(
            ("--chunk-size", "1"), "chunk_size: '1' must be from 1KiB to 1TiB", id="chunk-size-small"
        ),
        pytest.param(
            ("--since-version", "0"),
            "since_version: 0 must be below the exported version 0",
            id="since-not-below",
        ),  # fmt: skip
        pytest.param(("--version", "7"), "version 'foo/7' does not exist", id="version"),
        pytest.param(("--version", "-1"), "version: must be a version number", id="negative"),
    ],
)
def test_bad_export_options_are_one_line_and_write_nothing(cli, tmp_path, args, message):
    assert cli("repository", "create", "--name", "foo").exit_code == 0
    result = cli("repository", "export", "--name", "foo", "--to", str(tmp_path / "out"), *args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


@LOCAL
def test_import_from_a_directory_without_an_export_is_one_line(cli, tmp_path):
    result = cli("repository", "import", "--name", "bar", "--from", str(tmp_path))
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: from: {str(tmp_path)!r} holds no toc.json: not an export, or one not finished\n"
    )
    assert cli("repository", "list").json() == []


# -- end to end: sync, export, import into PostgreSQL + S3, pip install with the upstream stopped


def _use_home(monkeypatch, home: Path, *, database_url=None, s3_endpoint=None, bucket=None) -> None:
    from mirrorflow.flows.runtime import reset_caches

    monkeypatch.setenv("MIRRORFLOW_HOME", str(home))
    if database_url:
        monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", database_url)
        monkeypatch.setenv("MIRRORFLOW_S3_ENDPOINT", s3_endpoint)
        monkeypatch.setenv("MIRRORFLOW_S3_BUCKET", bucket)
        monkeypatch.setenv("MIRRORFLOW_S3_ACCESS_KEY", "testing")
        monkeypatch.setenv("MIRRORFLOW_S3_SECRET_KEY", "testing")
        monkeypatch.setenv("MIRRORFLOW_S3_SECURE", "false")
    reset_caches()


def _cli_files(cli, repository: str) -> set[tuple[str, str]]:
    result = cli("content", "list", "--repository", repository)
    assert result.exit_code == 0, result.stderr
    return {(row["filename"], row["sha256"]) for row in result.json()}


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


@pytest.fixture(scope="module")
def client_python(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("airgap-client") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where / "bin" / "python"


@LOCAL
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.s3
def test_on_demand_export_crosses_to_postgres_and_s3_and_pip_installs_offline(
    cli, tmp_path, monkeypatch, request, client_python
):
    demo = [p for p in seed_projects() if p.name.startswith("mf-demo")]
    out = tmp_path / "carry"
    with serve_projects(demo, tmp_path) as upstream:
        _ok(cli("repository", "create", "--name", "foo"))
        _ok(cli("remote", "create", "--name", "up", "--url", upstream.url, "--policy", "on_demand",
                "--includes", '["mf-demo-app", "mf-demo-lib"]'))  # fmt: skip
        _ok(cli("repository", "sync", "--name", "foo", "--remote", "up"))
        refused = cli("repository", "export", "--name", "foo", "--to", str(out))
        assert refused.exit_code == 1 and "rerun with --fetch-missing" in refused.stderr
        assert not out.exists()
        exported = _ok(cli("repository", "export", "--name", "foo", "--to", str(out),
                           "--chunk-size", "16KiB", "--fetch-missing"))  # fmt: skip
    assert exported["fetched"] == exported["packages"] > 0
    assert exported["chunks"] >= 2
    source_files = _cli_files(cli, "foo")

    from support_s3 import new_bucket_name

    _use_home(monkeypatch, tmp_path / "offline", database_url=request.getfixturevalue("catalog_url_postgres"),
              s3_endpoint=request.getfixturevalue("s3_endpoint"), bucket=new_bucket_name())  # fmt: skip
    imported = _ok(cli("repository", "import", "--name", "bar", "--from", str(out)))
    assert (imported["version"], imported["present"]) == (1, len(source_files))
    assert _cli_files(cli, "bar") == source_files

    from mirrorflow.flows.cli_serve import app_from_settings
    from mirrorflow.server.threaded import serve_in_thread

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with serve_in_thread(app_from_settings()) as base:
        command = [str(client_python), "-m", "pip", "install", "--no-cache-dir", "--index-url",
                   f"{base}/bar/simple/", "--target", str(tmp_path / "t"), "mf-demo-app"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in (tmp_path / "t").glob("*.dist-info")} == {
        "mf_demo_app-1.0.dist-info",
        "mf_demo_lib-2.0.dist-info",
    }


@LOCAL
@pytest.mark.slow
def test_a_second_sync_with_a_removal_and_a_blocklisted_file_crosses_incrementally(
    cli, tmp_path, monkeypatch, seed_index
):
    online, offline = tmp_path / "home", tmp_path / "offline"
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "up", "--url", seed_index.url, "--policy", "immediate",
            "--includes", '["shelf-reader", "mf-demo-lib"]'))  # fmt: skip
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "up"))
    _ok(cli("repository", "export", "--name", "foo", "--to", str(tmp_path / "v1")))
    _ok(cli("remote", "update", "--name", "up", "--includes", '["mf-demo-lib", "mf-demo-app"]'))
    # Blocklisting a file version 1 holds makes version 2 without it; the sync then skips it.
    blocked = _ok(cli("repository", "blocklist", "add", "--repository", "foo", "--entry", "mf-demo-lib==1.0"))
    dropped = blocked["version"]["content_summary"]["removed"]["python.python"]["count"]
    assert blocked["version"]["number"] == 2 and dropped > 0
    second = _ok(cli("repository", "sync", "--name", "foo", "--remote", "up", "--mirror"))
    assert second["report"]["skipped"]["blocklisted"] == dropped
    summary = second["content_summary"]
    added, removed = (next(iter(summary[part].values()))["count"] for part in ("added", "removed"))
    assert second["number"] == 3 and removed > 0 and added > 0
    removed += dropped
    delta = _ok(
        cli("repository", "export", "--name", "foo", "--since-version", "1", "--to", str(tmp_path / "d2"))
    )
    assert (delta["removed"], delta["packages"]) == (removed, added)
    source_files = _cli_files(cli, "foo")

    _use_home(monkeypatch, offline)
    gap = cli("repository", "import", "--name", "bar", "--from", str(tmp_path / "d2"))
    assert gap.stderr == "Error: this export needs version 1 of foo; bar holds no version of foo\n"
    _ok(cli("repository", "import", "--name", "bar", "--from", str(tmp_path / "v1")))
    imported = _ok(cli("repository", "import", "--name", "bar", "--from", str(tmp_path / "d2")))
    assert (imported["version"], imported["added"], imported["removed"]) == (2, added, removed)
    assert _cli_files(cli, "bar") == source_files
    assert not any(name.startswith(("mf_demo_lib-1.0", "mf-demo-lib-1.0")) for name, _ in source_files)
    _use_home(monkeypatch, online)
