"""Resume, don't redo: a rerun after a killed sync reuses every object the store already holds whole.

A sync killed with ``kill -9`` leaves verified objects under their content-addressed keys that no
catalog row names yet. Simulated here exactly: the objects of an immediate sync stay in the store
while the catalog that recorded them is replaced by an empty one, and some objects are removed.
"""

from __future__ import annotations

import pytest

from mirrorflow.flows.runtime import reset_caches, store_for
from mirrorflow.flows.settings import Settings

SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def _immediate_sync(cli, url: str) -> dict:
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(
        cli(
            "remote",
            "create",
            "--name",
            "bar",
            "--url",
            url,
            "--includes",
            '["Django"]',
            "--policy",
            "immediate",
        )
    )
    return _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))


@SQLITE_ONLY
def test_a_rerun_after_a_kill_downloads_only_what_the_store_lacks(
    cli, seed_index, mirrorflow_env, monkeypatch
):
    first = _immediate_sync(cli, seed_index.url)
    files = first["report"]["downloaded_files"]
    assert files >= 4 and first["report"]["resumed_files"] == 0

    # The store keeps the objects; the catalog that recorded them is gone (as after a kill before commit).
    store = store_for(Settings())
    content = _ok(cli("content", "list", "--repository", "foo"))
    lost = sorted(package["sha256"] for package in content)[: files // 2]
    for digest in lost:
        store.delete(digest)
    monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", f"sqlite:///{mirrorflow_env.home / 'fresh.db'}")
    reset_caches()
    before = sum(
        count
        for path, count in seed_index.hits.items()
        if "/files/" in path or path.endswith((".whl", ".gz"))
    )

    rerun = _immediate_sync(cli, seed_index.url)
    fetched = sum(
        count
        for path, count in seed_index.hits.items()
        if "/files/" in path or path.endswith((".whl", ".gz"))
    )
    assert rerun["report"]["downloaded_files"] == len(lost)
    assert rerun["report"]["resumed_files"] == files - len(lost)
    assert fetched - before == len(lost)
    assert rerun["content_summary"]["present"]["python.python"]["count"] == len(content)
    for package in _ok(cli("content", "list", "--repository", "foo")):
        assert store.stat(package["sha256"]) == package["size"]


@SQLITE_ONLY
def test_a_rerun_with_every_object_stored_downloads_nothing(cli, seed_index, mirrorflow_env, monkeypatch):
    first = _immediate_sync(cli, seed_index.url)
    monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", f"sqlite:///{mirrorflow_env.home / 'fresh.db'}")
    reset_caches()
    rerun = _immediate_sync(cli, seed_index.url)
    # Every object is whole and of the listed size: all reused, none fetched.
    assert rerun["report"]["resumed_files"] == first["report"]["downloaded_files"]
    assert rerun["report"]["downloaded_files"] == 0
