"""Keep the C allocator from growing a long sync's memory with the size of the index.

A sync's threads each get a glibc malloc arena, and glibc raises its mmap threshold to the largest
block freed so far, so large project pages (hundreds of KB for a project with thousands of files)
end up in those arenas and fragment them: measured on the scale benchmark, peak RSS grew 10.6% from
20,000 to 40,000 projects with the defaults, 5.5% with two arenas and a fixed 64 KiB threshold
(``benchmarks/README.md``). These are the settings of the ``MALLOC_ARENA_MAX`` and
``MALLOC_MMAP_THRESHOLD_`` environment variables, applied in-process so that every way of starting
a sync gets them; a variable the operator set wins. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

__all__ = ["tune_allocator", "ARENA_MAX", "MMAP_THRESHOLD"]

ARENA_MAX = 2
MMAP_THRESHOLD = 64 * 1024
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters, from glibc's <malloc.h>

_lock = threading.Lock()
_done = False


def tune_allocator() -> dict[str, int]:
    """Apply the settings once per process; return those applied (empty where none was)."""
    global _done
    with _lock:
        if _done:
            return {}
        _done = True
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return {}
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):
            return {}
        applied = {}
        for variable, parameter, value in (
            ("MALLOC_ARENA_MAX", _M_ARENA_MAX, ARENA_MAX),
            ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        ):
            if variable not in os.environ and mallopt(parameter, value) == 1:
                applied[variable] = value
        return applied
