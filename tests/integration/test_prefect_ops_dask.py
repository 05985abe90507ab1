"""Scale-out: the sync's tasks pickle and run on a local Dask cluster of worker processes."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("prefect_dask", reason="the optional 'dask' extra is not installed")

pytestmark = pytest.mark.slow


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_a_sync_runs_on_a_local_dask_cluster_of_processes(cli, seed_index, mirrorflow_env):
    from prefect_dask import DaskTaskRunner

    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.flows.sync_repository import run_sync
    from mirrorflow.storage.content import ContentWriter
    from mirrorflow.tasks import clients

    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--policy", "immediate",
            "--includes", '["shelf-reader", "pip-tools", "mf-demo-app", "mf-demo-lib"]'))  # fmt: skip
    settings = Settings(batch_size=1)  # one task per project: spread over the workers
    runner = DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 2,
            "processes": True,
            "dashboard_address": None,
        },
    )
    result = run_sync("foo", "bar", mirror=False, settings=settings, task_runner=runner)
    assert result.version == 1 and result.report["projects"] == 4 and not result.report["failures"]
    assert not clients._built, "the workers built their own services; this process passed its own"

    writer = ContentWriter(catalog_for(Settings()))
    packages = writer.content_at("foo")
    assert {p.normalized_name for p in packages} == {
        "shelf-reader",
        "pip-tools",
        "mf-demo-app",
        "mf-demo-lib",
    }
    store = store_for(Settings())
    for package in packages:
        body = b"".join(store.open_chunks(package.sha256))
        assert hashlib.sha256(body).hexdigest() == package.sha256
    again = run_sync("foo", "bar", mirror=False, settings=settings, task_runner=runner)
    assert again.version is None, "a second sync on the cluster changes nothing"
