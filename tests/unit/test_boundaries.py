"""The import boundaries that the README draws, held mechanically.

``make lint`` runs import-linter on the contracts in ``pyproject.toml`` (layers, the purity of
decision code, the fixture index on its own). What a forbidden contract cannot say is an allow-list:
here each decision module (the ``pure`` contract's ``source_modules``, the one list of them) may
import the standard library, ``packaging`` and other decision modules, and nothing else.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


PURE = list(_contract("pure")["source_modules"])  # type: ignore[call-overload]


def _path(module: str) -> Path:
    # mirrorflow.tasks.filters is tasks/filters.py: each folder installs as mirrorflow.<folder>
    return ROOT / (module.removeprefix("mirrorflow.").replace(".", "/") + ".py")


def _imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            modules.add(node.module or "")
    return modules


@pytest.mark.parametrize("module", PURE)
def test_decision_code_imports_only_the_standard_library_packaging_and_decision_code(module: str) -> None:
    path = _path(module)
    assert path.is_file(), f"{module} (pyproject.toml's 'pure' contract) is not a module: renamed?"
    for name in _imports(path):
        top = name.partition(".")[0]
        if top == "mirrorflow":
            assert name in PURE, f"{module} imports {name}, which is not decision code"
        else:
            assert top in sys.stdlib_module_names or top in {"packaging", "__future__"}, f"{module}: {name}"


def test_the_error_root_imports_nothing() -> None:
    assert _imports(_path("mirrorflow.storage.errors")) == {"__future__"}
