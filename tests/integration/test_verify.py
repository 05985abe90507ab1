"""repository verify: re-hash stored files, report corrupt and missing ones, repair them, resume."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import timedelta

import pytest

from mirrorflow.flows.runtime import store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.s3_store import S3Store
from mirrorflow.tasks.verify import verify_version


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def _corrupt(store, sha256: str) -> None:
    """Replace the stored bytes behind the store's back (disk rot, a bad copy)."""
    if isinstance(store, FileSystemStore):
        store.path_for(sha256).write_bytes(b"rotten bytes")
    else:
        assert isinstance(store, S3Store)
        store._client.put_object(store.bucket, store.object_name(sha256), io.BytesIO(b"rotten"), 6)


def test_verify_reports_corrupt_and_missing_files_and_repair_fetches_them_again(cli, seed_index):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url,
            "--includes", '["shelf-reader", "mf-demo-lib"]', "--policy", "immediate"))  # fmt: skip
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    packages = _ok(cli("content", "list", "--repository", "foo"))
    assert len(packages) >= 4 and all(p["stored"] for p in packages)
    clean = _ok(cli("repository", "verify", "--name", "foo"))
    assert clean["checked"] == clean["artifacts"] == clean["ok"] == len(packages)
    assert clean["remaining"] == 0

    store = store_for(Settings())
    corrupt, missing = packages[0], packages[1]
    _corrupt(store, corrupt["sha256"])
    store.delete(missing["sha256"])

    found = cli("repository", "verify", "--name", "foo", "--skip-verified-within", "0")
    assert found.exit_code == 1
    # (the last line: Prefect's console handler may write to stderr as well under pytest)
    assert found.stderr.splitlines()[-1] + "\n" == "Error: 2 artifact(s) of 'foo' version 1 are corrupt or missing; rerun with --repair to fetch them again\n"  # fmt: skip
    report = found.json()
    assert report["problems"] == {"corrupt": 1, "missing": 1} and report["remaining"] == 2
    assert {(d["filenames"][0], d["problem"]) for d in report["details"]} == {
        (corrupt["filename"], "corrupt"),
        (missing["filename"], "missing"),
    }
    again = cli("repository", "verify", "--name", "foo")
    assert again.exit_code == 1, "problems are never marked verified: a plain rerun finds them again"
    assert again.json()["checked"] == 2 and again.json()["skipped_recently_verified"] == len(packages) - 2

    repaired = _ok(cli("repository", "verify", "--name", "foo", "--repair"))
    assert repaired["repaired"] == 2 and repaired["remaining"] == 0
    for package in (corrupt, missing):
        body = b"".join(store.open_chunks(package["sha256"]))
        assert hashlib.sha256(body).hexdigest() == package["sha256"] and len(body) == package["size"]
    full = _ok(cli("repository", "verify", "--name", "foo", "--skip-verified-within", "0", "--workers", "2"))
    assert full["ok"] == len(packages) and full["problems"] == {}


def test_repair_that_cannot_fetch_leaves_the_problem_reported(cli, seed_index, tmp_path):
    from support_index import serve_projects

    from mirrorflow.fixtureindex.catalog import seed_projects

    shelf = [p for p in seed_projects() if p.name == "shelf-reader"]
    with serve_projects(shelf, tmp_path) as index:
        _ok(cli("repository", "create", "--name", "foo"))
        _ok(cli("remote", "create", "--name", "bar", "--url", index.url, "--includes", '["shelf-reader"]',
                "--policy", "immediate"))  # fmt: skip
        _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    # the upstream is gone now
    package = _ok(cli("content", "list", "--repository", "foo"))[0]
    store_for(Settings()).delete(package["sha256"])
    result = cli("repository", "verify", "--name", "foo", "--repair")
    assert result.exit_code == 1 and "are corrupt or missing\n" in result.stderr
    (detail,) = result.json()["details"]
    assert detail["problem"] == "missing" and not detail["repaired"]
    assert package["filename"] in detail["repair_error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--name", "nope"], "Error: repository 'nope' does not exist\n", id="unknown-repository"),
        pytest.param(["--name", "foo", "--version", "7"], "Error: version 'foo/7' does not exist\n", id="unknown-version"),
        pytest.param(["--name", "foo", "--workers", "0"], "Error: workers: must be a number of workers from 1 to 64 (got 0)\n", id="workers"),
        pytest.param(["--name", "foo", "--skip-verified-within", "-1"],
                     "Error: skip_verified_within: must be a number of hours from 0 to 87600 (got -1.0)\n", id="negative-hours"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(cli, args, message):
    _ok(cli("repository", "create", "--name", "foo"))
    result = cli("repository", "verify", *args)
    # the last line: Prefect's console handler may report on a stream pytest closed, before it
    assert (result.exit_code, result.stdout, result.stderr.splitlines()[-1] + "\n") == (1, "", message)


class _Interrupting:
    """A store whose reads stop working after ``budget`` artifacts (a verify killed half way)."""

    def __init__(self, store, budget: int) -> None:
        self.store, self.budget, self.opened = store, budget, []

    def open_chunks(self, sha256: str, **kwargs):
        if len(self.opened) >= self.budget:
            raise KeyboardInterrupt
        self.opened.append(sha256)
        return self.store.open_chunks(sha256, **kwargs)


def test_an_interrupted_verify_resumes_where_it_stopped(catalog, fs_store):
    repo = catalog.create_repository("foo")
    writer = ContentWriter(catalog)
    stored = []
    for i in range(8):
        body = f"file {i}".encode() * 100
        artifact = fs_store.put_chunks([body], sha256=None, size=None)
        stored.append(artifact)
        filename = f"p{i}-1.0-py3-none-any.whl"
        writer.upsert_packages([
            NewPackage(f"p{i}", f"p{i}", "1.0", filename, "bdist_wheel", "py3", None, artifact.sha256,
                       artifact.size, None, False, None, None, False, f"https://index.example/{filename}")
        ])  # fmt: skip
    writer.record_artifacts([(a.sha256, a.size, a.key) for a in stored])
    sync_id = str(uuid.uuid4())
    writer.stage(sync_id, repo.id, [p.id for p in _all_packages(catalog)])
    writer.commit_version(repository="foo", sync_id=sync_id, mirror=False)

    first = _Interrupting(fs_store, budget=5)
    with pytest.raises(KeyboardInterrupt):
        verify_version(
            catalog, first, "foo", None, workers=1, skip_verified_within=timedelta(hours=1), repair=None
        )
    second = _Interrupting(fs_store, budget=100)
    report = verify_version(
        catalog, second, "foo", None, workers=1, skip_verified_within=timedelta(hours=1), repair=None
    )
    assert set(second.opened).isdisjoint(first.opened), "nothing checked before the interruption is re-hashed"
    assert sorted(first.opened + second.opened) == sorted(a.sha256 for a in stored)
    assert (report.checked, report.skipped_recently_verified, report.remaining) == (3, 5, [])


def _all_packages(catalog):
    from sqlalchemy import select

    from mirrorflow.storage.models import Package

    with catalog.session() as session:
        return list(session.scalars(select(Package)))


# -- core metadata (PEP 658 ``.metadata`` files the server stored) ---------------------------


def _store_metadata_through_the_server(cli, index_url: str) -> tuple[dict, bytes]:
    """Sync mf-demo-app (immediate), fetch its wheel's ``.metadata`` through ``mirrorflow serve``.

    Returns the wheel's page entry and the metadata bytes the server stored.
    """
    import httpx

    from mirrorflow.flows.cli_serve import app_from_settings
    from mirrorflow.server.pages import JSON_V1
    from mirrorflow.server.threaded import serve_in_thread

    _ok(cli("repository", "create", "--name", "apps"))
    _ok(cli("remote", "create", "--name", "up", "--url", index_url, "--includes", '["mf-demo-app"]',
            "--policy", "immediate"))  # fmt: skip
    _ok(cli("repository", "sync", "--name", "apps", "--remote", "up"))
    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/apps/simple/mf-demo-app/", headers={"Accept": JSON_V1}).json()
        wheel = next(f for f in page["files"] if f["filename"].endswith(".whl"))
        response = client.get(wheel["url"] + ".metadata")
        assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == wheel["core-metadata"]["sha256"]
    return wheel, response.content


def _served_metadata(wheel: dict) -> bytes:
    import httpx

    from mirrorflow.flows.cli_serve import app_from_settings
    from mirrorflow.server.threaded import serve_in_thread

    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
        return client.get(wheel["url"] + ".metadata").content


def test_verify_checks_stored_core_metadata_and_repair_fetches_it_from_the_upstream(cli, seed_index):
    wheel, metadata = _store_metadata_through_the_server(cli, seed_index.url)
    digest = wheel["core-metadata"]["sha256"]
    clean = _ok(cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0"))
    files = len(_ok(cli("content", "list", "--repository", "apps")))
    assert (clean["artifacts"], clean["core_metadata"], clean["ok"]) == (files + 1, 1, files + 1)

    store = store_for(Settings())
    _corrupt(store, digest)
    found = cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0")
    assert found.exit_code == 1
    assert found.stderr.splitlines()[-1].startswith("Error: 1 artifact(s) of 'apps' version 1 are corrupt")
    report = found.json()
    assert report["problems"] == {"corrupt": 1} and report["ok"] == files
    (detail,) = report["details"]
    assert (detail["sha256"], detail["filenames"]) == (digest, [wheel["filename"] + ".metadata"])

    upstream = next(p for p in list(seed_index.hits) if p.endswith(wheel["filename"] + ".metadata"))
    before = seed_index.hits[upstream]
    repaired = _ok(cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0", "--repair"))
    assert (repaired["repaired"], repaired["remaining"]) == (1, 0)
    assert seed_index.hits[upstream] == before + 1, "fetched again from <file url>.metadata"
    assert b"".join(store.open_chunks(digest)) == metadata
    assert _served_metadata(wheel) == metadata

    store.delete(digest)
    missing = cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0")
    assert missing.exit_code == 1 and missing.json()["problems"] == {"missing": 1}


def test_repair_reads_core_metadata_out_of_the_stored_wheel_when_the_upstream_is_gone(cli, tmp_path):
    from support_index import serve_projects

    from mirrorflow.fixtureindex.catalog import seed_projects

    demo = [p for p in seed_projects() if p.name == "mf-demo-app"]
    with serve_projects(demo, tmp_path) as index:
        wheel, metadata = _store_metadata_through_the_server(cli, index.url)
    # the upstream is gone now: only the stored wheel can give the metadata back
    store = store_for(Settings())
    _corrupt(store, wheel["core-metadata"]["sha256"])
    result = _ok(cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0", "--repair"))
    (detail,) = result["details"]
    assert (detail["problem"], detail["repaired"], result["remaining"]) == ("corrupt", True, 0)
    assert b"".join(store.open_chunks(wheel["core-metadata"]["sha256"])) == metadata
    assert _served_metadata(wheel) == metadata


def test_a_core_metadata_file_nothing_can_restore_stays_reported(cli, tmp_path):
    from support_index import serve_projects

    from mirrorflow.fixtureindex.catalog import seed_projects

    demo = [p for p in seed_projects() if p.name == "mf-demo-app"]
    with serve_projects(demo, tmp_path) as index:
        wheel, _metadata = _store_metadata_through_the_server(cli, index.url)
    store = store_for(Settings())
    store.delete(wheel["hashes"]["sha256"])  # the wheel is gone too
    store.delete(wheel["core-metadata"]["sha256"])
    result = cli("repository", "verify", "--name", "apps", "--skip-verified-within", "0", "--repair")
    assert result.exit_code == 1
    report = result.json()
    assert (report["problems"], report["repaired"], report["remaining"]) == ({"missing": 2}, 0, 2)
    (metadata,) = [d for d in report["details"] if d["filenames"][0].endswith(".metadata")]
    assert not metadata["repaired"]
    # both sources were tried: the upstream file (gone) and the stored wheel (gone as well)
    assert wheel["filename"] + ".metadata" in metadata["repair_error"]
    assert f"METADATA of the stored {wheel['filename']}: ArtifactNotFound" in metadata["repair_error"]
