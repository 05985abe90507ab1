"""The seed's JSON: the seed workflow's commands print every key of the seed's output, and every
href they print answers 200 from ``mirrorflow serve`` (the real app under uvicorn on loopback).

The seed outputs below are copied from Pulp's sync guide (the index URL replaced).
"""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import mirrorflow.server.api
import mirrorflow.server.hrefs
import mirrorflow.storage.content
from mirrorflow.flows.cli_serve import app_from_settings
from mirrorflow.server.threaded import serve_in_thread

SEED_REPOSITORY = json.loads("""{
  "pulp_href": "/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/",
  "prn": "prn:python.pythonrepository:0196ba2a-f353-736a-854c-2d415389a509",
  "pulp_created": "2025-05-10T12:28:19.156941Z",
  "pulp_last_updated": "2025-05-10T12:28:19.169190Z",
  "versions_href": "/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/",
  "pulp_labels": {},
  "latest_version_href": "/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/0/",
  "name": "foo",
  "description": null,
  "retain_repo_versions": null,
  "remote": null,
  "autopublish": false
}""")

SEED_REMOTE = json.loads("""{
  "pulp_href": "/pulp/api/v3/remotes/python/python/0196ba2b-1461-7d0d-99f6-5f75610abf71/",
  "prn": "prn:python.pythonremote:0196ba2b-1461-7d0d-99f6-5f75610abf71",
  "pulp_created": "2025-05-10T12:28:27.617672Z",
  "pulp_last_updated": "2025-05-10T12:28:27.617697Z",
  "name": "bar",
  "url": "<index-url>",
  "ca_cert": null,
  "client_cert": null,
  "tls_validation": true,
  "proxy_url": null,
  "pulp_labels": {},
  "download_concurrency": null,
  "max_retries": null,
  "policy": "on_demand",
  "total_timeout": null,
  "connect_timeout": null,
  "sock_connect_timeout": null,
  "sock_read_timeout": null,
  "headers": null,
  "rate_limit": null,
  "hidden_fields": [
    {"name": "client_key", "is_set": false},
    {"name": "proxy_username", "is_set": false},
    {"name": "proxy_password", "is_set": false},
    {"name": "username", "is_set": false},
    {"name": "password", "is_set": false}
  ],
  "includes": ["shelf-reader"],
  "excludes": [],
  "prereleases": true,
  "package_types": [],
  "keep_latest_packages": 0,
  "exclude_platforms": []
}""")

SEED_VERSION = json.loads("""{
  "pulp_href": "/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/1/",
  "prn": "prn:core.repositoryversion:0196ba2b-655c-7745-b10f-bdde15a941c6",
  "pulp_created": "2025-05-10T12:28:48.349938Z",
  "pulp_last_updated": "2025-05-10T12:28:49.031497Z",
  "number": 1,
  "repository": "/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/",
  "base_version": null,
  "content_summary": {
    "added": {
      "python.python": {
        "count": 2,
        "href": "/pulp/api/v3/content/python/packages/?repository_version_added=/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/1/"
      }
    },
    "removed": {},
    "present": {
      "python.python": {
        "count": 2,
        "href": "/pulp/api/v3/content/python/packages/?repository_version=/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/1/"
      }
    }
  }
}""")  # noqa: E501

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    return result.json()


def _missing_keys(seed: Any, got: Any, where: str = "") -> list[str]:
    """Every key path of ``seed`` that ``got`` lacks (dicts by key, lists by their first item)."""
    if isinstance(seed, dict):
        if not isinstance(got, dict):
            return [where or "."]
        missing = [f"{where}.{key}" for key in seed if key not in got]
        for key in seed.keys() & got.keys():
            missing += _missing_keys(seed[key], got[key], f"{where}.{key}")
        return missing
    if isinstance(seed, list) and seed and isinstance(seed[0], dict):
        return _missing_keys(seed[0], got[0], f"{where}[0]") if got else [f"{where}[0]"]
    return []


def _same_shape(seed: Any, got: Any) -> None:
    """``got`` has every key of ``seed``, and each href, prn and time has the seed's form."""
    assert _missing_keys(seed, got) == []
    pattern = re.escape(json.dumps(seed, sort_keys=True))
    for sample in set(re.findall(_UUID, pattern.replace("\\-", "-"))):
        pattern = pattern.replace(re.escape(sample), _UUID)
    for sample in set(re.findall(r"\d{4}\\-\d\d\\-\d\dT\d\d:\d\d:\d\d\\.\d+Z", pattern)):
        pattern = pattern.replace(sample, _TIME.pattern)
    shown = {key: got[key] for key in seed}  # mirrorflow's extra keys are allowed after the seed's
    assert re.fullmatch(pattern, json.dumps(shown, sort_keys=True)), json.dumps(shown, indent=2)


def _hrefs(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for value in data.values():
            yield from _hrefs(value)
    elif isinstance(data, list):
        for item in data:
            yield from _hrefs(item)
    elif isinstance(data, str) and data.startswith(mirrorflow.server.hrefs.API_ROOT):
        yield data


@pytest.fixture
def seed_outputs(cli, seed_index) -> dict[str, Any]:
    """The seed's commands, typed as the seed types them, and what each printed."""
    outputs = {
        "repository": _ok(cli("repository", "create", "--name", "foo")),
        "remote": _ok(
            cli(
                "remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]'
            )
        ),
    }
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    outputs["version"] = _ok(cli("repository", "version", "show", "--repository", "foo"))
    outputs["repository_show"] = _ok(cli("repository", "show", "--name", "foo"))
    outputs["remote_show"] = _ok(cli("remote", "show", "--name", "bar"))
    return outputs


def test_the_seed_commands_print_the_seed_json_and_every_href_answers(seed_outputs, seed_index):
    seed_remote = SEED_REMOTE | {"url": seed_index.url}
    _same_shape(SEED_REPOSITORY, seed_outputs["repository"])
    _same_shape(seed_remote, seed_outputs["remote"])
    _same_shape(SEED_VERSION, seed_outputs["version"])
    repository, version = seed_outputs["repository_show"], seed_outputs["version"]
    assert version["repository"] == repository["pulp_href"] == seed_outputs["repository"]["pulp_href"]
    assert repository["latest_version_href"] == version["pulp_href"]
    assert version["pulp_href"].startswith(repository["versions_href"])

    hrefs = {href for output in seed_outputs.values() for href in _hrefs(output)}
    # the repository, its versions, versions 0 and 1, the remote, and two content lists
    assert len(hrefs) == 7, hrefs
    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as http:
        answers = {href: http.get(href) for href in hrefs}
        assert {href: answer.status_code for href, answer in answers.items()} == dict.fromkeys(hrefs, 200)
        # The detail hrefs answer with what the CLI printed.
        assert answers[repository["pulp_href"]].json() == repository
        assert answers[seed_outputs["remote"]["pulp_href"]].json() == seed_outputs["remote_show"]
        assert answers[version["pulp_href"]].json() == version
        for part in ("added", "present"):
            listed = answers[version["content_summary"][part]["python.python"]["href"]].json()
            assert listed["count"] == 2 and listed["next"] is None and listed["previous"] is None
            assert sorted(p["filename"] for p in listed["results"]) == [
                "shelf-reader-0.1.tar.gz",
                "shelf_reader-0.1-py2-none-any.whl",
            ]
            for package in listed["results"]:  # each package's own href answers with it
                assert http.get(package["pulp_href"]).json() == package
        versions = answers[repository["versions_href"]].json()
        assert [v["number"] for v in versions["results"]] == [1, 0] and versions["count"] == 2


def test_labels_are_set_shown_replaced_and_served(cli, seed_index):
    repo = _ok(cli("repository", "create", "--name", "foo", "--labels", '{"team": "ml", "tier": "gold"}'))
    assert repo["pulp_labels"] == {"team": "ml", "tier": "gold"}
    assert _ok(cli("repository", "update", "--name", "foo", "--labels", '{"team": "web"}'))[
        "pulp_labels"
    ] == {"team": "web"}
    assert _ok(cli("repository", "update", "--name", "foo", "--description", "d"))["pulp_labels"] == {
        "team": "web"
    }, "an update without --labels keeps them"
    remote = _ok(
        cli("remote", "create", "--name", "bar", "--url", seed_index.url, "--labels", '{"team": "ml"}')
    )
    assert remote["pulp_labels"] == {"team": "ml"}
    updated = _ok(cli("remote", "update", "--name", "bar", "--labels", "{}", "--policy", "immediate"))
    assert updated["pulp_labels"] == {} and updated["policy"] == "immediate"
    _ok(cli("repository", "update", "--name", "foo", "--remote", "bar"))
    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as http:
        shown = _ok(cli("repository", "show", "--name", "foo"))
        assert shown["remote"] == remote["pulp_href"]
        assert http.get(shown["pulp_href"]).json()["pulp_labels"] == {"team": "web"}
        assert http.get(remote["pulp_href"]).json()["pulp_labels"] == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("{team: ml}", "is not valid JSON", id="bad-json"),
        pytest.param('["team"]', "must be a JSON object of strings", id="a-list"),
        pytest.param('{"team": 1}', "the value of 'team' must be a string", id="number-value"),
        pytest.param('{"a/b": "x"}', "key 'a/b' must use only letters", id="bad-key"),
        pytest.param('{"team": "a,b"}', "may not hold ','", id="comma-in-value"),
    ],
)
@pytest.mark.parametrize("command", ["repository", "remote"])
def test_bad_labels_are_one_line_naming_labels_and_the_value_and_change_nothing(
    cli, seed_index, command, value, expected
):
    extra = ["--url", seed_index.url] if command == "remote" else []
    result = cli(command, "create", "--name", "foo", *extra, "--labels", value)
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and "labels: " in result.stderr, result.stderr
    assert expected in result.stderr and repr(value) in result.stderr, result.stderr
    assert _ok(cli(command, "list")) == []


def test_content_list_is_pulps_package_content_with_limit_and_offset(cli, seed_index):
    cli("repository", "create", "--name", "foo")
    cli("remote", "create", "--name", "dj", "--url", seed_index.url, "--includes", '["django>=2.2"]')
    _ok(cli("repository", "sync", "--name", "foo", "--remote", "dj"))
    packages = _ok(cli("content", "list", "--repository", "foo"))
    assert {p["name"] for p in packages} == {"Django"}, "the upstream's spelling, not the normalized name"
    by_type = {p["packagetype"]: p["python_version"] for p in packages}
    assert by_type == {"sdist": "source", "bdist_wheel": "py3"}
    assert all(
        re.fullmatch(f"/pulp/api/v3/content/python/packages/{_UUID}/", p["pulp_href"]) for p in packages
    )
    assert len(packages) == 6  # 2.2.28, 3.0a1, 3.0: an sdist and a wheel each
    window = _ok(cli("content", "list", "--repository", "foo", "--limit", "2", "--offset", "3"))
    assert window == packages[3:5]
    assert _ok(cli("content", "list", "--repository", "foo", "--offset", "5")) == packages[5:]
    bad = cli("content", "list", "--repository", "foo", "--limit", "0")
    assert bad.exit_code == 1 and "limit: must be a number of files from 1" in bad.stderr


def test_the_api_filters_and_paginates_content_as_pulp(cli, seed_index):
    cli("repository", "create", "--name", "foo")
    cli(
        "remote",
        "create",
        "--name",
        "bar",
        "--url",
        seed_index.url,
        "--includes",
        '["shelf-reader", "django>=3"]',
    )
    first = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar"))
    _ok(
        cli(
            "remote",
            "update",
            "--name",
            "bar",
            "--includes",
            '["shelf-reader"]',
            "--username",
            "u",
            "--password",
            "p",
        )
    )
    second = _ok(cli("repository", "sync", "--name", "foo", "--remote", "bar", "--mirror"))
    summary = second["content_summary"]
    assert summary["removed"]["python.python"]["count"] == 2 and summary["added"] == {}
    with serve_in_thread(app_from_settings()) as base, httpx.Client(base_url=base) as http:
        removed = http.get(summary["removed"]["python.python"]["href"]).json()
        assert sorted({p["name"] for p in removed["results"]}) == ["Django"] and removed["count"] == 2
        present_v1 = first["content_summary"]["present"]["python.python"]["href"]
        page = http.get(f"{present_v1}&limit=2&offset=1").json()
        assert page["count"] == 4 and len(page["results"]) == 2
        assert page["next"] == f"{base}{present_v1}&limit=2&offset=3"
        assert page["previous"] == f"{base}{present_v1}&limit=2"
        following = http.get(page["next"]).json()
        assert following["previous"] == f"{base}{present_v1}&limit=2&offset=1"
        assert http.get(summary["present"]["python.python"]["href"]).json()["count"] == 2
        everything = http.get("/pulp/api/v3/content/python/packages/").json()
        assert everything["count"] == 4 and everything["next"] is None, "every package of the catalog"

        remote = http.get("/pulp/api/v3/remotes/python/python/").json()["results"][0]
        assert {f["name"]: f["is_set"] for f in remote["hidden_fields"]}["password"] is True
        assert "p" not in {remote.get("password"), remote.get("username")}

        unknown = "/pulp/api/v3/repositories/python/python/00000000-0000-4000-8000-000000000000/"
        assert http.get(unknown).status_code == 404
        assert http.get(unknown + "versions/1/").status_code == 404
        assert http.get(second["pulp_href"].replace("/versions/2/", "/versions/7/")).status_code == 404
        bad = http.get("/pulp/api/v3/content/python/packages/", params={"repository_version": "/nope/"})
        assert bad.status_code == 400 and "repository_version" in bad.json()
        gone = http.get(
            "/pulp/api/v3/content/python/packages/", params={"repository_version": unknown + "versions/1/"}
        )
        assert gone.status_code == 400
        # The simple index is served beside the API, unchanged.
        assert http.get("/foo/simple/shelf-reader/").status_code == 200


@pytest.mark.parametrize(
    "module",
    [mirrorflow.server.hrefs, mirrorflow.server.api, mirrorflow.storage.content],
    ids=lambda m: m.__name__,
)
def test_doctests(module) -> None:
    assert doctest.testmod(module, raise_on_error=True).attempted > 0
