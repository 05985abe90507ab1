"""Commands that do not sync load only what they use (issue 14): ``repository list``, ``repository
show`` and ``repository version list`` answer from an embedded catalog with neither SQLAlchemy,
pydantic nor Typer, and no command loads Prefect, Alembic or the S3 client unless it uses them.
``benchmarks/cli_startup.py`` and ``benchmarks/catalog_commands.py`` have the timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from mirrorflow import storage
from mirrorflow.flows.locations import sqlite_catalog_file
from mirrorflow.flows.settings import Settings
from mirrorflow.flows.views import repository_view, version_view
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.sqlite_reads import (
    find_remote,
    find_repository,
    holds_secrets,
    list_remotes,
    list_repositories,
    list_versions,
    open_at_head,
)

#: Loaded by no command that does not sync or serve (prefect: seconds; the rest: 0.05-0.1 s each).
NEVER = {"prefect", "alembic", "minio", "Crypto", "rich", "pygments", "httpx", "uvicorn"}
#: Not loaded by the quick listing either.
NOT_FOR_A_LISTING = NEVER | {"sqlalchemy", "pydantic", "pydantic_settings", "typer", "click", "cryptography"}

_RUN = (
    "import json, sys; sys.argv = ['mirrorflow', *sys.argv[1:]]; from mirrorflow.flows.console import main\n"
    "try:\n    main()\nfinally:\n"
    "    print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)"
)


def _run(home: Path, *args: str) -> tuple[str, set[str]]:
    """Run the console script's main in a fresh interpreter: its stdout, and the packages it loaded."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "MIRRORFLOW_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout, set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A catalog at the head revision: two repositories, one with a default remote."""
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.create_remote("up", url="https://index.example/simple/")
    catalog.create_repository("zeta", description="last by name", retain_repo_versions=3, remote="up")
    catalog.create_repository("alpha")
    catalog.dispose()
    return tmp_path


def test_repository_list_loads_no_database_toolkit_nor_option_parser(home):
    out, loaded = _run(home, "repository", "list")
    assert [repo["name"] for repo in json.loads(out)] == ["alpha", "zeta"]
    assert loaded & NOT_FOR_A_LISTING == set()


#: Not loaded by the quick remote reads (the remote's view is pydantic's, and names credential headers).
NOT_FOR_A_REMOTE = NEVER | {"sqlalchemy", "pydantic_settings", "typer", "click"}


@pytest.mark.parametrize(
    ("args", "unloaded"),
    [
        pytest.param(("repository", "show", "--name", "zeta"), NOT_FOR_A_LISTING, id="show"),
        pytest.param(("repository", "show", "--name=alpha"), NOT_FOR_A_LISTING, id="show-equals"),
        pytest.param(
            ("repository", "version", "list", "--repository", "zeta"), NOT_FOR_A_LISTING, id="version-list"
        ),
        pytest.param(("remote", "show", "--name", "up"), NOT_FOR_A_REMOTE, id="remote-show"),
        pytest.param(("remote", "list"), NOT_FOR_A_REMOTE, id="remote-list"),
    ],
)
def test_repositories_versions_and_remotes_are_shown_without_database_toolkit_nor_option_parser(
    home, args, unloaded
):
    out, loaded = _run(home, *args)
    assert json.loads(out)
    assert loaded & unloaded == set()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("repository", "show", "--name", "nope"), id="show-unknown"),
        pytest.param(("repository", "version", "list", "--repository", "nope"), id="versions-unknown"),
    ],
)
def test_a_name_the_quick_read_does_not_find_gets_the_catalogs_error(home, args):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "MIRRORFLOW_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN, *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: repository 'nope' does not exist\n")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--debug", "repository", "show", "--name", "zeta"), id="show-debug"),
        pytest.param(("repository", "create", "--name", "new"), id="create"),
        pytest.param(
            ("remote", "create", "--name", "new", "--url", "https://index.example/simple/"),
            id="remote-create",
        ),
        pytest.param(("content", "list", "--repository", "zeta"), id="content-list"),
        pytest.param(("--help",), id="help"),
    ],
)
def test_other_commands_load_neither_prefect_alembic_nor_an_s3_client(home, args):
    out, loaded = _run(home, *args)
    assert out.strip()
    assert loaded & NEVER == set()


def test_a_new_catalog_is_created_and_migrated_by_the_first_listing(tmp_path):
    out, loaded = _run(tmp_path, "repository", "list")
    assert json.loads(out) == []
    assert "alembic" in loaded and (tmp_path / "catalog.db").is_file()


def test_the_quick_listing_prints_what_the_catalog_does(home):
    catalog = Catalog.from_url(f"sqlite:///{home / 'catalog.db'}")
    expected = [repository_view(row, catalog.remote_uuid_of(row)) for row in catalog.list_repositories()]
    up = catalog.remote_uuid_of(catalog.get_repository(expected[1]["name"]))
    catalog.dispose()
    connection = open_at_head(home / "catalog.db")
    assert connection is not None
    quick = [repository_view(row, remote) for row, remote in list_repositories(connection)]
    connection.close()
    assert quick == expected
    assert quick[1]["remote"].endswith(f"/{up}/") and quick[1]["pulp_created"].tzinfo is not None


def test_the_quick_show_and_version_list_print_what_the_catalog_does(home):
    catalog = Catalog.from_url(f"sqlite:///{home / 'catalog.db'}")
    zeta = catalog.get_repository("zeta")
    expected = (
        repository_view(zeta, catalog.remote_uuid_of(zeta)),
        [version_view(v) for v in catalog.list_versions("zeta")],
    )
    catalog.dispose()
    connection = open_at_head(home / "catalog.db")
    assert connection is not None
    found = find_repository(connection, "zeta")
    versions = list_versions(connection, "zeta")
    assert find_repository(connection, "nope") is None and list_versions(connection, "nope") is None
    connection.close()
    assert found is not None and versions is not None
    assert (repository_view(*found), [version_view(v) for v in versions]) == expected
    assert expected[0]["remote"] is not None and expected[1][0]["number"] == 0


def test_the_quick_remote_reads_print_what_the_catalog_does_and_leave_sealed_secrets_to_it(home):
    from cryptography.fernet import Fernet

    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.flows.views import remote_view
    from mirrorflow.storage.secrets import SecretBox

    box = SecretBox(Fernet.generate_key())
    catalog = Catalog.from_url(f"sqlite:///{home / 'catalog.db'}", secrets=box)
    fields = {"url": "https://index.example/full/", "headers": [{"X-Trace": "1"}], "prereleases": False,
              "exclude_newer_than": "7d", "python_versions": ["3.12"], "total_timeout": 12.5, "skip_yanked": True}  # fmt: skip
    catalog.create_remote("full", **RemoteFields.model_validate(fields).to_columns(), labels={"team": "ml"})
    sealed = {"url": "https://index.example/s/", "password": "p", "headers": [{"Authorization": "Bearer t"}]}
    catalog.create_remote("sealed", **RemoteFields.model_validate(sealed).to_columns())
    expected = {row.name: remote_view(row) for row in catalog.list_remotes()}
    catalog.dispose()
    connection = open_at_head(home / "catalog.db")
    assert connection is not None
    quick = {row.name: row for row in list_remotes(connection)}
    assert find_remote(connection, "nope") is None and find_remote(connection, "full") == quick["full"]
    connection.close()
    assert [holds_secrets(row) for row in quick.values()] == [False, True, False]  # full, sealed, up
    assert {name: remote_view(row) for name, row in quick.items() if name != "sealed"} == {
        name: view for name, view in expected.items() if name != "sealed"
    }
    assert expected["full"]["pulp_labels"] == {"team": "ml"} and expected["full"]["skip_yanked"] is True


def test_only_a_catalog_at_the_head_revision_is_read_quickly(home, tmp_path_factory):
    missing = tmp_path_factory.mktemp("none") / "catalog.db"
    assert open_at_head(missing) is None
    assert not missing.exists(), "the quick read must not create a catalog"
    config = Config()
    config.set_main_option("script_location", str(Path(storage.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{home / 'catalog.db'}")
    command.downgrade(config, "-1")
    assert open_at_head(home / "catalog.db") is None
    out, loaded = _run(home, "repository", "list")  # the Catalog migrates it, then lists
    assert [repo["name"] for repo in json.loads(out)] == ["alpha", "zeta"] and "alembic" in loaded


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"MIRRORFLOW_HOME": "/srv/mf"}, id="home"),
        pytest.param({"mirrorflow_home": "/srv/lower"}, id="home-lowercase"),
        pytest.param({"XDG_DATA_HOME": "/xdg"}, id="xdg"),
        pytest.param({}, id="default"),
        pytest.param(
            {"MIRRORFLOW_HOME": "/a", "MIRRORFLOW_DATABASE_URL": "sqlite:////b/c.db"}, id="sqlite-url"
        ),
        pytest.param({"MIRRORFLOW_HOME": "/a", "MIRRORFLOW_DATABASE_URL": ""}, id="empty-url"),
        pytest.param({"MIRRORFLOW_DATABASE_URL": "sqlite:///rel/c.db"}, id="relative-url"),
        pytest.param({"MIRRORFLOW_DATABASE_URL": "postgresql+psycopg://u@h/db"}, id="postgres"),
        pytest.param({"MIRRORFLOW_DATABASE_URL": "sqlite://"}, id="in-memory"),
        pytest.param({"MIRRORFLOW_DATABASE_URL": "sqlite:///c.db?timeout=5"}, id="query"),
    ],
)
def test_the_catalog_file_is_the_one_the_settings_name(environ, monkeypatch):
    for name in ("MIRRORFLOW_HOME", "MIRRORFLOW_DATABASE_URL", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = sqlite_catalog_file()
    url = Settings().catalog_url
    if path is None:
        assert not url.startswith("sqlite:///") or "?" in url or url == "sqlite:///"
        return
    assert url == f"sqlite:///{path}"
