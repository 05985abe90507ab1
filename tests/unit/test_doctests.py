"""Every doctest in the project's packages runs: an example in a docstring is a test, not a comment."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "storage", "flows", "server")
MODULES = sorted(  # each folder installs as mirrorflow.<folder> (pyproject's package-dir)
    ".".join(("mirrorflow", *path.relative_to(ROOT).with_suffix("").parts))
    for package in PACKAGES
    for path in (ROOT / package).glob("*.py")
    if ">>> " in path.read_text()
)


def test_the_modules_with_examples_are_found() -> None:
    assert {
        "mirrorflow.tasks.index_url",
        "mirrorflow.tasks.outcome",
        "mirrorflow.tasks.simple",
        "mirrorflow.tasks.report",
        "mirrorflow.tasks.filters",
        "mirrorflow.server.hrefs",
    } <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0, (
        f"{name}: {result.failed} of {result.attempted} failed"
    )
