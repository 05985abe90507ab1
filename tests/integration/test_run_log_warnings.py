"""The steps' warnings and progress lines reach the Prefect run's logs, read back through the API.

The stages run by hand inside one flow (``mirrorflow.flows.logs.route_to_prefect`` on, as the sync
flow does) against a fixture index that misbehaves: a page older than the listing (retried, then
given up), a file with an unsafe URL (skipped) and a download that trickles in (progress lines). The
pages and downloads run on the shared fetch pool's threads, so this also holds that those threads
log into the run that started them.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from support_sync import sync_config

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index
from mirrorflow.fixtureindex.faults import Fault, Rule, serve_faulty
from mirrorflow.storage.content import ContentWriter
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import HttpSpec, Policy
from mirrorflow.tasks.index_client import IndexClient, build_http_client
from mirrorflow.tasks.listing import Wanted
from mirrorflow.tasks.stages import run_batch

JSON = "application/vnd.pypi.simple.v1+json"
SLOW = "slowpkg-1.0.tar.gz"


@pytest.fixture
def faulty(tmp_path):
    projects = [
        FixtureProject("lagging", [FixtureFile("lagging-1.0.tar.gz", b"lagging" * 10)]),
        FixtureProject("hostile", [FixtureFile("hostile-1.0.tar.gz", b"hostile" * 10)]),
        FixtureProject("slowpkg", [FixtureFile(SLOW, bytes(range(256)) * 64)]),  # 16 KiB
    ]
    index = build_index(projects, tmp_path / "index")
    with serve_faulty(index.root, []) as running:
        yield running


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_stale_pages_unsafe_files_and_slow_downloads_are_in_the_runs_logs(
    prefect_harness, faulty, catalog, fs_store
):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from mirrorflow.flows.logs import route_to_prefect

    page = httpx.get(f"{faulty.url}hostile/", headers={"Accept": JSON}).json()
    page["files"][0]["url"] = "file:///etc/passwd"
    faulty.rules = [
        Rule("/simple/hostile/", Fault.replace(json.dumps(page).encode(), JSON)),
        Rule(f"/files/*/{SLOW}", Fault.slow(chunk=2048, interval=0.02)),  # 8 chunks, 0.14 s
    ]
    catalog.create_remote("up", url=faulty.url)
    repo = catalog.create_repository("repo", remote="up")
    config = sync_config(
        repository_id=repo.id,
        policy=Policy.IMMEDIATE,
        mirror=False,
        attempts=2,
        stale_backoff=0.01,
        progress_every=0.03,
        http=HttpSpec(index_url=faulty.url, concurrency=2, max_page_bytes=2**20),
    )
    http = build_http_client(concurrency=2, timeout=5.0)
    services = SyncServices(
        index=IndexClient(faulty.url, client=http), store=fs_store, writer=ContentWriter(catalog)
    )
    wanted = [Wanted("lagging", expected_serial=10**6), Wanted("hostile"), Wanted("slowpkg")]

    @flow
    def stages() -> None:
        route_to_prefect()
        report = run_batch(wanted, config, services)
        assert report.stale == ["lagging"] and report.downloaded_files == 1, report

    try:
        state = stages(return_state=True)
    finally:
        http.close()
    assert state.is_completed(), state
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    warnings = [log.message for log in logs if log.level == logging.WARNING]
    infos = [log.message for log in logs if log.level == logging.INFO]
    assert any(
        m.startswith("lagging: page older than the listing") and "retrying in" in m and "try 1 of 2" in m
        for m in warnings
    ), warnings
    assert any(
        m.startswith("lagging: page still older than the listing") and "after 2 tries" in m for m in warnings
    ), warnings
    assert any(m.startswith("hostile: skipping 'hostile-1.0.tar.gz'") and "unsafe" in m for m in warnings), (
        warnings
    )
    progress = [m for m in infos if m.startswith(f"downloading {SLOW}: ")]
    assert progress and all(" of 16,384 bytes after " in m for m in progress), infos
    received = [int(m.split(": ")[1].split(" of ")[0].replace(",", "")) for m in progress]
    assert received == sorted(received) and 0 < received[0] < 16384, progress


def test_a_download_logs_a_progress_line_each_interval_while_it_runs(caplog):
    from mirrorflow.tasks.distributions import DistFile
    from mirrorflow.tasks.fetch import _reporting

    ticks = iter([0.0, 4.0, 10.5, 12.0, 21.0, 25.0])  # started, then one reading per chunk
    file = DistFile(
        filename="big-1.0.tar.gz", url="https://index.example/files/big-1.0.tar.gz", sha256=None, size=5000
    )
    with caplog.at_level(logging.INFO, logger="mirrorflow.tasks.progress"):
        chunks = list(_reporting(iter([b"x" * 1000] * 5), file, every=10.0, clock=lambda: next(ticks)))
    assert chunks == [b"x" * 1000] * 5, "the bytes pass through unchanged"
    assert [r.getMessage() for r in caplog.records] == [
        "downloading big-1.0.tar.gz: 2,000 of 5,000 bytes after 10 s",
        "downloading big-1.0.tar.gz: 4,000 of 5,000 bytes after 21 s",
    ]
