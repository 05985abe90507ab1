"""``mirrorflow.deployments.serve`` follows the catalog without a restart, owns no repository a work pool owns,
and puts back the catalog's schedule over a change made in the UI (against the session's Prefect API).

A real ``Runner`` registers the deployments; it is never started, since what it would run is
covered by ``test_prefect_ops_server``: here each poll is one ``refresh()``, called by the test.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from mirrorflow.deployments.serve import CatalogServer, Served, drift


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json() if result.stdout.strip() else None


def _deployment(name: str):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(f"sync-repository/{name}")
        except ObjectNotFound:
            return None


@pytest.fixture
def served(mirrorflow_env):
    from prefect.runner import Runner

    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings

    server = CatalogServer(Runner(name=f"test-{uuid.uuid4().hex[:8]}"), catalog_for(Settings()))
    return lambda: asyncio.run(server.refresh())


def test_serve_follows_the_catalog_and_restores_its_schedule_over_the_ui(cli, seed_index, served, caplog):
    from prefect.client.orchestration import get_client

    new = f"new-{uuid.uuid4().hex[:8]}"  # one Prefect API for the whole session
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url))
    _ok(cli("repository", "create", "--name", new, "--remote", "bar"))
    served()
    assert _deployment(new).schedules == [], "a new repository is served, no restart"

    _ok(cli("repository", "schedule", "--name", new, "--interval", "3600"))
    served()
    first = _deployment(new)
    assert [s.schedule.interval.total_seconds() for s in first.schedules] == [3600] and not first.paused

    assert _ok(cli("repository", "schedule", "--name", new, "--pause"))["paused"] is True
    served()
    assert _deployment(new).paused is True

    # The UI resumes it and changes its interval: the next poll puts the catalog's back, saying so.
    with get_client(sync_client=True) as client:
        client.resume_deployment(first.id)
    caplog.set_level(logging.WARNING, logger="mirrorflow.serve")
    served()
    assert _deployment(new).paused is True
    assert f"sync-repository/{new} was changed outside mirrorflow (paused is False" in caplog.text
    assert f"mirrorflow repository schedule --name {new}" in caplog.text

    _ok(cli("repository", "schedule", "--name", new, "--resume"))
    assert _ok(cli("repository", "schedule", "--name", new, "--delete")) is None
    served()
    resumed = _deployment(new)
    assert resumed.schedules == [] and resumed.paused is False
    assert _ok(cli("repository", "schedule-show", "--name", new)) is None


def test_a_repository_a_work_pool_deploys_is_not_served(cli, seed_index, served, caplog):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    pooled = f"pooled-{uuid.uuid4().hex[:8]}"
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url))
    _ok(cli("repository", "create", "--name", pooled, "--remote", "bar"))
    served()
    assert _deployment(pooled) is not None
    with get_client(sync_client=True) as client:  # as `prefect deploy` with deployments/prefect.yaml does
        pool = f"pool-{uuid.uuid4().hex[:8]}"
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = client.read_flow_by_name("sync-repository").id
        client.create_deployment(
            flow_id=flow_id, name=f"{pooled}-pool", work_pool_name=pool, parameters={"repository": pooled}
        )
    caplog.set_level(logging.WARNING, logger="mirrorflow.serve")
    served()
    assert _deployment(pooled) is None, "the work pool's deployment is the only one"
    assert _deployment(f"{pooled}-pool") is not None
    assert f"no longer serving sync-repository/{pooled}: it belongs to sync-repository/{pooled}-pool" in (
        caplog.text
    )
    served()
    assert _deployment(pooled) is None, "and it stays so"


@pytest.mark.parametrize(
    ("paused", "schedules", "expected"),
    [
        pytest.param(False, [("0 * * * *", None, True)], None, id="same"),
        pytest.param(True, [("0 * * * *", None, True)], "paused is True", id="paused-in-ui"),
        pytest.param(False, [("5 * * * *", None, True)], "cron '5 * * * *'", id="cron-edited"),
        pytest.param(False, [("0 * * * *", None, False)], "(inactive)", id="toggled-off"),
        pytest.param(False, [], "schedules are none", id="deleted-in-ui"),
    ],
)
def test_drift_names_what_the_ui_changed(paused, schedules, expected):
    from datetime import timedelta
    from types import SimpleNamespace as NS

    served = Served("foo", "bar", "", False, None, "0 * * * *", None, False)
    items = [
        NS(active=active, schedule=NS(cron=cron) if cron else NS(interval=timedelta(seconds=interval)))
        for cron, interval, active in schedules
    ]
    found = drift(served, NS(paused=paused, schedules=items))
    assert found is None if expected is None else expected in found


def test_serve_shows_its_info_lines_when_prefect_has_configured_logging():
    # As Prefect leaves logging when serve starts: a handler on the root logger, the root at WARNING
    # (basicConfig then does nothing), so "serving sync-repository/<name>" never showed.
    from mirrorflow.deployments.serve import configure_logging, log

    root, handler = logging.getLogger(), logging.NullHandler()
    level_before, own_before = root.level, log.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        configure_logging()
        assert log.isEnabledFor(logging.INFO)
    finally:
        root.removeHandler(handler)
        root.setLevel(level_before)
        log.setLevel(own_before)
