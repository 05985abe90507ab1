"""A flaky upstream, a storage outage and a database outage, injected while a real sync runs.

The fault-injecting index (``mirrorflow.fixtureindex.faults``) serves the seed index's files with 5xx bursts,
resets, truncated or corrupted bodies, slow answers and redirect loops. Transient faults are retried
and the sync completes; a file whose bytes fail their digest twice is quarantined (exit 3, the rest
commits); a download that keeps failing fails an includes remote's sync with a clear one-line
summary and no new version (tests/integration/test_convergence.py has the whole-index rule). See
docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from mirrorflow.fixtureindex.faults import Fault, Rule, TcpProxy, first, serve_faulty
from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter

WHEEL = "/files/*/shelf_reader-0.1-py2-none-any.whl"
SDIST = "/files/*/shelf-reader-0.1.tar.gz"
PAGE = "/simple/shelf-reader/"
SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
POSTGRES_S3 = pytest.mark.parametrize(
    "mirrorflow_env",
    [pytest.param("postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3])],
    indirect=True,
)


@pytest.fixture
def faulty(seed_index):
    """The seed index's files, served a second time by a fault-injecting server (rules set per test)."""
    with serve_faulty(seed_index.root, []) as running:
        yield running


def _setup(cli, url: str, *options: str) -> None:
    assert cli("repository", "create", "--name", "foo").exit_code == 0
    result = cli(
        "remote", "create", "--name", "up", "--url", url, "--includes", '["shelf-reader"]',
        "--policy", "immediate", *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def _sync(cli):
    return cli("repository", "sync", "--name", "foo", "--remote", "up")


def _error_line(result) -> str:
    assert result.exit_code != 0
    return result.stderr.strip().splitlines()[-1]


def _listed(seed_index) -> dict[str, str]:
    """filename -> sha256 as the index lists them."""
    page = httpx.get(
        seed_index.url + "shelf-reader/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    return {f["filename"]: f["hashes"]["sha256"] for f in page.json()["files"]}


def _state():
    settings = Settings()
    catalog = catalog_for(settings)
    return catalog, ContentWriter(catalog), store_for(settings)


def _assert_all_stored_and_verified(writer, store, repository: str = "foo") -> list[str]:
    packages = writer.content_at(repository)
    for package in packages:
        assert package.artifact_sha256 == package.sha256
        body = b"".join(store.open_chunks(package.sha256))
        assert hashlib.sha256(body).hexdigest() == package.sha256
    return sorted(p.filename for p in packages)


# -- the fault-injecting server itself ------------------------------------------------------------


def test_faults_apply_per_path_and_per_nth_request_deterministically(seed_index):
    rules = [Rule(PAGE, Fault.status(503), requests=first(2)), Rule(PAGE, Fault.status(429), requests={4})]
    with serve_faulty(seed_index.root, rules) as index, httpx.Client() as client:
        codes = [client.get(index.url + "shelf-reader/").status_code for _ in range(5)]
        other = client.get(index.url + "django/").status_code
    assert codes == [503, 503, 200, 429, 200] and other == 200
    assert index.served == {(PAGE, "status"): 3}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(Fault.reset(), (httpx.ReadError, httpx.RemoteProtocolError), id="reset-before-headers"),
        pytest.param(
            Fault.reset(after=100), (httpx.ReadError, httpx.RemoteProtocolError), id="reset-mid-body"
        ),
        pytest.param(Fault.truncate(50), httpx.RemoteProtocolError, id="truncated-body"),
        pytest.param(Fault.slow(2.0), httpx.ReadTimeout, id="timeout"),
        pytest.param(Fault.redirect_loop(), httpx.TooManyRedirects, id="redirect-loop"),
    ],
)
def test_each_network_fault_reaches_the_client_as_httpx_reports_it(seed_index, fault, error):
    with serve_faulty(seed_index.root, [Rule(WHEEL, fault)]) as index:
        wheel = next(index.root.glob("files/*/shelf_reader-0.1-py2-none-any.whl"))
        url = f"{index.base_url}files/{wheel.parent.name}/{wheel.name}"
        client = httpx.Client(timeout=httpx.Timeout(5.0, read=0.3), follow_redirects=True)
        with client, pytest.raises(error):
            client.get(url)


def test_a_corrupt_body_has_the_listed_size_and_another_digest(seed_index):
    wheel = next(seed_index.root.glob("files/*/shelf_reader-0.1-py2-none-any.whl"))
    with serve_faulty(seed_index.root, [Rule(WHEEL, Fault.corrupt())]) as index:
        body = httpx.get(f"{index.base_url}files/{wheel.parent.name}/{wheel.name}").content
    real = wheel.read_bytes()
    assert len(body) == len(real) and hashlib.sha256(body).digest() != hashlib.sha256(real).digest()


def test_a_huge_page_is_generated_lazily_and_stops_when_the_client_does(seed_index):
    with serve_faulty(seed_index.root, [Rule(PAGE, Fault.huge(100 << 20, declare_length=False))]) as index:
        with httpx.Client() as client, client.stream("GET", index.url + "shelf-reader/") as response:
            read = 0
            for chunk in response.iter_bytes():
                read += len(chunk)
                if read > 1 << 20:
                    break
        time.sleep(0.2)
        assert index.sent_bytes[PAGE] < 20 << 20, "the server stopped long before 100 MB"


# -- a sync against a flaky upstream --------------------------------------------------------------


def test_transient_faults_are_retried_and_the_sync_completes(cli, faulty, seed_index):
    faulty.rules = [
        Rule(PAGE, Fault.status(503), requests=first(2)),  # a 5xx burst on the page
        Rule(WHEEL, Fault.reset(after=100), requests={1}),  # connection reset mid-body
        Rule(WHEEL, Fault.slow(2.0), requests={2}),  # no answer within the read timeout
        Rule(SDIST, Fault.truncate(50), requests={1}),  # the body stops short of Content-Length
        Rule(SDIST, Fault.slow(0.1, chunk=64, interval=0.01), requests={2}),  # slow but fine
    ]
    _setup(cli, faulty.url, "--max-retries", "3", "--sock-read-timeout", "0.5")
    result = _sync(cli)
    assert result.exit_code == 0, result.stderr
    assert result.json()["number"] == 1
    _, writer, store = _state()
    assert _assert_all_stored_and_verified(writer, store) == sorted(_listed(seed_index))
    kinds = {kind for _, kind in faulty.served}
    assert kinds == {"status", "reset", "slow", "truncate"}, "every planned fault was served"


def test_a_hash_mismatch_is_quarantined_naming_file_expected_and_actual_digest(cli, faulty, seed_index):
    wheel = next(seed_index.root.glob("files/*/shelf_reader-0.1-py2-none-any.whl"))
    real = wheel.read_bytes()
    actual = hashlib.sha256(real[:-1] + bytes([real[-1] ^ 0xFF])).hexdigest()
    expected = _listed(seed_index)[wheel.name]
    faulty.rules = [Rule(WHEEL, Fault.corrupt())]
    _setup(cli, faulty.url, "--max-retries", "1")
    result = _sync(cli)
    assert result.exit_code == 3, "committed without the quarantined file: a distinct exit code"
    line = _error_line(result)
    assert line.startswith("Error: sync of repository 'foo' committed version 1 without 1 ")
    assert wheel.name in line and expected in line and actual in line
    assert result.json()["report"]["unverifiable"].keys() == {wheel.name}
    assert result.json()["report"]["stale"] == ["shelf-reader"]
    corrupt = sum(n for (_, kind), n in faulty.served.items() if kind == "corrupt")
    assert corrupt == 2, "fetched twice, then quarantined"
    catalog, writer, store = _state()
    assert catalog.get_repository("foo").latest_version == 1
    assert not store.exists(expected) and not store.exists(actual)
    assert [p.filename for p in writer.content_at("foo")] == ["shelf-reader-0.1.tar.gz"], "the rest commits"
    faulty.rules = []
    again = _sync(cli)
    assert again.exit_code == 0, "the next sync retries the quarantined file and finishes the job"
    assert again.json()["number"] == 2
    assert len(_assert_all_stored_and_verified(writer, store)) == 2


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("fault", "said", "todo"),
    [
        pytest.param(Fault.status(503), "answered 503", "Rerun the sync", id="permanent-5xx"),
        pytest.param(Fault.status(404), "answered 404", "Check the remote's url", id="file-gone"),
        pytest.param(Fault.redirect_loop(), "TooManyRedirects", "Check the remote's url", id="redirect-loop"),
        pytest.param(
            Fault.redirect("file:///etc/passwd"),
            "UnsupportedProtocol",
            "Check the remote's url",
            id="redirect-to-file-scheme",
        ),
    ],
)
def test_a_download_that_keeps_failing_fails_the_sync_with_a_summary_and_no_version(
    cli, faulty, fault, said, todo
):
    faulty.rules = [Rule(SDIST, fault)]
    _setup(cli, faulty.url, "--max-retries", "1")
    line = _error_line(_sync(cli))
    assert "shelf-reader-0.1.tar.gz" in line and said in line and "no new version" in line
    assert line.endswith(".") and todo in line and ("Rerun" in line) == (todo == "Rerun the sync")
    catalog, writer, _ = _state()
    assert catalog.get_repository("foo").latest_version == 0 and writer.count_packages() == 0


# -- storage and database outages -----------------------------------------------------------------


@POSTGRES_S3
def test_an_s3_outage_mid_sync_leaves_no_version_and_no_dangling_rows(cli, faulty, monkeypatch, s3_endpoint):
    with TcpProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("MIRRORFLOW_S3_ENDPOINT", proxy.address)
        faulty.rules = [Rule(SDIST, Fault.call(proxy.cut), requests={1})]  # S3 dies as this file arrives
        _setup(cli, faulty.url, "--max-retries", "1", "--download-concurrency", "1")
        line = _error_line(_sync(cli))
        assert "StoreUnavailable" in line and "no new version" in line
        proxy.restore()
        catalog, writer, store = _state()
        assert catalog.get_repository("foo").latest_version == 0
        with catalog.session() as session:
            linked = session.execute(
                text("SELECT sha256 FROM packages WHERE artifact_sha256 IS NOT NULL")
            ).all()
        assert all(store.exists(sha) for (sha,) in linked), "no package row points at a missing artifact"
        result = _sync(cli)
        assert result.exit_code == 0, result.stderr
        assert len(_assert_all_stored_and_verified(writer, store)) == 2


@POSTGRES_S3
def test_an_s3_outage_before_the_sync_is_one_line_and_changes_nothing(cli, faulty, monkeypatch, s3_endpoint):
    with TcpProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("MIRRORFLOW_S3_ENDPOINT", proxy.address)
        _setup(cli, faulty.url, "--max-retries", "0")
        proxy.cut()
        result = _sync(cli)
        # The last line is ours; above it Prefect logs the failed flow run, as for any failed run.
        assert _error_line(result).startswith("Error: cannot reach the S3 endpoint")
        assert catalog_for(Settings()).get_repository("foo").latest_version == 0


@POSTGRES_S3
def test_the_database_dropping_mid_commit_leaves_no_partial_version(cli, faulty, mirrorflow_env):
    _setup(cli, faulty.url)
    blocker = create_engine(mirrorflow_env.database_url)
    results = []
    with blocker.connect() as conn:
        conn.execute(text("SELECT id FROM repositories WHERE name = 'foo' FOR UPDATE"))  # commit waits here
        worker = threading.Thread(target=lambda: results.append(_sync(cli)))
        worker.start()
        pid = _wait_for_lock_waiter(conn)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})  # the connection drops
        conn.rollback()
        worker.join(60)
    blocker.dispose()
    line = _error_line(results[0])
    assert line.startswith("Error: the catalog database failed"), line
    catalog, writer, store = _state()
    assert catalog.get_repository("foo").latest_version == 0
    assert [v.number for v in catalog.list_versions("foo")] == [0]
    result = _sync(cli)
    assert result.exit_code == 0, result.stderr
    assert result.json()["number"] == 1
    assert len(_assert_all_stored_and_verified(writer, store)) == 2


def _wait_for_lock_waiter(conn, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = conn.execute(
            # Only this test's database: pg_locks is the cluster's, and other xdist workers' tests
            # wait on locks of their own (terminating one of theirs would fail them).
            text(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted"
                " AND l.pid <> pg_backend_pid() AND a.datname = current_database() LIMIT 1"
            )
        ).scalar()
        if pid is not None:
            return int(pid)
        time.sleep(0.05)
    raise TimeoutError("the sync never waited for the lock")
