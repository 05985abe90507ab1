"""The folders install as ``mirrorflow.<folder>`` (pyproject's package-dir), and only under that name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
FOLDERS = ("flows", "tasks", "storage", "server", "deployments", "fixtureindex")


def test_every_package_folder_installs_under_mirrorflow() -> None:
    assert SETUPTOOLS["package-dir"] == {f"mirrorflow.{folder}": folder for folder in FOLDERS}
    # setuptools installs only the packages listed: a new subpackage left out would be missing
    # from `pip install .` while the editable install still finds it.
    subpackages = {
        "mirrorflow." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(SETUPTOOLS["packages"]) == subpackages


def test_mypy_sees_each_folder_under_its_installed_name() -> None:
    links = ROOT / ".typecheck" / "mirrorflow"
    assert {path.name: path.resolve() for path in links.iterdir()} == {f: ROOT / f for f in FOLDERS}


def test_a_folder_imported_under_its_bare_name_refuses() -> None:
    program = (
        "import importlib\n"
        f"for name in {FOLDERS!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == [
        f"import mirrorflow.{name}, not {name}: the folder installs as mirrorflow.{name}" for name in FOLDERS
    ]


#: The ``assert`` statements package code may keep: pure type narrowing that no input can reach,
#: where a check would cost (``render_project_json``'s loop runs once per file of a page).
_NARROWING_ASSERTS = {("server/pages.py", "requires is not None")}


def test_package_code_checks_with_exceptions_not_asserts() -> None:
    """``python -O`` drops asserts: a guard in package code must be an ``if`` that raises."""
    import ast

    found = set()
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Assert):
                    found.add((path.relative_to(ROOT).as_posix(), ast.unparse(node.test)))
    assert found <= _NARROWING_ASSERTS, sorted(found - _NARROWING_ASSERTS)
