"""What a person meets in the Prefect UI, through Prefect's API (the session's test harness): the
custom-run form's schema, refusals before a run exists, one-line parameter errors, summary
artifacts after every kind of failure, and the steps' warnings in the run's logs.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from mirrorflow.storage.locks import acquire


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json() if result.stdout.strip() else None


def _summary(repository: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"sync-{repository}-summary"]))
        )
    return max(found, key=lambda artifact: artifact.created)


def test_the_form_offers_three_titled_remote_choices_and_describes_every_field():
    from mirrorflow.flows.sync_repository import sync_repository

    schema = sync_repository.parameters.model_dump()
    remote = schema["properties"]["remote"]
    assert [choice["title"] for choice in remote["anyOf"]] == [
        "Remote by name",
        "Inline remote",
        "The repository's remote",
    ]
    assert [choice.get("type", "$ref") for choice in remote["anyOf"]] == ["string", "$ref", "null"]
    assert all(choice["description"] for choice in remote["anyOf"])
    inline = schema["definitions"]["InlineRemote"]
    assert inline["title"] == "Inline remote" and inline["properties"]["url"]["title"] == "URL"
    undescribed = [name for name, field in inline["properties"].items() if not field.get("description")]
    assert undescribed == []
    assert inline["properties"]["policy"]["enum"] == ["immediate", "on_demand", "streamed"]


def test_the_server_refuses_a_value_outside_the_enums_before_a_run_exists(mirrorflow_env):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from mirrorflow.flows.sync_repository import sync_repository

    name = f"form-{uuid.uuid4().hex[:8]}"
    deployment_id = sync_repository.to_deployment(name=name, parameters={"repository": name}).apply()
    with get_client(sync_client=True) as client:
        for bad in (
            {"url": "http://i.test/", "exclude_platforms": ["amiga"]},
            {"url": "http://i.test/", "package_types": ["bdist_floppy"]},
            {"url": "http://i.test/", "policy": "lazy"},
        ):
            with pytest.raises(PrefectHTTPStatusError) as refused:
                client.create_flow_run_from_deployment(deployment_id, parameters={"remote": bad})
            assert refused.value.response.status_code == 409, refused.value.response.text
            assert "Validation failed" in refused.value.response.text
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    assert runs == [], "no run was created"


def test_a_bad_specifier_fails_the_run_with_one_line_naming_the_field(cli, seed_index, mirrorflow_env):
    from mirrorflow.flows.sync_repository import sync_repository

    repo = f"spec-{mirrorflow_env.backend}"
    _ok(cli("repository", "create", "--name", repo))
    before = dict(seed_index.hits)
    state = sync_repository(
        repository=repo, remote={"url": seed_index.url, "includes": ["django>>2"]}, return_state=True
    )
    assert state.is_failed()
    assert state.message.startswith("invalid sync parameters: remote.includes: 'django>>2' is not a valid")
    assert "\n" not in state.message and "Traceback" not in state.message
    assert dict(seed_index.hits) == before, "the index was never asked"
    summary = _summary(repo)
    assert "failed: no new version" in summary.data and "remote.includes: 'django>>2'" in summary.data
    assert str(summary.flow_run_id) in summary.data, "the summary names the run"


def test_a_busy_repository_and_an_unknown_remote_leave_a_current_summary(cli, seed_index, mirrorflow_env):
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.flows.sync_repository import sync_repository

    repo = f"busy-{mirrorflow_env.backend}"
    _ok(cli("repository", "create", "--name", repo))
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]'))
    acquire(
        catalog_for(Settings()),
        repo,
        holder="another sync",
        wait=0,
        lease=timedelta(minutes=5),
    )
    busy = sync_repository(repository=repo, remote="bar", lock_wait_s=0, return_state=True)
    assert busy.is_failed()
    summary = _summary(repo)
    assert "RepositoryBusy" in summary.data and "another sync" in summary.data
    assert str(summary.flow_run_id) in summary.data

    unknown = sync_repository(repository=repo, remote="nowhere", return_state=True)
    assert unknown.is_failed()
    later = _summary(repo)
    assert later.flow_run_id != summary.flow_run_id and "'nowhere'" in later.data


def test_a_cancelled_or_crashed_run_says_so_in_its_summary_and_progress(mirrorflow_env):
    """The runner calls these hooks after the run's process ended: here they are called as it does."""
    from prefect.artifacts import create_progress_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.states import Cancelled, Crashed

    from mirrorflow.flows.report import publish_end
    from mirrorflow.flows.sync_repository import sync_repository

    repo = f"ended-{mirrorflow_env.backend}"
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(sync_repository)
        run = client.create_flow_run(sync_repository, parameters={"repository": repo}, name=f"{repo} <- bar")
        assert flow_id == run.flow_id
    from prefect.context import FlowRunContext  # noqa: F401  (the hook runs without one)

    progress_key = f"sync-{repo}-progress"
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.actions import ArtifactCreate

        client.create_artifact(
            ArtifactCreate(key=progress_key, type="progress", data=37.5, flow_run_id=run.id)
        )
    publish_end(sync_repository, run, Cancelled(message="Flow run was cancelled by a user."))
    summary = _summary(repo)
    assert summary.data.startswith(f"# Sync of `{repo}` cancelled: no new version")
    assert f"{repo} <- bar" in summary.data and str(run.id) in summary.data and "by a user" in summary.data
    with get_client(sync_client=True) as client:
        (progress,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[progress_key]))
        )
    assert progress.data == 37.5 and "cancelled at 37.5%" in progress.description
    publish_end(
        sync_repository, run, Crashed(message="Flow run infrastructure exited with non-zero status code -9.")
    )
    assert "crashed" in _summary(repo).data and "-9" in _summary(repo).data
    assert create_progress_artifact  # imported: the flow's own progress path is tested in test_prefect_ops


def test_the_steps_warnings_reach_the_runs_logs(mirrorflow_env, caplog):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from mirrorflow.flows.logs import route_to_prefect
    from mirrorflow.tasks.retrying import call_with_retries

    answers = iter([TimeoutError("HTTP 503 for http://i.test/simple/demo/")])

    def fetch() -> str:
        error = next(answers, None)
        if error:
            raise error
        return "ok"

    @flow
    def retried() -> str:
        route_to_prefect()
        return call_with_retries(fetch, attempts=3, transient=(TimeoutError,), sleep=lambda _: None)

    state = retried(return_state=True)
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    warnings = [log.message for log in logs if log.level == logging.WARNING]
    assert any("retrying in" in text and "HTTP 503" in text and "try 1 of 3" in text for text in warnings), (
        logs
    )
