"""The seed workflow (Pulp's sync guide) end to end, through the CLI, on both backend pairs.

Each test runs on SQLite + directory store and on PostgreSQL + S3 (moto), against the seed
fixture index served on loopback.
"""

from __future__ import annotations

import hashlib

import pytest

from mirrorflow.flows.runtime import catalog_for, store_for
from mirrorflow.flows.settings import Settings
from mirrorflow.storage.content import ContentWriter


def _files(cli, repository: str = "foo", version: int | None = None) -> list[str]:
    args = ["content", "list", "--repository", repository]
    if version is not None:
        args += ["--version", str(version)]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return sorted(p["filename"] for p in result.json())


def _ok(result):
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_the_seed_four_commands_give_version_one_with_shelf_reader(cli, seed_index):
    repo = _ok(cli("repository", "create", "--name", "foo"))
    assert repo["name"] == "foo" and repo["latest_version"] == 0 and repo["remote"] is None

    remote = _ok(
        cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    )
    assert remote["includes"] == ["shelf-reader"] and remote["excludes"] == []
    assert remote["policy"] == "on_demand" and remote["prereleases"] is True
    assert remote["keep_latest_packages"] == 0 and remote["tls_validation"] is True
    assert {f["name"]: f["is_set"] for f in remote["hidden_fields"]} == dict.fromkeys(
        ["client_key", "proxy_username", "proxy_password", "username", "password"], False
    )

    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    version = _ok(cli("repository", "version", "show", "--repository", "foo"))
    assert version["number"] == 1 and version["base_version"] is None
    summary = version["content_summary"]
    assert summary["removed"] == {}
    assert summary["added"]["python.python"]["count"] == summary["present"]["python.python"]["count"] == 2
    assert _files(cli) == ["shelf-reader-0.1.tar.gz", "shelf_reader-0.1-py2-none-any.whl"]


def test_an_identical_second_sync_creates_no_version(cli, seed_index):
    cli("repository", "create", "--name", "foo")
    cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    first = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    assert first["number"] == 1 and first["changed"] is True
    again = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    assert again["number"] == 1 and again["changed"] is False, "the latest version, unchanged"
    assert [v["number"] for v in _ok(cli("repository", "version", "list", "--repository", "foo"))] == [1, 0]


def test_on_demand_stores_nothing_and_immediate_stores_each_file_once_verified(cli, seed_index):
    cli("repository", "create", "--name", "lazy")
    cli("repository", "create", "--name", "eager")
    cli("repository", "create", "--name", "eager2")
    cli("remote", "create", "--name", "od", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    cli(
        "remote", "create", "--name", "im", "--url", seed_index.url,
        "--includes", '["shelf-reader"]', "--policy", "immediate",
    )  # fmt: skip
    _ok(cli("repository", "sync", "--name", "lazy", "--remote", "od"))
    settings = Settings()
    store = store_for(settings)
    writer = ContentWriter(catalog_for(settings))
    lazy = writer.content_at("lazy")
    assert len(lazy) == 2 and all(p.artifact_sha256 is None for p in lazy)
    assert not any(store.exists(p.sha256) for p in lazy)

    _ok(cli("repository", "sync", "--name", "eager", "--remote", "im"))
    _ok(cli("repository", "sync", "--name", "eager2", "--remote", "im"))
    eager = writer.content_at("eager")
    assert [p.id for p in eager] == [p.id for p in writer.content_at("eager2")], "one package row per file"
    for package in eager:
        assert package.artifact_sha256 == package.sha256
        body = b"".join(store.open_chunks(package.sha256))
        assert hashlib.sha256(body).hexdigest() == package.sha256 and len(body) == package.size
    assert writer.known_artifacts(p.sha256 for p in eager) == {p.sha256 for p in eager}


COMPLEX = '["django~=2.0,!=2.0.1", "pip-tools>=1.12,<=2.0", "scipy", "shelf-reader"]'


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            ["--includes", COMPLEX],
            {
                "django": {"2.0", "2.0.2", "2.1", "2.2.28"},
                "pip-tools": {"1.12.0", "1.12.1", "2.0.0"},
                "scipy": {"1.5.0", "1.6.0rc1", "1.6.0"},
                "shelf-reader": {"0.1"},
            },
            id="complex-specifiers",
        ),
        pytest.param(
            ["--includes", '["django", "scipy"]', "--excludes", '["django~=1.0", "scipy"]'],
            {"django": {"2.0", "2.0.1", "2.0.2", "2.1", "2.2.28", "3.0a1", "3.0"}},
            id="includes-with-excludes",
        ),
    ],
)
def test_the_seed_complex_remotes_select_what_their_specifiers_say(cli, seed_index, options, expected):
    cli("repository", "create", "--name", "foo")
    _ok(cli("remote", "create", "--name", "complex", "--url", seed_index.url, *options))
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "complex"))
    packages = _ok(cli("content", "list", "--repository", "foo"))
    got: dict[str, set[str]] = {}
    for package in packages:
        got.setdefault(package["name"].lower(), set()).add(package["version"])
    assert got == expected


def test_package_types_platforms_and_keep_latest(cli, seed_index):
    cli("repository", "create", "--name", "foo")
    _ok(
        cli(
            "remote", "create", "--name", "complex-filters", "--url", seed_index.url,
            "--includes", '["scipy"]', "--package-types", '["sdist", "bdist_wheel"]',
            "--exclude-platforms", '["windows"]', "--keep-latest-packages", "2",
        )
    )  # fmt: skip
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "complex-filters"))
    packages = _ok(cli("content", "list", "--repository", "foo"))
    assert packages and not any("win" in p["filename"] for p in packages)
    assert {p["packagetype"] for p in packages} == {"sdist", "bdist_wheel"}
    versions = {p["version"] for p in packages}
    assert versions == {"1.6.0", "1.6.0rc1"}, "the two newest versions surviving the other filters"


def test_mirror_removes_what_the_remote_no_longer_selects(cli, seed_index):
    cli("repository", "create", "--name", "foo")
    cli(
        "remote",
        "create",
        "--name",
        "bar",
        "--url",
        seed_index.url,
        "--includes",
        '["shelf-reader", "pip-tools"]',
    )
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    before = _files(cli)
    _ok(cli("remote", "update", "--name", "bar", "--includes", '["shelf-reader"]'))
    additive = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    assert additive["number"] == 1, "additive sync of a subset changes nothing"
    mirrored = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar", "--mirror"))
    assert mirrored["number"] == 2
    assert mirrored["content_summary"]["present"]["python.python"]["count"] == 2
    assert _files(cli) == ["shelf-reader-0.1.tar.gz", "shelf_reader-0.1-py2-none-any.whl"]
    assert _files(cli, version=1) == before, "version 1 keeps what it held"


def test_the_repository_default_remote_is_used(cli, seed_index):
    cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    _ok(cli("repository", "create", "--name", "foo", "--remote", "bar"))
    assert _ok(cli("repository", "sync", "--name", "foo"))["number"] == 1
