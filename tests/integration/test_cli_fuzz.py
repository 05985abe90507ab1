"""A fuzz of every numeric option of every command: whatever the value, the CLI answers with exit 0,
1 or 2, never a traceback, and a refusal (exit 1) is one line on stderr.

The commands run in-process (the ``cli`` fixture) on the SQLite catalog and directory store;
``serve`` is stopped short of listening (``uvicorn.run`` is replaced), ``repository sync`` has no
numeric option. The values are random integers (also far beyond any column), floats (NaN and
infinities included) and text, plus a table of the values that escaped before (issue 14).
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

URL = "http://127.0.0.1:9/simple/"

#: Values that once ended in a traceback or were stored without complaint, and their neighbours.
EDGES = [
    "99999999999",
    "1" + "0" * 30,
    "-1",
    "0",
    "1",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "2147483648",
    "abc",
    "",
]

#: Arguments that make each command reach its numeric options (its required ones, and a target).
BASE = {
    ("remote", "create"): ["--name", "fz", "--url", URL],
    ("remote", "update"): ["--name", "bar"],
    ("repository", "create"): ["--name", "fz"],
    ("repository", "update"): ["--name", "foo"],
    ("repository", "verify"): ["--name", "foo"],
    ("repository", "schedule"): ["--name", "foo"],
    ("repository", "version", "show"): ["--repository", "foo"],
    ("content", "list"): ["--repository", "foo"],
}


def _numeric_options(cli) -> list[tuple[tuple[str, ...], str]]:
    """Every (command path, option) whose option takes an int or a float."""
    cli("--help")  # main() imports every command module
    from mirrorflow.flows.cli_app import app

    found: list[tuple[tuple[str, ...], str]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))
        for param in command.params:
            annotation = param.type_descriptor.annotation  # typer's own params: the declared type
            if {annotation, *typing.get_args(annotation)} & {int, float}:
                found.append((path, param.opts[0]))

    walk(typer.main.get_command(app), ())
    return found


@pytest.fixture
def fuzzed(cli, monkeypatch):
    """The CLI with repository ``foo`` (remote ``bar``) and ``serve`` that returns instead of serving."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    assert cli("remote", "create", "--name", "bar", "--url", URL).exit_code == 0
    assert cli("repository", "create", "--name", "foo", "--remote", "bar").exit_code == 0
    options = _numeric_options(cli)
    assert len(options) >= 25, options  # every command's numeric options were found
    return cli, options


def _check(cli, path: tuple[str, ...], option: str, value: str) -> None:
    result = cli(*path, *BASE.get(path, []), option, value)
    shown = f"{' '.join(path)} {option} {value!r}: exit {result.exit_code}\n{result.stderr}"
    assert result.exit_code in (0, 1, 2), shown
    assert "Traceback" not in result.stderr, shown
    if (
        value.strip().lstrip("-").isdigit()
    ):  # an integer: out of range is our one line, not typer's usage error
        assert "Invalid value" not in result.stderr, shown
    if result.exit_code == 1:
        assert len(result.stderr.strip().splitlines()) <= 1, shown


@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
def test_the_values_that_escaped_before_get_one_line_or_pass(fuzzed):
    cli, options = fuzzed
    for path, option in options:
        for value in EDGES:
            _check(cli, path, option, value)
    refused = cli("orphans", "cleanup", "--protection-time", "99999999999")
    assert refused.exit_code == 1 and "protection_time" in refused.stderr and "99999999999" in refused.stderr
    refused = cli("remote", "update", "--name", "bar", "--total-timeout", "1" + "0" * 30)
    assert refused.exit_code == 1 and "total_timeout" in refused.stderr


_VALUES = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
)


# Hypothesis warns when the global `random` state changes during a draw. Here no strategy uses it, but
# threads of earlier tests in this worker (Prefect's services, with their jitter) may at any moment: the
# values are drawn before any command runs, and that warning, about other threads, is not ours.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize("mirrorflow_env", ["sqlite-fs"], indirect=True)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_numeric_option_answers_random_values_in_one_line(fuzzed, data):
    cli, options = fuzzed
    values = [data.draw(_VALUES, label=f"{' '.join(path)} {option}") for path, option in options]
    for (path, option), value in zip(options, values, strict=True):
        _check(cli, path, option, value)
