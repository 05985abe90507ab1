"""The repository blocklist (issue 20): entries, the ``blocklisted`` rule, the CLI, the version that
``add`` makes, a sync that skips blocked files, and ``serve`` refusing them in every version.

The entry and rule tests are pure (``tests/unit/test_blocklist_entries.py``); the CLI and serve tests here run
on both catalogs over content written directly with ``ContentWriter``; one test syncs the seed
fixture index through the CLI (SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support_content import InProcessCli, cli_on_catalog, commit, new_package
from support_server import NoUpstreams

from mirrorflow.server.app import create_app
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.blocklists import add_entry, list_entries
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.tasks.blocklist import parse_entry
from mirrorflow.tasks.filenames import parse_filename

# -- content written directly ------------------------------------------------------------------------


def _package(filename: str) -> NewPackage:
    name = filename.split("-")[0]
    return new_package(filename, name=name, size=len(filename), url=f"https://index.example/{filename}")


FILES = (
    "shelf_reader-0.1-py3-none-any.whl",
    "shelf_reader-0.1.tar.gz",
    "shelf_reader-0.2.tar.gz",
    "other-1.0.tar.gz",
)


def _commit(catalog: Catalog, repository: str, filenames=FILES, store: FileSystemStore | None = None) -> None:
    writer = ContentWriter(catalog)
    packages = [_package(name) for name in filenames]
    for package in packages if store is not None else ():
        done = store.put_chunks([package.filename.encode()], sha256=package.sha256, size=package.size)
        writer.record_artifacts([(done.sha256, done.size, done.key)])
    assert commit(writer, repository, packages, mirror=True) is not None


def _present(catalog: Catalog, repository: str, number: int | None = None) -> set[str]:
    return {p.filename for p in ContentWriter(catalog).content_at(repository, number)}


@pytest.fixture
def blocklist_cli(catalog_url, tmp_path, monkeypatch, capsys) -> Iterator[InProcessCli]:
    """The CLI on ``catalog_url`` (no Prefect needed), repository ``foo`` at version 1 holding ``FILES``."""
    packages = [_package(name) for name in FILES]
    with cli_on_catalog(catalog_url, tmp_path / "home", monkeypatch, capsys, packages) as cli:
        yield cli


def test_add_list_remove_and_add_makes_a_version_without_the_files(blocklist_cli) -> None:
    import json

    cli, catalog = blocklist_cli, blocklist_cli.catalog
    code, out, err = cli(
        "repository", "blocklist", "add", "--repository", "foo", "--entry", "Shelf_Reader<0.2"
    )
    assert code == 0, err
    added = json.loads(out)
    assert (added["entry"], added["kind"], added["project"]) == (
        "shelf-reader<0.2",
        "requirement",
        "shelf-reader",
    )
    assert added["version"]["number"] == 2
    assert added["version"]["content_summary"]["removed"]["python.python"]["count"] == 2
    assert _present(catalog, "foo") == {"shelf_reader-0.2.tar.gz", "other-1.0.tar.gz"}
    assert _present(catalog, "foo", 1) == set(FILES), "older versions keep their content"

    code, out, err = cli(
        "repository", "blocklist", "add", "--repository", "foo", "--entry", "other-1.0.tar.gz"
    )
    assert code == 0 and json.loads(out)["version"]["number"] == 3
    code, out, err = cli("repository", "blocklist", "add", "--repository", "foo", "--entry", "absent")
    assert code == 0 and json.loads(out)["version"] is None, (
        "an entry that blocks nothing present makes no version"
    )
    code, out, _ = cli("repository", "blocklist", "list", "--repository", "foo")
    assert [(e["entry"], e["kind"]) for e in json.loads(out)] == [
        ("absent", "project"),
        ("other-1.0.tar.gz", "filename"),
        ("shelf-reader<0.2", "requirement"),
    ]
    code, out, err = cli(
        "repository", "blocklist", "remove", "--repository", "foo", "--entry", "shelf_reader <0.2"
    )
    assert (code, out, err) == (0, "", "")
    assert [e.entry for e in list_entries(catalog, "foo")] == ["absent", "other-1.0.tar.gz"]
    assert catalog.get_repository("foo").latest_version == 3, (
        "remove makes no version: the next sync brings them back"
    )


BAD_INPUT = [
    (("add", "--entry", "foo; os_name == 'nt'"), "Error: entry: \"foo; os_name == 'nt'\" may not hold environment markers"),
    (("add", "--entry", "foo-1.0.whl"), "Error: entry: 'foo-1.0.whl' is not a valid distribution filename"),
    (("add", "--entry", "Other"), "Error: entry: 'other' is already in the blocklist of repository 'foo'"),
    (("remove", "--entry", "nope"), "Error: repository 'foo': blocklist entry 'nope' does not exist"),
    (("add", "--entry", "x", "--repository", "bar"), "Error: repository 'bar' does not exist"),
]  # fmt: skip


def test_bad_input_is_one_line_and_changes_nothing(blocklist_cli) -> None:
    # One catalog for the table: a migration per row would cost more than the rows.
    cli, catalog = blocklist_cli, blocklist_cli.catalog
    add_entry(
        catalog, "foo", entry="other", kind="project", project="other", blocks=parse_entry("other").blocks
    )
    before = (catalog.get_repository("foo").latest_version, [e.entry for e in list_entries(catalog, "foo")])
    for args, message in BAD_INPUT:
        repository = () if "--repository" in args else ("--repository", "foo")
        code, out, err = cli("repository", "blocklist", *args, *repository)
        assert code == 1 and out == "", args
        assert err.startswith(message) and err.count("\n") == 1, err
        assert (
            catalog.get_repository("foo").latest_version,
            [e.entry for e in list_entries(catalog, "foo")],
        ) == before


# -- serve ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request, tmp_path):
    """A server (the test's clock) over repository ``foo`` at version 1 holding ``FILES``, stored."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        url = request.getfixturevalue("catalog_url_postgres")
    catalog = Catalog.from_url(url)
    store = FileSystemStore(tmp_path / "store")
    catalog.create_repository("foo")
    _commit(catalog, "foo", store=store)
    clock = [1000.0]
    app = create_app(catalog, store, NoUpstreams(), clock=lambda: clock[0])
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client, catalog, clock
    catalog.dispose()


def _files_of(client: httpx.Client, path: str) -> dict[str, str]:
    page = client.get(path, headers={"Accept": JSON_V1})
    assert page.status_code == 200, page.text
    return {f["filename"]: f["url"] for f in page.json()["files"]}


def test_serve_refuses_blocked_files_in_every_version_and_pages_leave_them_out(served) -> None:
    client, catalog, clock = served
    before = _files_of(client, "/foo/versions/1/simple/shelf-reader/")
    assert client.get("/foo/simple/other/").status_code == 200
    for entry in ("shelf-reader==0.1", "other"):
        add_entry(
            catalog,
            "foo",
            entry=entry,
            kind="x",
            project=parse_entry(entry).project,
            blocks=parse_entry(entry).blocks,
        )
    clock[0] += 1.0  # the server re-reads the repositories' state, blocklists included
    blocked = "shelf_reader-0.1-py3-none-any.whl"
    for path in (
        "/foo/simple/shelf-reader/",
        "/foo/versions/1/simple/shelf-reader/",
        "/foo/versions/2/simple/shelf-reader/",
    ):
        assert set(_files_of(client, path)) == {"shelf_reader-0.2.tar.gz"}, path
    refused = client.get(before[blocked])
    assert refused.status_code == 404
    assert (
        refused.text == f"file {blocked!r} is blocklisted in repository 'foo' (entry 'shelf-reader==0.1')\n"
    )
    assert client.get(before["shelf_reader-0.2.tar.gz"]).status_code == 200, "the rest is served"
    gone = client.get("/foo/versions/1/simple/other/")
    assert (gone.status_code, gone.text) == (
        404,
        "every file of project 'other' in version 1 is blocklisted in repository 'foo'\n",
    )
    listing = client.get("/foo/versions/1/simple/", headers={"Accept": JSON_V1}).json()
    assert [p["name"] for p in listing["projects"]] == ["shelf_reader"]


def test_the_listing_leaves_out_a_project_whose_every_file_is_blocked_as_its_page_answers_404(served) -> None:
    client, catalog, clock = served
    listed = client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()["projects"]
    serials = {p["name"]: p["_last-serial"] for p in listed}
    for entry in ("other-1.0.tar.gz", "shelf-reader>=0.2"):  # a filename; a range leaving 0.1's files
        parsed = parse_entry(entry)
        add_entry(catalog, "foo", entry=parsed.canonical, kind=parsed.kind.value, project=parsed.project,
                  blocks=parsed.blocks)  # fmt: skip
    clock[0] += 1.0
    assert client.get("/foo/simple/other/").status_code == 404
    kept = _files_of(client, "/foo/simple/shelf-reader/")
    for media_type in (JSON_V1, "text/html"):
        listing = client.get("/foo/versions/1/simple/", headers={"Accept": media_type})
        assert "other" not in listing.text and "shelf_reader" in listing.text, media_type
    (project,) = client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()["projects"]
    page = client.get("/foo/simple/shelf-reader/", headers={"Accept": JSON_V1}).json()
    # The entries' versions removed files: the serial rises (serial mode downstream refetches it).
    assert project["_last-serial"] == page["meta"]["_last-serial"] > serials["shelf_reader"], "as its page"
    assert set(kept) == {"shelf_reader-0.1-py3-none-any.whl", "shelf_reader-0.1.tar.gz"}
    parsed = parse_entry("shelf-reader<0.2")
    add_entry(catalog, "foo", entry=parsed.canonical, kind=parsed.kind.value, project=parsed.project,
              blocks=parsed.blocks)  # fmt: skip
    clock[0] += 1.0
    assert client.get("/foo/simple/shelf-reader/").status_code == 404
    assert client.get("/foo/simple/", headers={"Accept": JSON_V1}).json()["projects"] == []


# -- a sync through the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_a_sync_after_add_skips_blocked_files_and_counts_them_and_remove_brings_them_back(cli, seed_index):
    def ok(*args: str):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        return result.json() if result.stdout else None

    def lib_files() -> set[str]:
        listed = ok("content", "list", "--repository", "foo")
        return {p["filename"] for p in listed if parse_filename(p["filename"]).name == "mf-demo-lib"}

    ok("repository", "create", "--name", "foo")
    ok("remote", "create", "--name", "up", "--url", seed_index.url, "--includes", '["mf-demo-lib"]')
    ok("repository", "sync", "--name", "foo", "--remote", "up")
    synced = lib_files()
    blocked = {name for name in synced if str(parse_filename(name).version) == "2.0"}
    assert blocked and synced - blocked

    added = ok("repository", "blocklist", "add", "--repository", "foo", "--entry", "mf-demo-lib==2.0")
    assert added["version"]["number"] == 2 and lib_files() == synced - blocked

    again = ok("repository", "sync", "--name", "foo", "--remote", "up")
    assert again["report"]["skipped"] == {"blocklisted": len(blocked)}, (
        "every project re-evaluated, blocked counted"
    )
    assert lib_files() == synced - blocked

    ok("repository", "blocklist", "remove", "--repository", "foo", "--entry", "mf-demo-lib==2.0")
    ok("repository", "sync", "--name", "foo", "--remote", "up")
    assert lib_files() == synced, "a removed entry lets the next sync bring the files back"


def test_the_read_api_does_not_offer_blocked_packages_in_any_version(blocklist_cli) -> None:
    from mirrorflow.flows.read_api import CatalogReadApi

    catalog = blocklist_cli.catalog
    api, uuid_ = CatalogReadApi(catalog), catalog.get_repository("foo").uuid

    def filenames(number: int, membership: str = "present", **window: int) -> tuple[int, list[str]]:
        count, rows = api.content((uuid_, number, membership), limit=window.get("limit", 100), offset=0)
        return count, [row["filename"] for row in rows]

    assert filenames(1) == (4, sorted(FILES))
    for entry in ("shelf-reader==0.1", "other-1.0.tar.gz"):
        parsed = parse_entry(entry)
        add_entry(catalog, "foo", entry=parsed.canonical, kind=parsed.kind.value, project=parsed.project,
                  blocks=parsed.blocks)  # fmt: skip
    left = (1, ["shelf_reader-0.2.tar.gz"])
    assert filenames(1) == left, "version 1 still holds them; the API does not offer them"
    assert filenames(1, "added") == left
    assert filenames(1, limit=1) == left, "counted and paged without them"
    assert filenames(3) == left
    removed = filenames(2, "removed")
    assert removed == (2, ["shelf_reader-0.1-py3-none-any.whl", "shelf_reader-0.1.tar.gz"]), (
        "what a version removed is shown as it left"
    )
