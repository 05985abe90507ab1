"""Prefect-native operations: typed parameters, retries on transient errors only, the per-repository
sync lock (a race of two syncs), run report artifacts, schedules and ``--background``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from datetime import timedelta

import httpx
import pytest
from support_sync import sync_config

from mirrorflow.flows.params import InvalidParameters, validate_sync_parameters
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.locks import RepositoryBusy, acquire, holding, release, renew
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import HttpSpec, Policy, StoreSpec
from mirrorflow.tasks.filters import FilterSpec
from mirrorflow.tasks.index_client import IndexClient
from mirrorflow.tasks.stages import run_batch


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


# -- typed parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "field", "value"),
    [
        pytest.param({"url": "http://i.test/", "includes": ["django>=>1"]}, "remote.includes", "django>=>1", id="bad-specifier"),
        pytest.param({"url": "http://i.test/", "exclude_platforms": ["amiga"]}, "remote.exclude_platforms", "amiga", id="unknown-platform"),
        pytest.param({"url": "ftp://i.test/"}, "remote.url", "ftp://i.test/", id="not-http"),
        pytest.param({"url": "http://i.test/", "policy": "lazy"}, "remote.policy", "lazy", id="unknown-policy"),
    ],
)  # fmt: skip
def test_bad_inline_remotes_are_refused_naming_the_field(remote, field, value):
    with pytest.raises(InvalidParameters) as caught:
        validate_sync_parameters(repository="foo", remote=remote)
    assert f"{field}: " in str(caught.value) and repr(value) in str(caught.value)


def test_good_parameters_take_a_remote_name_or_an_inline_remote():
    assert validate_sync_parameters(repository="foo", remote="bar").remote == "bar"
    inline = validate_sync_parameters(
        repository="foo", remote={"url": "http://i.test/", "includes": ["scipy"]}
    )
    assert inline.remote.includes == ["scipy"]  # type: ignore[union-attr]
    with pytest.raises(InvalidParameters, match="repository: "):
        validate_sync_parameters(repository="")


def test_the_flow_refuses_bad_parameters_before_it_runs(cli, seed_index):
    from mirrorflow.flows.sync_repository import sync_repository

    _ok(cli("repository", "create", "--name", "foo"))
    bad = {"url": seed_index.url, "exclude_platforms": ["amiga"]}
    before = dict(seed_index.hits)
    state = sync_repository(repository="foo", remote=bad, return_state=True)
    assert state.is_failed() and "remote.exclude_platforms: " in state.message and "'amiga'" in state.message
    assert _ok(cli("repository", "show", "--name", "foo"))["latest_version"] == 0
    assert dict(seed_index.hits) == before, "the index was never asked"


def test_the_ui_form_shows_every_remote_field_with_its_description():
    from mirrorflow.flows.sync_repository import sync_repository

    schema = sync_repository.parameters.model_dump()
    assert set(schema["properties"]) == {"repository", "remote", "mirror", "lock_wait_s"}
    assert all(prop.get("description") for prop in schema["properties"].values())
    remote_fields = schema["definitions"]["InlineRemote"]["properties"]
    for name in ("url", "includes", "excludes", "exclude_platforms", "keep_latest_packages", "policy"):
        assert remote_fields[name].get("description"), name
    assert not {"password", "username", "client_key", "proxy_password"} & set(remote_fields), (
        "no secrets inline"
    )


def test_an_inline_remote_syncs_without_a_remote_row(cli, seed_index):
    from mirrorflow.flows.sync_repository import INLINE_REMOTE, sync_repository

    _ok(cli("repository", "create", "--name", "foo"))
    result = sync_repository(repository="foo", remote={"url": seed_index.url, "includes": ["shelf-reader"]})
    assert result.version == 1
    version = _ok(cli("repository", "version", "show", "--repository", "foo"))
    assert version["content_summary"]["present"]["python.python"]["count"] == 2
    assert _ok(cli("remote", "list")) == []
    assert INLINE_REMOTE == "(inline)"


# -- retries: transient errors only ----------------------------------------------------------

BODY = b"the wheel"


def _page(sha256: str) -> bytes:
    url = "http://i.test/files/demo-1.0-py3-none-any.whl"
    return json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "demo",
            "files": [{"filename": "demo-1.0-py3-none-any.whl", "url": url, "hashes": {"sha256": sha256}}],
        }
    ).encode()


def _run_batch(tmp_path, catalog: Catalog, handler) -> tuple[dict[str, int], object]:
    hits: dict[str, int] = {}

    def counting(request: httpx.Request) -> httpx.Response:
        hits[request.url.path] = hits.get(request.url.path, 0) + 1
        return handler(request)

    client = httpx.Client(transport=httpx.MockTransport(counting))
    repo = catalog.create_repository("foo")
    config = sync_config(
        sync_id="00000000-0000-0000-0000-000000000001",
        repository_id=repo.id,
        policy=Policy.IMMEDIATE,
        spec=FilterSpec.build(includes=["demo"]),
        mirror=False,
    )
    services = SyncServices(
        index=IndexClient("http://i.test/simple/", client=client),
        store=FileSystemStore(tmp_path / "artifacts"),
        writer=ContentWriter(catalog),
    )
    with client:
        return hits, run_batch(["demo"], config, services)


def _json(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "application/vnd.pypi.simple.v1+json"})


def test_a_projects_upstream_status_is_recorded_in_the_report(tmp_path, catalog):
    sha = hashlib.sha256(BODY).hexdigest()
    page = json.loads(_page(sha)) | {
        "meta": {"api-version": "1.4"},
        "project-status": {"status": "archived", "reason": "moved to demo2"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/simple/"):
            return _json(json.dumps(page).encode())
        return httpx.Response(200, content=BODY)

    _, report = _run_batch(tmp_path, catalog, handler)
    assert report.project_status == {"demo": "archived: moved to demo2"}
    assert report.as_dict()["project_status"] == {"demo": "archived: moved to demo2"}


def test_a_404_is_not_retried(tmp_path, catalog):
    hits, report = _run_batch(tmp_path, catalog, lambda request: httpx.Response(404))
    assert hits == {"/simple/demo/": 1}
    assert report.not_found == ["demo"] and not report.failures


def test_a_hash_mismatch_is_fetched_once_more_then_quarantined(tmp_path, catalog):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/simple/"):
            return _json(_page("0" * 64))
        return httpx.Response(200, content=BODY)

    hits, report = _run_batch(tmp_path, catalog, handler)
    # Not retried as a transient fault (max_retries), but fetched a second time, then left out.
    assert hits == {"/simple/demo/": 1, "/files/demo-1.0-py3-none-any.whl": 2}
    assert not report.failures and report.stale == ["demo"]
    assert "0" * 64 in report.unverifiable["demo-1.0-py3-none-any.whl"]


def test_a_transient_error_is_retried_until_it_passes(tmp_path, catalog):
    sha = hashlib.sha256(BODY).hexdigest()
    answers = iter([httpx.Response(503), httpx.Response(502)])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/simple/"):
            return _json(_page(sha))
        return next(answers, None) or httpx.Response(200, content=BODY)

    hits, report = _run_batch(tmp_path, catalog, handler)
    assert hits == {"/simple/demo/": 1, "/files/demo-1.0-py3-none-any.whl": 3}
    assert not report.failures and report.downloaded_bytes == len(BODY)


# -- the per-repository lock -----------------------------------------------------------------


def test_a_held_repository_refuses_a_second_sync_naming_the_holder(catalog):
    first = acquire(catalog, "foo", holder="flow run calm-fox", wait=0)
    with pytest.raises(RepositoryBusy) as caught:
        acquire(catalog, "foo", holder="flow run other", wait=0.3, poll=0.1)
    assert "'foo'" in str(caught.value) and "'flow run calm-fox'" in str(caught.value)
    acquire(catalog, "bar", holder="x", wait=0)  # other repositories are not held
    release(catalog, first)
    release(catalog, acquire(catalog, "foo", holder="flow run other", wait=0))


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_release_it(catalog):
    old = acquire(catalog, "foo", holder="killed", wait=0, lease=timedelta(milliseconds=1))
    new = acquire(catalog, "foo", holder="next", wait=1, lease=timedelta(minutes=5), poll=0.05)
    assert not renew(catalog, old), "the killed sync lost its lease"
    release(catalog, old)
    with pytest.raises(RepositoryBusy, match="'next'"):
        acquire(catalog, "foo", holder="third", wait=0)
    release(catalog, new)


def test_holding_renews_the_lease_while_the_block_runs(catalog):
    import time

    with holding(catalog, "foo", holder="long", wait=0, lease=timedelta(seconds=0.6)):
        time.sleep(1.0)  # past the first lease: the heartbeat kept it
        with pytest.raises(RepositoryBusy, match="'long'"):
            acquire(catalog, "foo", holder="impatient", wait=0)
    release(catalog, acquire(catalog, "foo", holder="after", wait=0))


def test_two_concurrent_syncs_of_one_repository_give_consecutive_versions(cli, seed_index):
    from mirrorflow.flows.sync_repository import run_sync

    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "a", "--url", seed_index.url, "--includes", '["shelf-reader"]'))
    _ok(cli("remote", "create", "--name", "b", "--url", seed_index.url, "--includes", '["pip-tools"]'))
    settings = Settings()
    start = threading.Barrier(2)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def sync(remote: str) -> None:
        start.wait()
        try:
            results[remote] = run_sync("foo", remote, mirror=False, settings=settings)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sorted(r.version for r in results.values()) == [1, 2]
    assert max(r.report["lock_wait_s"] for r in results.values()) > 0, "one sync waited for the other"
    first = min(results, key=lambda name: results[name].version)
    second = "b" if first == "a" else "a"
    v1 = _ok(cli("content", "list", "--repository", "foo", "--version", "1"))
    v2 = _ok(cli("content", "list", "--repository", "foo", "--version", "2"))
    names = {"a": {"shelf-reader"}, "b": {"pip-tools"}}
    assert {p["name"].lower() for p in v1} == names[first]
    assert {p["name"].lower() for p in v2} == names[first] | names[second], "nothing lost"
    filenames = [p["filename"] for p in v2]
    assert len(filenames) == len(set(filenames)), "nothing duplicated"
    assert {p["filename"] for p in v1} <= set(filenames)
    versions = _ok(cli("repository", "version", "list", "--repository", "foo"))
    assert [v["number"] for v in versions] == [2, 1, 0]


# -- picklable tasks -------------------------------------------------------------------------


def test_task_arguments_pickle_and_services_are_rebuilt_from_the_config_in_another_process(
    tmp_path, catalog_url
):
    store = StoreSpec(root=str(tmp_path / "artifacts"))
    http = HttpSpec(
        index_url="http://i.test/simple/", concurrency=2, max_page_bytes=1 << 20, password="s3cret"
    )
    config = sync_config(
        catalog_url=catalog_url,
        store=store,
        http=http,
        spec=FilterSpec.build(includes=["scipy>=1"]),
        mirror=False,
    )
    assert pickle.loads(pickle.dumps(config)) == config
    assert "s3cret" not in repr(config)
    built = SyncServices.build(config.clients_key)
    try:
        # Unpickled (a Dask worker), the services are built from the config once per process and shared.
        copy = pickle.loads(pickle.dumps(built))
        assert copy is not built and copy.key == built.key
        assert copy.index is pickle.loads(pickle.dumps(built)).index, "built once per process, then shared"
        assert copy.index.index_url == "http://i.test/simple/"
        assert copy.writer.count_packages() == 0
        with pytest.raises(TypeError, match="by hand"):
            pickle.dumps(SyncServices(index=built.index, store=built.store, writer=built.writer))
    finally:
        from mirrorflow.tasks import clients

        for services in [built, *clients._built.values()]:
            services.index._client.close()
            services.writer.catalog.dispose()
        clients._built.clear()


# -- report artifacts ------------------------------------------------------------------------


def test_a_sync_publishes_its_report_summary_and_progress_as_artifacts(cli, seed_index):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _ok(cli("repository", "create", "--name", "report-me"))
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader", "scipy"]',
            "--exclude-platforms", '["windows"]'))  # fmt: skip
    _ok(cli("repository", "sync", "--name", "report-me", "--remote", "bar"))
    keys = ["sync-report-me", "sync-report-me-summary", "sync-report-me-progress"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    rows = json.loads(by_key["sync-report-me"].data)
    table = {row["metric"]: row["value"] for row in rows}
    version = _ok(cli("repository", "version", "show", "--repository", "report-me"))
    added = version["content_summary"]["added"]["python.python"]["count"]
    assert table["added"] == str(added) == table["present"] and table["removed"] == "0"
    assert int(table["dropped by platform"]) >= 1 and "downloaded_bytes" in table and "duration_s" in table
    assert "version 1" in by_key["sync-report-me-summary"].data
    assert by_key["sync-report-me-progress"].data == 100.0


def test_a_failed_run_replaces_the_summary_naming_itself_and_runs_carry_names_and_tags(
    cli, seed_index, mirrorflow_env
):
    repo = f"tagged-{mirrorflow_env.backend}"  # one Prefect server for the whole session
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    _ok(cli("repository", "create", "--name", repo))
    _ok(cli("remote", "create", "--name", "good", "--url", seed_index.url, "--includes", '["shelf-reader"]'))
    _ok(
        cli(
            "remote",
            "create",
            "--name",
            "nowhere",
            "--url",
            seed_index.url.removesuffix("simple/") + "nothing/",
        )
    )
    _ok(cli("repository", "sync", "--name", repo, "--remote", "good"))
    failed = cli("repository", "sync", "--name", repo, "--remote", "nowhere")
    assert failed.exit_code == 1
    with get_client(sync_client=True) as client:
        history = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"sync-{repo}-summary"]))
        )
        summary = max(history, key=lambda artifact: artifact.created)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"repository:{repo}"]))
        )
    assert "failed: no new version" in summary.data and "NoSimpleIndex" in summary.data
    assert sorted(run.name for run in runs) == [f"{repo} <- good", f"{repo} <- nowhere"]
    assert {tag for run in runs for tag in run.tags} >= {"mirrorflow", f"repository:{repo}", "remote:good"}
    assert any(run.name in summary.data for run in runs if run.name == f"{repo} <- nowhere")


def test_the_form_offers_the_filter_choices_and_the_server_refuses_another_value():
    from mirrorflow.flows.sync_repository import sync_repository

    schema = sync_repository.parameters.model_dump()["definitions"]["InlineRemote"]["properties"]
    assert schema["package_types"]["items"]["enum"][:2] == ["bdist_dmg", "bdist_dumb"]
    assert schema["exclude_platforms"]["items"]["enum"] == ["windows", "macos", "linux", "freebsd"]
    assert schema["policy"]["enum"] == ["immediate", "on_demand", "streamed"]


# -- schedules and --background --------------------------------------------------------------


def test_schedule_creates_then_updates_and_refuses_bad_input(cli, seed_index):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url))
    made = _ok(cli("repository", "schedule", "--name", "foo", "--remote", "bar", "--cron", "0 * * * *"))
    assert made["cron"] == "0 * * * *" and made["interval"] is None and made["remote"] == "bar"
    updated = _ok(cli("repository", "schedule", "--name", "foo", "--remote", "bar", "--interval", "3600"))
    assert updated["cron"] is None and updated["interval"] == 3600
    assert _ok(cli("repository", "schedule-show", "--name", "foo"))["interval"] == 3600
    for args, message in [
        (["--cron", "0 * * * *", "--interval", "5"], "exactly one of --cron or --interval"),
        ([], "exactly one of --cron or --interval"),
        (["--cron", "every hour"], "cron: 'every hour' is not a cron expression"),
        (["--interval", "0"], "interval: must be a number of seconds from 1 to 31536000 (got 0)"),
    ]:
        bad = cli("repository", "schedule", "--name", "foo", "--remote", "bar", *args)
        assert bad.exit_code == 1 and message in bad.stderr, bad.stderr
    missing = cli("repository", "schedule", "--name", "nope", "--remote", "bar", "--interval", "60")
    assert missing.exit_code == 1 and "'nope'" in missing.stderr
    assert _ok(cli("repository", "schedule-show", "--name", "foo"))["interval"] == 3600, "nothing changed"
    kept = _ok(cli("repository", "schedule", "--name", "foo", "--interval", "60"))
    assert kept["remote"] == "bar" and kept["interval"] == 60, "changing the timing keeps the remote"
    _ok(cli("repository", "create", "--name", "unscheduled"))
    no_remote = cli("repository", "schedule", "--name", "unscheduled", "--interval", "60")
    assert no_remote.exit_code == 1 and "has no remote" in no_remote.stderr


def test_background_without_a_served_deployment_says_what_to_do(cli, seed_index):
    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url))
    _ok(cli("repository", "create", "--name", "foo", "--remote", "bar"))
    result = cli("repository", "sync", "--name", "foo", "--background")
    assert result.exit_code == 1
    assert (
        "no Prefect deployment 'sync-repository/foo'" in result.stderr
        and "mirrorflow.deployments.serve" in result.stderr
    )


# -- deployment files ------------------------------------------------------------------------

DEPLOYMENTS = __import__("pathlib").Path(__file__).parents[2] / "deployments"


def test_prefect_yaml_points_at_the_flow_with_valid_parameters():
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    from mirrorflow.flows.sync_repository import sync_repository

    spec = yaml.safe_load((DEPLOYMENTS / "prefect.yaml").read_text())
    assert spec["deployments"] and spec["pull"] == [], "no working directory: nothing /app-like"
    for deployment in spec["deployments"]:
        # a module path: the installed package, whatever directory the worker runs in
        assert deployment["entrypoint"] == "mirrorflow.flows.sync_repository.sync_repository"
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow is sync_repository  # imported as a module, not loaded again as a script
        validate_sync_parameters(**deployment["parameters"])
        assert deployment["concurrency_limit"]["limit"] == 1
        # never the name serve gives a repository's deployment (sync-repository/<repository>)
        assert (
            deployment["name"].endswith("-pool")
            and deployment["name"] != deployment["parameters"]["repository"]
        )
        assert deployment["parameters"]["repository"] != "foo", "the README's served repository"
        # tagged as serve tags its runs, so the UI filters them by repository
        assert f"repository:{deployment['parameters']['repository']}" in deployment["tags"]


def test_the_compose_file_has_every_production_service_wired_to_postgres_and_minio():
    import yaml

    compose = yaml.safe_load((DEPLOYMENTS / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "prefect-server", "deployments", "worker", "mirrorflow"}
    assert (
        "postgresql+asyncpg://"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    # every service built from the mirrorflow image runs mirrorflow code and opens the catalog
    runs_mirrorflow = {name for name, service in services.items() if "build" in service}
    assert runs_mirrorflow == {"deployments", "worker", "mirrorflow"}
    for name in sorted(runs_mirrorflow):
        env = services[name]["environment"]
        assert env["MIRRORFLOW_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["MIRRORFLOW_S3_ENDPOINT"] == "minio:9000" and env["PREFECT_API_URL"].endswith("/api")
        # one key for all: a container without it would make its own secret.key in its own
        # MIRRORFLOW_HOME and could not read the remote secrets the others stored; no default either
        key = env.get("MIRRORFLOW_SECRET_KEY", "")
        assert key.startswith("${MIRRORFLOW_SECRET_KEY:?") and key.endswith("}"), (name, key)
    assert services["deployments"]["command"].startswith("python -m mirrorflow.deployments.serve")
    assert services["mirrorflow"]["command"].startswith("mirrorflow serve")


def test_serve_builds_one_deployment_per_repository_with_its_schedule(cli, seed_index):
    from prefect.flows import load_flow_from_entrypoint

    from mirrorflow.deployments.serve import build_deployments
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.sync_repository import sync_repository

    _ok(cli("remote", "create", "--name", "bar", "--url", seed_index.url))
    for name in ("plain", "hourly", "often"):
        _ok(cli("repository", "create", "--name", name))
    _ok(
        cli(
            "repository", "schedule", "--name", "hourly", "--remote", "bar", "--cron", "0 * * * *", "--mirror"
        )
    )
    _ok(cli("repository", "schedule", "--name", "often", "--remote", "bar", "--interval", "600"))
    built = {d.name: d for d in build_deployments(catalog_for(Settings()))}
    assert set(built) == {"plain", "hourly", "often"}
    assert built["plain"].schedules == [] and built["plain"].parameters == {
        "repository": "plain",
        "mirror": False,
    }
    assert built["hourly"].schedules[0].schedule.cron == "0 * * * *"
    assert built["hourly"].parameters == {"repository": "hourly", "mirror": True, "remote": "bar"}
    assert built["often"].schedules[0].schedule.interval == timedelta(seconds=600)
    entrypoints = {d.entrypoint for d in built.values()}
    assert entrypoints == {"mirrorflow.flows.sync_repository.sync_repository"}
    assert load_flow_from_entrypoint(entrypoints.pop()) is sync_repository  # the module's own flow, once
