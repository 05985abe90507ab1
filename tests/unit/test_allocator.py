"""``mirrorflow.flows.allocator``: the glibc settings are applied once, and an operator's variable wins."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
PROGRAM = (
    "import json; from mirrorflow.flows.allocator import tune_allocator as t; print(json.dumps([t(), t()]))"
)


def _run(**env: str) -> list[dict[str, int]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    result: list[dict[str, int]] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_applied_once_per_process():
    first, second = _run()
    assert first == {"MALLOC_ARENA_MAX": 2, "MALLOC_MMAP_THRESHOLD_": 65536}
    assert second == {}


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_operators_variable_wins():
    first, _ = _run(MALLOC_ARENA_MAX="4")
    assert first == {"MALLOC_MMAP_THRESHOLD_": 65536}
