"""Bad user input for every CLI command: one line on stderr naming the field and the value, a non-zero
exit, and nothing changed (the catalog is compared before and after).
"""

from __future__ import annotations

import pytest
import typer

URL = "http://127.0.0.1:9/simple/"


@pytest.fixture
def seeded(cli):
    """Repository ``foo`` (default remote ``bar``), repository ``plain`` (no remote)."""
    assert cli("remote", "create", "--name", "bar", "--url", URL).exit_code == 0
    assert cli("repository", "create", "--name", "foo", "--remote", "bar").exit_code == 0
    assert cli("repository", "create", "--name", "plain").exit_code == 0
    return cli


def _state(cli) -> tuple[str, ...]:
    return tuple(
        cli(*args).stdout
        for args in (
            ("remote", "list"),
            ("repository", "list"),
            ("repository", "version", "list", "--repository", "foo"),
            ("content", "list", "--repository", "foo"),
        )
    )


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


R, RC, RU, RM = (
    ("repository",),
    ("remote", "create", "--name", "new", "--url", URL),
    ("remote", "update"),
    ("remote",),
)
LONG = "x" * 300

CASES = [
    # repositories
    (("repository", "create", "--name", "foo"), ["repository 'foo' already exists"]),
    (("repository", "create", "--name", ""), ["--name", "''"]),
    (("repository", "create", "--name", LONG), ["--name", "255"]),
    (("repository", "create", "--name", "a\tb"), ["--name", "control"]),
    (("repository", "create", "--name", "bad name/.."), ["--name", "'bad name/..'", "letters, digits"]),
    (("repository", "create", "--name", "-dash"), ["--name", "'-dash'", "start with a letter or digit"]),
    (RC[:3] + ("new", "--url", URL, "--headers", '{"a": "b"}'), ["headers", "JSON list", "Authorization"]),
    (("repository", "create", "--name", "x", "--retain-repo-versions", "-1"), ["retain_repo_versions", "-1"]),
    (("repository", "create", "--name", "x", "--retain-repo-versions", "0"), ["retain_repo_versions", "0"]),
    (("repository", "create", "--name", "x", "--retain-repo-versions", str(2**40)), ["retain_repo_versions"]),
    (
        ("repository", "create", "--name", "x", "--retain-repo-versions", "abc"),
        ["--retain-repo-versions", "'abc'"],
    ),
    (("repository", "create", "--name", "x", "--remote", "nope"), ["remote 'nope' does not exist"]),
    (("repository", "update", "--name", "nope", "--description", "d"), ["repository 'nope' does not exist"]),
    (("repository", "update", "--name", "foo", "--remote", "nope"), ["remote 'nope' does not exist"]),
    (("repository", "update", "--name", "foo", "--retain-repo-versions", "0"), ["retain_repo_versions", "0"]),
    (("repository", "update", "--name", "foo", "--autopublish"), ["autopublish", "--publish-to"]),
    (("repository", "publish", "--name", "foo", "--to", "s3://Bad_Bucket/x"), ["to", "'s3://Bad_Bucket/x'"]),
    (("repository", "publish", "--name", "foo", "--to", "s3://site/p"), ["to", "'s3://site/p'"]),
    (
        ("repository", "publish", "--name", "foo", "--to", "/dev/null/site"),
        ["to", "'/dev/null/site'", "cannot be created"],
    ),
    # export's and import's options read as every other field error: "field: 'value' why"
    (
        ("repository", "export", "--name", "foo", "--to", "/dev/null/usb"),
        ["Error: to: '/dev/null/usb' cannot be created"],
    ),
    (
        ("repository", "export", "--name", "foo", "--to", "/dev/null/usb", "--chunk-size", "2 parsecs"),
        ["Error: chunk_size: '2 parsecs' is not a size"],
    ),
    (
        ("repository", "export", "--name", "foo", "--to", "/dev/null/usb", "--since-version", "0"),
        ["Error: since_version: 0 must be below the exported version 0"],
    ),
    (("repository", "import", "--name", "foo", "--from", "/dev/null"), ["Error: from: '/dev/null' holds no"]),
    (("repository", "show", "--name", "nope"), ["repository 'nope' does not exist"]),
    (("repository", "delete", "--name", "nope"), ["repository 'nope' does not exist"]),
    (("repository", "sync", "--name", "nope"), ["repository 'nope' does not exist"]),
    (("repository", "sync", "--name", "foo", "--remote", "nope"), ["remote 'nope' does not exist"]),
    (("repository", "sync", "--name", "plain"), ["remote", "'plain' has no remote"]),
    (
        ("repository", "version", "show", "--repository", "foo", "--version", "-1"),
        ["version: must be a version number from 0 to 2147483647 (got -1)"],
    ),
    (("repository", "version", "show", "--repository", "foo", "--version", "7"), ["version 'foo/7'"]),
    (("repository", "version", "show", "--repository", "foo", "--version", "x"), ["--version", "'x'"]),
    (("repository", "version", "list", "--repository", "nope"), ["repository 'nope' does not exist"]),
    (("content", "list", "--repository", "nope"), ["repository 'nope' does not exist"]),
    (("content", "list", "--repository", "foo", "--version", "3"), ["version 'foo/3'"]),
    (("content", "list", "--repository", "foo", "--limit", "-1"), ["limit", "-1"]),
    (("content", "list", "--repository", "foo", "--limit", "0"), ["limit", "0"]),
    (("content", "list", "--repository", "foo", "--limit", str(2**40)), ["limit", str(2**40)]),
    (("content", "list", "--repository", "foo", "--offset", "-3"), ["offset", "-3"]),
    # remotes
    (("remote", "create", "--name", "bar", "--url", URL), ["remote 'bar' already exists"]),
    (("remote", "create", "--name", "new"), ["url", "--url"]),
    (("remote", "create", "--name", "new", "--url", "file:///etc/passwd"), ["url", "'file:///etc/passwd'"]),
    (("remote", "create", "--name", "new", "--url", "not a url"), ["url", "'not a url'"]),
    (("remote", "create", "--name", "new", "--url", "https://h.example:99999/"), ["url", "99999", "port"]),
    (("remote", "create", "--name", "new", "--url", " https://h.example/"), ["url", "spaces"]),
    (("remote", "create", "--name", "new", "--url", "https://h.example/ simple/"), ["url", "space", "%20"]),
    # Credentials in the URL would be printed and logged: refused, the password left out of the message.
    (
        ("remote", "create", "--name", "new", "--url", "https://alice:s3cret@h.example/simple/"),
        ["url", "'https://<hidden>@h.example/simple/'", "--username", "--password"],
    ),
    (
        (*RC, "--proxy-url", "http://bob:s3cret@proxy:3128"),
        ["proxy_url", "<hidden>@proxy:3128", "--proxy-password"],
    ),
    (("remote", "update", "--name", "bar", "--url", "https://tok@h.example/"), ["url", "<hidden>@h.example"]),
    ((*RC, "--ca-cert", "not pem"), ["ca_cert", "'not pem'", "PEM"]),
    ((*RC, "--client-cert", "junk"), ["client_cert", "'junk'", "PEM"]),
    ((*RC, "--includes", '["django>>1"]'), ["includes", "'django>>1'"]),
    ((*RC, "--includes", "not json"), ["includes", "'not json'", "JSON"]),
    ((*RC, "--includes", '["django", "django"]'), ["Error: includes: 'django' is given twice"]),
    (
        ("remote", "update", "--name", "bar", "--excludes", '["a", "A"]'),
        ["Error: excludes: 'A' is given twice (as 'a')"],
    ),
    ((*RC, "--includes", '{"a": 1}'), ["includes", "JSON list"]),
    ((*RC, "--excludes", '["scipy;;"]'), ["excludes", "'scipy;;'"]),
    ((*RC, "--package-types", '["egg"]'), ["package_types", "'egg'"]),
    ((*RC, "--exclude-platforms", '["amiga"]'), ["exclude_platforms", "'amiga'"]),
    ((*RC, "--python-versions", '["banana"]'), ["python_versions", "'banana'"]),
    ((*RC, "--keep-latest-packages", "-1"), ["keep_latest_packages", "-1"]),
    ((*RC, "--keep-latest-packages", str(2**40)), ["keep_latest_packages", str(2**40)]),
    ((*RC, "--policy", "lazy"), ["policy", "'lazy'"]),
    ((*RC, "--download-concurrency", "0"), ["download_concurrency", "0"]),
    ((*RC, "--max-retries", "-2"), ["max_retries", "-2"]),
    ((*RC, "--total-timeout", "-1"), ["total_timeout", "-1"]),
    ((*RC, "--exclude-newer-than", "7x"), ["exclude_newer_than", "'7x'"]),
    ((*RC, "--missing-upload-time", "maybe"), ["missing_upload_time", "'maybe'"]),
    ((*RC, "--headers", '["x"]'), ["headers", "'x'"]),
    ((*RC, "--proxy-url", "ftp://proxy"), ["proxy_url", "'ftp://proxy'"]),
    ((*RC, "--rate-limit", "-5"), ["rate_limit", "-5"]),
    (("remote", "update", "--name", "nope", "--url", URL), ["remote 'nope' does not exist"]),
    (("remote", "update", "--name", "bar", "--url", "ftp://h/"), ["url", "'ftp://h/'"]),
    (("remote", "update", "--name", "bar", "--policy", "eager"), ["policy", "'eager'"]),
    (("remote", "update", "--name", "bar", "--includes", "[1]"), ["includes"]),
    (("remote", "show", "--name", "nope"), ["remote 'nope' does not exist"]),
    (("remote", "delete", "--name", "nope"), ["remote 'nope' does not exist"]),
]


@pytest.mark.parametrize(("args", "said"), [pytest.param(a, s, id=" ".join(a)[:60]) for a, s in CASES])
def test_bad_input_is_one_line_naming_field_and_value_and_changes_nothing(seeded, args, said):
    before = _state(seeded)
    line = _one_line_error(seeded(*args))
    for text in said:
        assert text in line, line
    assert "s3cret" not in line, line
    assert _state(seeded) == before


def _leaf_commands(cli) -> list[tuple[list[str], object]]:
    cli("--help")  # main() imports every command module
    from mirrorflow.flows.cli_app import app

    found: list[tuple[list[str], object]] = []

    def walk(command, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk(sub, [*path, name])
        else:
            found.append((path, command))

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_answers_an_unknown_option_and_a_missing_one_in_one_line(seeded):
    leaves = _leaf_commands(seeded)
    assert len(leaves) >= 15, [p for p, _ in leaves]
    before = _state(seeded)
    for path, command in leaves:
        line = _one_line_error(seeded(*path, "--no-such-option"))
        assert "No such option: --no-such-option" in line, (path, line)
        required = [p for p in command.params if p.required]
        if required:
            line = _one_line_error(seeded(*path))
            # an option (Pulp's grammar), or the one positional PATH (``advisories import``)
            missing = "Missing argument" if required[0].param_type_name == "argument" else "Missing option"
            assert missing in line and required[0].opts[0] in line, (path, line)
    assert _state(seeded) == before


#: The remote's boolean options: (option, field, the flag that sets it false).
BOOLEANS = [
    ("--prereleases", "prereleases", "--no-prereleases"),
    ("--tls-validation", "tls_validation", "--no-tls-validation"),
    ("--skip-yanked", "skip_yanked", "--keep-yanked"),
    ("--keep-quarantined", "keep_quarantined", "--drop-quarantined"),
    ("--include-dependencies", "include_dependencies", "--no-include-dependencies"),
]


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
@pytest.mark.parametrize(("option", "field", "negative"), [pytest.param(*b, id=b[1]) for b in BOOLEANS])
def test_every_boolean_remote_option_takes_pulp_clis_spelling_the_bare_flag_and_its_negative(
    cli, option, field, negative
):
    def remote(*args: str) -> bool:
        result = cli("remote", "update", "--name", "bar", *args)
        assert result.exit_code == 0, result.stderr
        return bool(result.json()[field])

    assert cli("remote", "create", "--name", "bar", "--url", URL, option, "yes").json()[field] is True
    assert remote(option, "false") is False
    assert remote(option, "true", "--name", "bar") is True
    assert remote(negative) is False
    assert remote(f"{option}=1") is True
    assert remote(option, "off") is False
    assert remote(option) is True  # bare, last
    assert remote(negative, option, "--name", "bar") is False  # the negative wins, as before
    assert remote(option, "--name", "bar") is True  # bare, before another option
    before = _state(cli)
    refused = cli("remote", "update", "--name", "bar", option, "maybe")
    assert (refused.exit_code, refused.stderr) == (1, f"Error: {field}: 'maybe' is not true or false\n")
    assert _state(cli) == before


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_version_prints_the_installed_version(cli):
    from importlib.metadata import version

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"mirrorflow {version('mirrorflow')}"


def _main_raising(monkeypatch, error: Exception) -> None:
    """Run ``mirrorflow.flows.cli.main`` with a command that raises ``error`` (no Prefect, no catalog)."""
    import mirrorflow.flows.allocator
    import mirrorflow.flows.cli

    def command(**_: object) -> None:
        raise error

    monkeypatch.setattr(mirrorflow.flows.allocator, "tune_allocator", lambda: {})
    monkeypatch.setattr(mirrorflow.flows.cli, "_click_command", lambda: command)  # what main() runs
    monkeypatch.delenv("MIRRORFLOW_DEBUG", raising=False)
    mirrorflow.flows.cli.main()


def test_our_error_is_one_line_and_exit_1(monkeypatch, capsys):
    from mirrorflow.flows.cli_app import UsageError

    with pytest.raises(SystemExit) as exited:
        _main_raising(monkeypatch, UsageError("interval: 0 is not a number of seconds from 1"))
    assert exited.value.code == 1
    assert capsys.readouterr().err == "Error: interval: 0 is not a number of seconds from 1\n"


@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(ValueError("not enough values to unpack"), id="ValueError"),
        pytest.param(KeyError("remote"), id="KeyError"),
        pytest.param(TypeError("unsupported operand"), id="TypeError"),
    ],
)
def test_a_programming_error_surfaces_as_a_bug_not_as_a_user_message(monkeypatch, capsys, bug):
    """Only ``MirrorflowError`` is shown as one line: a plain ``ValueError`` is a bug, with its traceback."""
    with pytest.raises(type(bug)):
        _main_raising(monkeypatch, bug)
    assert "Error:" not in capsys.readouterr().err


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_serve_on_a_port_in_use_is_one_line_naming_the_port(cli, monkeypatch):
    import socket

    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.append(kwargs))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error(cli("serve", "--port", str(port)))
        assert f"port {port} on 127.0.0.1 is in use" in line, line
        assert cli("serve", "--host", "127.0.0.1", "--port", str(port)).exit_code == 1
    assert served == [], "uvicorn was never started"
    # A free port passes the check and goes on to uvicorn.
    assert cli("serve", "--port", str(port)).exit_code == 0 and len(served) == 1
