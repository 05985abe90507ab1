"""Syncs from real third-party index servers give the file set the fixture index gives directly.

Each upstream serves the seed catalog's files (``support_peers``): pypiserver, devpi-server, a
bandersnatch mirror served as static files, proxpi, and ``mirrorflow serve`` itself. Each is named by
the URL its users write. For each, three remotes run through the CLI, as a user types them:

- the seed's four commands (``--includes '["shelf-reader"]'``, version 1 with two files);
- the seed's complex specifier remote;
- a whole-index sync (no includes), ``immediate``, so every file is downloaded and verified.

The expected file sets are not written down: the same three remotes run once against the fixture
index itself (``fixture_index_file_sets``), and that whole-index set is checked against the index's
own pages. Files compare by name, sha256 and size.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from support_peers import mirrorflow_home, run_cli

from mirrorflow.fixtureindex.server import RunningIndex
from mirrorflow.tasks.index_client import ACCEPT

SQLITE_ONLY = pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)

SEED_INCLUDES = '["shelf-reader"]'
COMPLEX_INCLUDES = '["django~=2.0,!=2.0.1", "pip-tools>=1.12,<=2.0", "scipy", "shelf-reader"]'

#: Each kind of remote: its options after ``--url``.
REMOTES = {
    "seed": ["--includes", SEED_INCLUDES],
    "specifiers": ["--includes", COMPLEX_INCLUDES],
    "whole-index": ["--policy", "immediate"],
}

#: (peer fixture, path a user appends to its root): the URL forms each server's users write.
UPSTREAMS = [
    pytest.param(("pypiserver_peer", ""), id="pypiserver-root"),
    pytest.param(("pypiserver_peer", "simple/"), id="pypiserver-simple"),
    pytest.param(("devpi_peer", "alice/dev/+simple/"), id="devpi"),
    pytest.param(("bandersnatch_peer", ""), id="bandersnatch-root"),
    pytest.param(("bandersnatch_peer", "simple/"), id="bandersnatch-simple"),
    pytest.param(("proxpi_peer", "index/"), id="proxpi"),
    pytest.param(("mirrorflow_peer", "foo/simple/"), id="mirrorflow-serve"),
]

#: (filename, sha256, size): the size is None where the upstream's page does not give it and the
#: file was not downloaded (on_demand), so it is compared only for the immediate whole-index sync.
FileSet = frozenset[tuple[str, str, int | None]]


def _file_set(packages: list[dict[str, Any]]) -> FileSet:
    return frozenset((p["filename"], p["sha256"], p["size"]) for p in packages)


def _named(files: FileSet) -> frozenset[tuple[str, str]]:
    return frozenset((name, sha256) for name, sha256, _ in files)


@pytest.fixture(scope="session")
def fixture_index_file_sets(
    seed_index: RunningIndex, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> dict[str, FileSet]:
    """Each remote of ``REMOTES`` synced from the fixture index directly: its repository's files."""
    sets: dict[str, FileSet] = {}
    with mirrorflow_home(tmp_path_factory.mktemp("fixture-direct") / "home"):
        for kind, options in REMOTES.items():
            run_cli("repository", "create", "--name", kind)
            run_cli("remote", "create", "--name", kind, "--url", seed_index.url, *options)
            run_cli("repository", "sync", "--name", kind, "--remote", kind)
            sets[kind] = _file_set(run_cli("content", "list", "--repository", kind))
    return sets


@pytest.fixture(scope="session", params=UPSTREAMS)
def upstream(request: pytest.FixtureRequest) -> str:
    """The upstream's URL as its users write it."""
    peer, path = request.param
    return str(request.getfixturevalue(peer)) + path


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def _synced_files(cli, repository: str) -> FileSet:
    return _file_set(_ok(cli("content", "list", "--repository", repository)))


def test_the_expected_sets_are_what_the_fixture_index_lists(fixture_index_file_sets, seed_index):
    """The baseline itself: the whole index holds every file the index's pages list, the seed two."""
    listed = set()
    for page in (seed_index.root / "simple").glob("*/index.json"):
        for file in json.loads(page.read_text())["files"]:
            listed.add((file["filename"], file["hashes"]["sha256"], file["size"]))
    assert fixture_index_file_sets["whole-index"] == listed and len(listed) == 51
    assert {name for name, _, _ in fixture_index_file_sets["seed"]} == {
        "shelf-reader-0.1.tar.gz",
        "shelf_reader-0.1-py2-none-any.whl",
    }
    specifiers = fixture_index_file_sets["specifiers"]
    assert fixture_index_file_sets["seed"] < specifiers < fixture_index_file_sets["whole-index"]


@SQLITE_ONLY
def test_the_seed_four_commands(cli, upstream, fixture_index_file_sets):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", upstream, "--includes", SEED_INCLUDES))
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    version = _ok(cli("repository", "version", "show", "--repository", "foo"))
    summary = version["content_summary"]
    assert version["number"] == 1 and summary["removed"] == {}
    assert summary["added"]["python.python"]["count"] == summary["present"]["python.python"]["count"] == 2
    assert _named(_synced_files(cli, "foo")) == _named(fixture_index_file_sets["seed"])


@SQLITE_ONLY
@pytest.mark.parametrize("kind", ["specifiers", "whole-index"])
def test_a_remote_gives_the_fixture_index_file_set(cli, upstream, kind, fixture_index_file_sets):
    _ok(cli("repository", "create", "--name", "foo"))
    _ok(cli("remote", "create", "--name", "bar", "--url", upstream, *REMOTES[kind]))
    synced = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    assert synced["report"]["failures"] == {} and synced["report"]["not_found"] == []
    files, expected = _synced_files(cli, "foo"), fixture_index_file_sets[kind]
    assert _named(files) == _named(expected)
    if kind == "whole-index":
        assert files == expected, "every file downloaded, of the size the fixture index serves"
        assert synced["report"]["downloaded_files"] == len(expected)


def test_the_bandersnatch_mirror_serves_its_json_pages_with_string_serials(bandersnatch_peer):
    """What the bandersnatch rows exercise: its own PEP 691 pages, whose ``_last-serial`` is a string."""
    with httpx.Client(base_url=bandersnatch_peer) as http:
        page = http.get("simple/shelf-reader/", headers={"Accept": ACCEPT})
        assert page.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        serial = page.json()["meta"]["_last-serial"]
        assert isinstance(serial, str) and serial.isdigit()
        html = http.get("simple/shelf-reader/", headers={"Accept": "text/html"})
        assert html.headers["Content-Type"].startswith("text/html") and f"<!--SERIAL {serial}-->" in html.text
