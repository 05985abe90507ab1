"""OSV advisories (issue 20): ``advisories import`` into the catalog, ``repository advisories``, and a
``MAL-`` advisory that keeps a version out of a sync, out of the held content, and out of ``pip install``.

The import and report tests run the CLI on both catalogs over content written with ``ContentWriter``
(no Prefect); one test syncs the seed fixture index through the CLI and installs from ``serve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from packaging.version import Version
from support_content import InProcessCli, cli_on_catalog, commit, new_package
from support_osv import osv, osv_zip, since
from support_server import NoUpstreams

from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.tasks.filenames import parse_filename

# -- import and report, content written directly ------------------------------------------------------


def _package(filename: str) -> NewPackage:
    return new_package(filename, size=len(filename), url=f"https://index.example/{filename}")


FILES = ("evil_pkg-1.0.tar.gz", "evil_pkg-2.0-py3-none-any.whl", "evil_pkg-2.0.tar.gz", "fine-1.0.tar.gz")


@pytest.fixture
def advisory_cli(catalog_url, tmp_path, monkeypatch, capsys) -> Iterator[InProcessCli]:
    """The CLI on ``catalog_url`` (no Prefect), repository ``foo`` at version 1 holding ``FILES``;
    it returns stdout parsed as JSON."""
    packages = [_package(name) for name in FILES]
    with cli_on_catalog(catalog_url, tmp_path / "home", monkeypatch, capsys, packages, json_out=True) as cli:
        yield cli


def test_import_is_idempotent_newer_replaces_withdrawn_removes_and_a_bad_file_imports_nothing(
    advisory_cli, tmp_path
) -> None:
    cli = advisory_cli
    mal = osv("MAL-2024-1", "Evil_Pkg", versions=["2.0"])
    pysec = osv(
        "PYSEC-2024-7",
        "evil-pkg",
        ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
    )
    npm = {
        **osv("MAL-2024-9", "x"),
        "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1"]}],
    }
    first = osv_zip(tmp_path / "one.zip", mal, pysec, npm, extra={"README.md": b"not a record"})
    code, out, err = cli("advisories", "import", str(first))
    assert code == 0, err
    assert out | {"notes": None} == {
        "read": 3, "added": 2, "updated": 0, "unchanged": 0, "removed": 0, "ignored": 1, "older": 0,
        "stored": 2, "notes": None, "notes_total": 0,
    }  # fmt: skip
    code, again, _ = cli("advisories", "import", str(first))
    assert (code, again["added"], again["unchanged"], again["stored"]) == (0, 0, 2, 2), (
        "same id + modified: no change"
    )

    code, report, err = cli("repository", "advisories", "--name", "foo")
    assert code == 0, err
    assert report == {
        "repository": "foo",
        "version": 1,
        "advisories": [
            {"id": "MAL-2024-1", "aliases": [], "summary": "MAL-2024-1 summary", "package": "evil-pkg",
             "version": "2.0", "filenames": ["evil_pkg-2.0-py3-none-any.whl", "evil_pkg-2.0.tar.gz"]},
            {"id": "PYSEC-2024-7", "aliases": [], "summary": "PYSEC-2024-7 summary", "package": "evil-pkg",
             "version": "1.0", "filenames": ["evil_pkg-1.0.tar.gz"]},
        ],
    }  # fmt: skip

    # A newer record replaces (now naming 1.0 as well); an older one is ignored; a withdrawn one removes.
    newer = osv("MAL-2024-1", "evil-pkg", modified="2024-06-01T00:00:00Z", versions=["1.0", "2.0"])
    older = osv("PYSEC-2024-7", "evil-pkg", modified="2023-01-01T00:00:00Z", versions=["9.9"])
    folder = tmp_path / "dir"
    folder.mkdir()
    for record in (newer, older):
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    code, out, err = cli("advisories", "import", str(folder))
    assert (code, out["updated"], out["older"], out["stored"]) == (0, 1, 1, 2), err
    _, report, _ = cli("repository", "advisories", "--name", "foo")
    assert [(a["id"], a["version"]) for a in report["advisories"]] == [
        ("MAL-2024-1", "1.0"), ("MAL-2024-1", "2.0"), ("PYSEC-2024-7", "1.0"),
    ]  # fmt: skip

    withdrawn = {
        **osv("PYSEC-2024-7", "evil-pkg", modified="2024-07-01T00:00:00Z"),
        "withdrawn": "2024-07-01T00:00:00Z",
    }
    bad = osv_zip(
        tmp_path / "bad.zip", withdrawn, extra={"zz-broken.json": b'{"id": "PYSEC-X", "modified": 3}'}
    )
    code, out, err = cli("advisories", "import", str(bad))
    assert (code, out) == (1, None)
    assert err == (
        f"Error: {bad}:zz-broken.json: is not an OSV record: modified: 3 is not an RFC 3339 timestamp; "
        "nothing was imported\n"
    )
    _, report, _ = cli("repository", "advisories", "--name", "foo")
    assert len(report["advisories"]) == 3, "the withdrawn record before the bad one was rolled back"
    code, out, _ = cli("advisories", "import", str(osv_zip(tmp_path / "w.zip", withdrawn)))
    assert (code, out["removed"], out["stored"]) == (0, 1, 1)

    # One id twice in one export: the newer record wins; added then withdrawn: never stored.
    twice = osv_zip(
        tmp_path / "twice.zip",
        osv("MAL-2024-20", "evil-pkg", versions=["1.0"]),
        osv("MAL-2024-21", "fine", versions=["1.0"]),
        extra={
            "zz-1.json": json.dumps(
                osv("MAL-2024-20", "fine", modified="2024-06-01T00:00:00Z", versions=["1.0"])
            ).encode(),
            "zz-2.json": json.dumps(
                {
                    **osv("MAL-2024-21", "x", modified="2024-06-01T00:00:00Z"),
                    "withdrawn": "2024-06-01T00:00:00Z",
                }
            ).encode(),
        },
    )
    code, out, _ = cli("advisories", "import", str(twice))
    assert (code, out["added"], out["updated"], out["removed"], out["stored"]) == (0, 2, 1, 1, 2)
    _, report, _ = cli("repository", "advisories", "--name", "foo")
    assert ("MAL-2024-20", "fine") in {(a["id"], a["package"]) for a in report["advisories"]}
    assert "MAL-2024-21" not in {a["id"] for a in report["advisories"]}

    code, out, _ = cli("repository", "advisories", "--name", "foo", "--version", "0")
    assert (code, out["version"], out["advisories"]) == (0, 0, []), "version 0 holds nothing"
    code, out, err = cli("repository", "advisories", "--name", "nope")
    assert (code, err) == (1, "Error: repository 'nope' does not exist\n")


# -- end to end: sync, serve, pip install ------------------------------------------------------------------


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_a_mal_advisory_keeps_the_version_out_of_syncs_and_of_pip_install_from_serve(
    cli, seed_index, tmp_path
):
    def ok(*args: str) -> Any:
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        return result.json() if result.stdout else None

    def lib_files() -> set[str]:
        listed = ok("content", "list", "--repository", "foo")
        return {p["filename"] for p in listed if parse_filename(p["filename"]).name == "mf-demo-lib"}

    ok("repository", "create", "--name", "foo")
    remote = ok(
        "remote",
        "create",
        "--name",
        "up",
        "--url",
        seed_index.url,
        "--includes",
        '["mf-demo-app", "mf-demo-lib"]',
        "--policy",
        "immediate",  # every file stored: version 1 can be published
    )
    assert remote["block_advisories"] == ["MAL"], "the default"
    first = ok("repository", "sync", "--name", "foo", "--remote", "up")
    synced = lib_files()
    blocked = {name for name in synced if parse_filename(name).version >= Version("2.0")}
    assert blocked and synced - blocked and first["report"]["advisories"] == {}

    # Malware from 2.0 on (2.0, and the yanked 2.1 wheel); a PYSEC advisory
    # naming 1.0 is reported but, under the default block_advisories ["MAL"], keeps nothing out.
    export = osv_zip(
        tmp_path / "all.zip",
        osv("MAL-2024-4242", "MF_Demo.Lib", ranges=since("2.0")),
        osv("PYSEC-2024-5", "mf-demo-lib", versions=["1.0"]),
    )
    assert ok("advisories", "import", str(export))["added"] == 2
    held = ok("repository", "advisories", "--name", "foo")["advisories"]
    assert {(a["id"], a["version"]) for a in held} == {
        ("MAL-2024-4242", "2.0"),
        ("MAL-2024-4242", "2.1"),
        ("PYSEC-2024-5", "1.0"),
    }

    second = ok(
        "repository", "sync", "--name", "foo", "--remote", "up"
    )  # additive: removes them all the same
    report = second["report"]
    assert set(report["advisories_removed"]) == blocked
    assert all(
        why.startswith("MAL-2024-4242 names mf-demo-lib 2.") for why in report["advisories_removed"].values()
    )
    assert set(report["advisories"]) == blocked, "each file kept out is named, with the advisory"
    assert report["skipped"]["advisory"] == len(blocked)
    assert lib_files() == synced - blocked
    assert ok("repository", "advisories", "--name", "foo")["advisories"][0]["id"] == "PYSEC-2024-5"
    assert second["changed"] and second["content_summary"]["removed"]["python.python"]["count"] == len(
        blocked
    )
    third = ok("repository", "sync", "--name", "foo", "--remote", "up")
    assert not third["changed"] and third["report"]["advisories_removed"] == {}, "a second sync is a no-op"
    # Version 1 still holds the blocked files: a static publication of it leaves them out, as serve does.
    to = tmp_path / "published"
    published = ok("repository", "publish", "--name", "foo", "--version", "1", "--to", str(to))
    written = {path.name for path in to.rglob("*") if path.is_file()}
    assert blocked and not blocked & written and synced - blocked <= written, published
    assert not any(name in (to / "simple" / "mf-demo-lib" / "index.html").read_text() for name in blocked)

    from mirrorflow.flows.cli_serve import app_from_settings
    from mirrorflow.server.threaded import serve_in_thread

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    with serve_in_thread(app_from_settings()) as base:
        command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url",
                   f"{base}/foo/simple/", "--target", str(tmp_path / "t"), "mf-demo-app"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in (tmp_path / "t").glob("*.dist-info")} == {
        "mf_demo_app-1.0.dist-info",
        "mf_demo_lib-1.0.dist-info",
    }


# -- serve: a blocking advisory in every version, pinned ones included -------------------------------


def test_the_read_api_leaves_out_what_a_blocking_advisory_names_as_serve_does(advisory_cli, tmp_path) -> None:
    from mirrorflow.flows.read_api import CatalogReadApi

    cli, catalog = advisory_cli, advisory_cli.catalog
    api, uuid_ = CatalogReadApi(catalog), catalog.get_repository("foo").uuid

    def filenames(membership: str = "present") -> tuple[int, list[str]]:
        count, rows = api.content((uuid_, 1, membership), limit=100, offset=0)
        return count, [row["filename"] for row in rows]

    assert filenames() == (4, sorted(FILES))
    export = osv_zip(
        tmp_path / "all.zip",
        osv("MAL-2024-7", "Evil.Pkg", ranges=since("2.0")),
        osv("PYSEC-2024-8", "evil-pkg", versions=["1.0"]),  # not blocked under the default ["MAL"]
    )
    assert cli("advisories", "import", str(export))[1]["added"] == 2
    assert filenames() == (2, ["evil_pkg-1.0.tar.gz", "fine-1.0.tar.gz"]), "in version 1 too"
    assert filenames("added") == (2, ["evil_pkg-1.0.tar.gz", "fine-1.0.tar.gz"])


def test_serve_does_not_list_a_project_every_file_of_which_an_advisory_blocks(advisory_cli, tmp_path) -> None:
    import httpx

    from mirrorflow.server.app import create_app
    from mirrorflow.server.pages import JSON_V1
    from mirrorflow.server.threaded import serve_in_thread
    from mirrorflow.storage.filesystem_store import FileSystemStore

    cli, catalog = advisory_cli, advisory_cli.catalog
    clock = [1000.0]
    app = create_app(catalog, FileSystemStore(tmp_path / "store"), NoUpstreams(), clock=lambda: clock[0])
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:

        def listed() -> list[str]:
            return [
                p["name"] for p in client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()["projects"]
            ]

        assert listed() == ["evil-pkg", "fine"]
        assert (
            cli(
                "advisories",
                "import",
                str(osv_zip(tmp_path / "all.zip", osv("MAL-2024-7", "evil-pkg", ranges=since("0")))),
            )[0]
            == 0
        )
        clock[0] += 1.0
        assert client.get("/foo/simple/evil-pkg/").status_code == 404
        assert listed() == ["fine"], "the cached listing was re-keyed, and leaves out what answers 404"


def test_serve_leaves_files_a_blocking_advisory_names_off_pinned_pages_and_answers_404(
    advisory_cli, tmp_path
) -> None:
    import httpx

    from mirrorflow.server.app import create_app
    from mirrorflow.server.pages import JSON_V1
    from mirrorflow.server.threaded import serve_in_thread
    from mirrorflow.storage.filesystem_store import FileSystemStore

    cli, catalog = advisory_cli, advisory_cli.catalog
    # Version 2 no longer holds evil_pkg: version 1 still does.
    commit(ContentWriter(catalog), "foo", [_package("fine-1.0.tar.gz")], mirror=True)
    clock = [1000.0]
    app = create_app(catalog, FileSystemStore(tmp_path / "store"), NoUpstreams(), clock=lambda: clock[0])
    pinned = "/foo/versions/1/simple/evil-pkg/"
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:

        def files() -> dict[str, str]:
            page = client.get(pinned, headers={"Accept": JSON_V1})
            assert page.status_code == 200, page.text
            return {f["filename"]: f["url"] for f in page.json()["files"]}

        before = files()  # rendered and cached before the import
        assert set(before) == set(FILES) - {"fine-1.0.tar.gz"}
        export = osv_zip(
            tmp_path / "all.zip",
            osv("MAL-2024-7", "Evil.Pkg", ranges=since("2.0")),
            osv("PYSEC-2024-8", "evil-pkg", versions=["1.0"]),  # not blocked under the default ["MAL"]
        )
        assert cli("advisories", "import", str(export))[1]["added"] == 2
        clock[0] += 1.0  # the server re-reads the repositories' state, and so the advisories
        assert set(files()) == {"evil_pkg-1.0.tar.gz"}, "the cached page was re-keyed"
        blocked = "evil_pkg-2.0-py3-none-any.whl"
        for url in (before[blocked], before[blocked].split("#")[0] + ".metadata"):
            refused = client.get(url)
            assert (refused.status_code, refused.text) == (
                404,
                f"file {blocked!r} is blocked by advisory MAL-2024-7 in repository 'foo'\n",
            ), url
        assert client.head(before["evil_pkg-1.0.tar.gz"]).status_code == 200, "PYSEC does not block"
        # The prefixes are those of the remote that syncs the repository: with [] nothing is blocked.
        remote = ["--url", "https://index.example/simple/", "--block-advisories", "[]"]
        assert cli("remote", "create", "--name", "up", *remote)[0] == 0
        assert cli("repository", "update", "--name", "foo", "--remote", "up")[0] == 0
        clock[0] += 1.0
        assert set(files()) == set(before)
        assert client.head(before[blocked]).status_code == 200
