"""``kill -9`` of a running ``mirrorflow repository sync``, at several points.

The sync runs in a subprocess (the real console script, on the session's Prefect test server). The
kill lands during a download (the fault-injecting index trickles one file) and during the commit
(a test connection holds a lock the commit transaction needs on PostgreSQL: first the repository
row, then the versions table, after the commit has already written content rows). Afterwards the
latest version is intact and consistent, nothing half-written sits under a final artifact key, and
a rerun completes without duplicates. See docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update

from mirrorflow.fixtureindex.faults import Fault, Rule, serve_faulty
from mirrorflow.flows.runtime import catalog_for, reset_caches, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter

pytestmark = pytest.mark.slow
POSTGRES_S3 = pytest.mark.parametrize(
    "mirrorflow_env",
    [pytest.param("postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3])],
    indirect=True,
)
MIRRORFLOW = str(Path(sys.executable).with_name("mirrorflow"))


@pytest.fixture
def faulty(seed_index):
    with serve_faulty(seed_index.root, []) as running:
        yield running


def _spawn(tmp_path: Path, *args: str) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = (tmp_path / "sync.log").open("wb")
    return subprocess.Popen([MIRRORFLOW, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def _kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, "the sync was still running when killed"
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL


def _base_version(cli, url: str) -> list[str]:
    """Version 1: shelf-reader, stored. Then the remote also selects mf-demo-lib for the next sync."""
    assert cli("repository", "create", "--name", "foo").exit_code == 0
    created = cli(
        "remote",
        "create",
        "--name",
        "up",
        "--url",
        url,
        "--includes",
        '["shelf-reader"]',
        "--policy",
        "immediate",
    )
    assert created.exit_code == 0, created.stderr
    first = cli("repository", "sync", "--name", "foo", "--remote", "up")
    assert first.exit_code == 0, first.stderr
    assert (
        cli("remote", "update", "--name", "up", "--includes", '["shelf-reader", "mf-demo-lib"]').exit_code
        == 0
    )
    return _filenames(1)


def _filenames(version: int | None = None) -> list[str]:
    reset_caches()  # the subprocess wrote behind this process's pooled connections
    writer = ContentWriter(catalog_for(Settings()))
    return sorted(p.filename for p in writer.content_at("foo", version))


def _assert_consistent_after_the_kill(before: list[str], listed: dict[str, str]) -> None:
    settings = Settings()
    catalog, store = catalog_for(settings), store_for(settings)
    assert catalog.get_repository("foo").latest_version == 1, "no new version appeared"
    assert [v.number for v in catalog.list_versions("foo")] == [1, 0]
    assert _filenames() == before == _filenames(1), "the latest version is intact"
    for sha256 in listed.values():  # every object under a final key is whole and correct
        if store.exists(sha256):
            assert hashlib.sha256(b"".join(store.open_chunks(sha256))).hexdigest() == sha256


def _expire_the_killed_syncs_lease() -> None:
    """Let the killed sync's lease (mirrorflow.storage.locks) run out now instead of in five minutes."""
    from mirrorflow.storage.locks import SyncLock

    with catalog_for(Settings()).session() as session:
        held = session.execute(
            update(SyncLock)
            .where(SyncLock.repository == "foo")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert held.rowcount == 1, "the killed sync still held the repository"


def _assert_rerun_completes(cli, before: list[str]) -> None:
    _expire_the_killed_syncs_lease()
    result = cli("repository", "sync", "--name", "foo", "--remote", "up")
    assert result.exit_code == 0, result.stderr
    assert result.json()["number"] == 2
    files = _filenames()
    assert set(before) < set(files) and any(f.startswith("mf_demo_lib") or "demo-lib" in f for f in files)
    settings = Settings()
    catalog, store = catalog_for(settings), store_for(settings)
    with catalog.session() as session:
        duplicates = session.execute(
            text("SELECT filename FROM packages GROUP BY filename HAVING count(*) > 1")
        ).all()
        versions = session.execute(
            text("SELECT number FROM repository_versions GROUP BY repository_id, number HAVING count(*) > 1")
        ).all()
    assert duplicates == [] and versions == []
    for package in ContentWriter(catalog).content_at("foo"):
        assert package.artifact_sha256 == package.sha256
        assert hashlib.sha256(b"".join(store.open_chunks(package.sha256))).hexdigest() == package.sha256


def _listed_digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.glob("files/*/*") if p.is_file()}


def test_kill_during_a_download_leaves_the_latest_version_intact(cli, faulty, tmp_path, seed_index):
    before = _base_version(cli, faulty.url)
    faulty.rules = [Rule("/files/*/mf*demo*lib*", Fault.slow(0.0, chunk=64, interval=0.2))]
    process = _spawn(tmp_path, "repository", "sync", "--name", "foo", "--remote", "up")
    try:
        path = faulty.wait_for("slow", timeout=60)
        time.sleep(0.5)  # a few 64-byte chunks in: the file is half-downloaded
        _kill(process)
    finally:
        if process.poll() is None:
            process.kill()
    listed = _listed_digests(seed_index.root)
    _assert_consistent_after_the_kill(before, listed)
    partial = listed[path.rsplit("/", 1)[1]]
    assert not store_for(Settings()).exists(partial), "nothing half-written under the final key"
    faulty.rules = []
    _assert_rerun_completes(cli, before)


@POSTGRES_S3
@pytest.mark.parametrize(
    "lock",
    [
        pytest.param(
            "SELECT id FROM repositories WHERE name = 'foo' FOR UPDATE", id="waiting-for-the-row-lock"
        ),
        pytest.param("LOCK TABLE repository_versions IN EXCLUSIVE MODE", id="after-writing-content"),
    ],
)
def test_kill_during_the_commit_leaves_no_partial_version(
    cli, faulty, tmp_path, seed_index, mirrorflow_env, lock
):
    before = _base_version(cli, faulty.url)
    engine = create_engine(mirrorflow_env.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(lock))
            process = _spawn(tmp_path, "repository", "sync", "--name", "foo", "--remote", "up")
            try:
                pid = _wait_for_lock_waiter(conn)
                if "repository_versions" in lock:
                    wrote = conn.execute(
                        text("SELECT query FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                    ).scalar()
                    assert "INSERT INTO repository_versions" in wrote, "blocked at the end of the commit"
                _kill(process)
            finally:
                if process.poll() is None:
                    process.kill()
            conn.rollback()  # the orphaned backend gets its lock, then finds its client gone
            _wait_until_gone(conn, pid)
    finally:
        engine.dispose()
    _assert_consistent_after_the_kill(before, _listed_digests(seed_index.root))
    _assert_rerun_completes(cli, before)


def _wait_for_lock_waiter(conn, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # pg_locks is the whole cluster's: other xdist workers' tests wait on locks too, in their own
        # databases; only a backend of this test's database is the sync.
        pid = conn.execute(
            text(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE NOT l.granted AND a.datname = current_database() LIMIT 1"
            )
        ).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.05)
    raise TimeoutError("the sync never reached the commit")


def _wait_until_gone(conn, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn.rollback()
        if not conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        ).scalar():
            return
        time.sleep(0.1)
    raise TimeoutError(f"backend {pid} of the killed sync is still there")
