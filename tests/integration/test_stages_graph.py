"""The sync's five stages, as the Prefect graph shows them: list-projects -> resolve-batch ->
filter-batch -> fetch-batch per batch, and commit-version drawn after every fetch-batch. A batch
whose projects failed ends Failed and still hands its report to the flow."""

from __future__ import annotations

import time
from collections import defaultdict

import httpx
import pytest
from support_sync import sync_config

from mirrorflow.storage.content import ContentWriter
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.index_client import IndexClient
from mirrorflow.tasks.report import RERUN, BatchReport
from mirrorflow.tasks.resolve import ResolvedBatch, ResolvedProject
from mirrorflow.tasks.stages import fetch_batch_task

STAGES = ("list-projects", "resolve-batch", "filter-batch", "fetch-batch", "commit-version")


def _ids(inputs: list[object]) -> set[str]:
    return {str(getattr(item, "id", "")) for item in inputs}


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_the_graph_shows_the_five_stages_and_the_commit_waits_on_every_fetch(cli, seed_index, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from mirrorflow.flows.sync_repository import sync_repository

    monkeypatch.setenv("MIRRORFLOW_BATCH_SIZE", "2")  # three projects in two batches
    assert cli("repository", "create", "--name", "graph").exit_code == 0
    includes = ["shelf-reader", "mf-demo-app", "mf-demo-lib"]
    state = sync_repository(
        repository="graph", remote={"url": seed_index.url, "includes": includes}, return_state=True
    )
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    projects = state.result().report["projects"]
    batches = -(-projects // 2)
    assert batches >= 2
    with get_client(sync_client=True) as client:
        filter_ = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        deadline = time.monotonic() + 20  # task runs reach the API as events: bounded wait for all of them
        while True:
            runs = client.read_task_runs(flow_run_filter=filter_)
            if len(runs) >= 2 + 3 * batches or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    by_stage = defaultdict(list)
    for run in runs:
        stage = next((s for s in STAGES if run.name.startswith(s)), run.name)
        by_stage[stage].append(run)
    assert {stage: len(found) for stage, found in by_stage.items()} == {
        "list-projects": 1,
        "resolve-batch": batches,
        "filter-batch": batches,
        "fetch-batch": batches,
        "commit-version": 1,
    }
    (listed,) = by_stage["list-projects"]
    ids = {stage: {str(run.id) for run in by_stage[stage]} for stage in STAGES}
    for run in by_stage["resolve-batch"]:
        assert _ids(run.task_inputs["wait_for"]) == {str(listed.id)}
    for stage, upstream in (("filter-batch", "resolve-batch"), ("fetch-batch", "filter-batch")):
        assert set().union(*(_ids(run.task_inputs["batch"]) for run in by_stage[stage])) == ids[upstream]
    (commit,) = by_stage["commit-version"]
    assert _ids(commit.task_inputs["wait_for"]) == ids["fetch-batch"], "the commit waits on every fetch-batch"


def test_a_batch_with_failed_projects_ends_failed_and_keeps_its_report(catalog, fs_store, prefect_harness):
    from prefect import flow

    repo = catalog.create_repository("foo")
    config = sync_config(repository_id=repo.id, mirror=False)
    with httpx.Client() as http:
        services = SyncServices(
            index=IndexClient("https://index.example/simple/", client=http),
            store=fs_store,
            writer=ContentWriter(catalog),
        )
        batch = ResolvedBatch([ResolvedProject("broken", failure="TransientError: 503", advice=RERUN)])

        @flow
        def one_batch() -> tuple[bool, str | None, BatchReport]:
            future = fetch_batch_task.submit(batch, config, services, first="broken")
            future.wait()
            return future.state.is_failed(), future.state.message, future.result(raise_on_failure=False)

        failed, message, report = one_batch()
    assert failed and message == "1 of 1 project(s) failed: broken: TransientError: 503"
    assert report.failures == {"broken": "TransientError: 503"} and report.stale == ["broken"]
