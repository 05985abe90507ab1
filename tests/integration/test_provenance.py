"""PEP 740 provenance end to end (issue 20): a fixture index serving provenance objects, synced through
the CLI (``immediate`` and ``on_demand``), served by ``serve``, and installed from with pip.

Shows: the objects round-trip byte for byte; the served pages point at the mirror's own
``<file URL>.provenance`` and never name the upstream; ``on_demand`` fetches an object on its first
request only; a provenance the upstream fails to serve is counted in the report (and the Prefect
artifact's rows) without failing its file, and is fetched on the first request once the upstream has it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support_index import serve_projects

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_sdist, make_wheel
from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.flows.report import report_rows
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.threaded import serve_in_thread


def _provenance(filename: str) -> bytes:
    # Not what json.dumps writes (spacing, key order, no trailing newline): a re-serialized copy shows.
    bundle = {"publisher": {"kind": "fixture", "file": filename}, "attestations": []}
    return b'{ "version":1,\n\t"attestation_bundles" : ' + json.dumps([bundle]).encode() + b"}"


def _project() -> tuple[FixtureProject, dict[str, bytes]]:
    wheel = make_wheel("mf-prov-lib", "1.0")
    sdist = make_sdist("mf-prov-lib", "1.0")
    old = make_wheel("mf-prov-lib", "0.9")
    objects = {wheel[0]: _provenance(wheel[0]), sdist[0]: _provenance(sdist[0])}
    files = [
        FixtureFile(old[0], old[1], provenance=_provenance(old[0])),  # its object goes missing upstream
        FixtureFile(wheel[0], wheel[1], provenance=objects[wheel[0]]),
        FixtureFile(sdist[0], sdist[1], provenance=objects[sdist[0]]),
    ]
    return FixtureProject("mf-prov-lib", files), objects | {old[0]: _provenance(old[0])}


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json() if result.stdout else None


def _pip_install(index: str, target: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--index-url", index]
    result = subprocess.run(
        [*command, "--target", str(target), "mf-prov-lib"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name for p in target.glob("*.dist-info")} == {"mf_prov_lib-1.0.dist-info"}


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
@pytest.mark.parametrize("policy", ["immediate", "on_demand"])
def test_provenance_round_trips_byte_for_byte_through_sync_and_serve(cli, tmp_path, policy) -> None:
    project, objects = _project()
    old = min(objects)  # mf_prov_lib-0.9-py3-none-any.whl
    with serve_projects([project], tmp_path) as upstream:
        missing = next(upstream.root.glob(f"files/*/{old}.provenance"))
        missing.unlink()  # the upstream names it and fails to serve it (404)
        _ok(cli("repository", "create", "--name", "foo"))
        _ok(cli("remote", "create", "--name", "up", "--url", upstream.url, "--policy", policy))
        report = _ok(cli("repository", "sync", "--name", "foo", "--remote", "up"))["report"]

        fetched = {p: n for p, n in upstream.hits.items() if p.endswith(".provenance")}
        assert report["files_kept"] == 3 and report["provenance_recorded"] == 3
        if policy == "immediate":
            assert report["provenance_fetched"] == 2 and set(fetched.values()) == {1}
            assert list(report["provenance_failed"]) == [old], "counted by filename; the file is kept"
            assert "404" in report["provenance_failed"][old]
            rows = {row["metric"]: row["value"] for row in report_rows(report, None)}
            assert rows["provenance_fetched"] == "2" and f"provenance not fetched: {old}" in rows
        else:
            assert report["provenance_fetched"] == 0 and report["provenance_failed"] == {}
            assert fetched == {}, "on_demand fetches no provenance while syncing"

        missing.write_bytes(objects[old])  # the upstream serves it now: the first request fetches it
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
            pages = {
                accept: client.get("/foo/simple/mf-prov-lib/", headers={"Accept": accept}).text
                for accept in (JSON_V1, "text/html")
            }
            for text in pages.values():
                assert upstream.base_url.rstrip("/") not in text, "the upstream's URLs never reach a page"
            page = json.loads(pages[JSON_V1])
            assert page["meta"]["api-version"] == "1.3"
            for file in page["files"]:
                assert file["provenance"] == file["url"] + ".provenance"
                assert f'data-provenance="{file["provenance"]}"' in pages["text/html"]
                served = client.get(file["provenance"])
                assert served.status_code == 200, served.text
                assert served.content == objects[file["filename"]], "byte for byte"
                assert served.headers["content-type"] == "application/json"
                again = client.get(file["provenance"])
                assert again.content == served.content
            after = {
                Path(p).name.removesuffix(".provenance"): n
                for p, n in upstream.hits.items()
                if p.endswith(".provenance")
            }
            # Each object once from the upstream, later requests from the catalog; the one that failed
            # while syncing (immediate) once more, on its first request.
            assert after == {name: 1 + (name == old and policy == "immediate") for name in objects}

            assert pages["text/html"].count("data-provenance=") == 3

            if policy == "immediate":  # once is enough: pip reads the same pages either way
                _pip_install(f"{base}/foo/simple/", tmp_path / "target")
            else:  # a blocklisted file's provenance is refused like the file, in every version
                _ok(cli("repository", "blocklist", "add", "--repository", "foo", "--entry", old))
                url = next(f["provenance"] for f in page["files"] if f["filename"] == old)
                deadline = time.monotonic() + 5  # the server re-reads blocklists once a second
                while (refused := client.get(url)).status_code == 200 and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert refused.status_code == 404 and "is blocklisted" in refused.text


@pytest.mark.skipif(
    importlib.util.find_spec("pypi_attestations") is not None, reason="pypi-attestations is installed"
)
def test_verify_provenance_without_pypi_attestations_is_one_line_and_exits_1(
    tmp_path, monkeypatch, capsys
) -> None:
    from mirrorflow.flows.console import main
    from mirrorflow.flows.runtime import reset_caches

    monkeypatch.setenv("MIRRORFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MIRRORFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    reset_caches()
    monkeypatch.setattr(sys, "argv", ["mirrorflow", "repository", "verify", "--name", "foo", "--provenance"])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert exited.value.code == 1 and out == ""
    assert err == (
        "Error: provenance: pypi-attestations is not installed; install it (pip install pypi-attestations) "
        "to verify attestations\n"
    )
    assert not (tmp_path / "catalog.db").exists(), "nothing read or created"
    reset_caches()


def test_the_catalog_keeps_each_repositorys_own_provenance_outside_the_versions(catalog) -> None:
    from sqlalchemy.exc import IntegrityError

    from mirrorflow.storage.models import Repository
    from mirrorflow.storage.provenance import (
        ProvenanceRow,
        provenance_of,
        record_urls,
        store_body,
        with_provenance,
    )

    with catalog.session() as session:
        session.add_all([Repository(name="one"), Repository(name="two")])
    with catalog.reading() as session:
        one, two = (session.query(Repository.id).filter_by(name=n).scalar() for n in ("one", "two"))
    a, b = "a" * 64, "b" * 64
    urls = {a: "https://index.example/a.provenance", b: "https://index.example/b.provenance"}
    assert record_urls(catalog, one, urls) == 2
    assert record_urls(catalog, one, {a: urls[a]}) == 0, "the same URL twice: no change"
    assert with_provenance(catalog, one, [a, b, "c" * 64]) == {a, b}
    assert with_provenance(catalog, two, [a, b]) == frozenset(), "another repository's remote named them"
    assert provenance_of(catalog, two, a) is None
    assert provenance_of(catalog, one, a).body is None, "recorded, still to fetch"
    body = b'{"version": 1, "attestation_bundles": []}'
    assert store_body(catalog, a, urls[a], body)
    assert not store_body(catalog, a, urls[a], body), "the same bytes: no write"
    # Repository two's remote names another object for the same digest: each serves its own.
    other = b'{"version": 1, "attestation_bundles": [{}]}'
    assert record_urls(catalog, two, {a: "https://mirror.example/a.provenance"}) == 1
    assert store_body(catalog, a, "https://mirror.example/a.provenance", other)
    assert provenance_of(catalog, one, a).body == body and provenance_of(catalog, two, a).body == other
    assert record_urls(catalog, one, {a: "https://mirror.example/a.provenance"}) == 1, "a moved URL"
    stored = provenance_of(catalog, one, a)
    assert (stored.url, stored.body) == ("https://mirror.example/a.provenance", other)
    with pytest.raises(IntegrityError), catalog.session() as session:  # the schema holds the invariants
        session.add(ProvenanceRow(sha256="A" * 64, url="x"))


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_pull_through_pages_offer_the_provenance_and_serve_it_byte_for_byte(cli, tmp_path) -> None:
    project, objects = _project()
    with serve_projects([project], tmp_path) as upstream:
        _ok(cli("repository", "create", "--name", "foo"))
        _ok(cli("remote", "create", "--name", "pt", "--url", upstream.url, "--policy", "on_demand"))
        _ok(cli("repository", "pull-through", "--name", "foo", "--remote", "pt"))
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
            page = client.get("/foo/simple/mf-prov-lib/", headers={"Accept": JSON_V1})
            assert page.status_code == 200 and upstream.base_url.rstrip("/") not in page.text
            for file in page.json()["files"]:
                assert file["provenance"] == file["url"] + ".provenance"
                assert client.get(file["provenance"]).content == objects[file["filename"]]


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_a_repository_serves_only_the_provenance_its_own_remote_named(cli, tmp_path) -> None:
    # The same file (same sha256) on two upstreams: "plain" names no provenance, "attesting" names one.
    wheel = make_wheel("mf-prov-lib", "1.0")
    body = _provenance(wheel[0])
    plain = FixtureProject("mf-prov-lib", [FixtureFile(wheel[0], wheel[1])])
    attesting = FixtureProject("mf-prov-lib", [FixtureFile(wheel[0], wheel[1], provenance=body)])
    with (
        serve_projects([plain], tmp_path / "plain") as up_plain,
        serve_projects([attesting], tmp_path / "attesting") as up_attesting,
    ):
        _ok(cli("remote", "create", "--name", "plain", "--url", up_plain.url, "--policy", "on_demand"))
        _ok(cli("remote", "create", "--name", "att", "--url", up_attesting.url, "--policy", "immediate"))
        for name, remote in (("a", "plain"), ("b", "att")):
            _ok(cli("repository", "create", "--name", name))
            _ok(cli("repository", "sync", "--name", name, "--remote", remote))
        _ok(cli("repository", "create", "--name", "c"))  # pull-through from the upstream without provenance
        _ok(cli("repository", "pull-through", "--name", "c", "--remote", "plain"))
        with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base, timeout=30) as client:
            served = {}
            for name in ("a", "b", "c"):
                page = client.get(f"/{name}/simple/mf-prov-lib/", headers={"Accept": JSON_V1})
                html = client.get(f"/{name}/simple/mf-prov-lib/", headers={"Accept": "text/html"}).text
                (file,) = page.json()["files"]
                served[name] = (file, html, client.get(file["url"] + ".provenance"))
        b_file, b_html, b_provenance = served["b"]
        assert b_file["provenance"] == b_file["url"] + ".provenance" and "data-provenance=" in b_html
        assert b_provenance.status_code == 200 and b_provenance.content == body, "byte for byte"
        assert served["a"][0]["hashes"] == b_file["hashes"], "the same file in both repositories"
        for name in ("a", "c"):
            file, html, provenance = served[name]
            assert "provenance" not in file and "data-provenance" not in html, name
            assert provenance.status_code == 404, (name, provenance.text)
        assert [p for p in up_plain.hits if p.endswith(".provenance")] == []
