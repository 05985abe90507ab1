"""A deterministic synthetic simple index: N projects generated from a seed, page by page.

Nothing is written to disk: a project's page (PEP 691 JSON) and its files are computed on request
from ``(seed, project index, state)``, so 40,000 projects cost nothing to "build". Two states:

- state 0: the initial index;
- state 1: the index later on: about 0.6% of projects get a new release, 0.2% yank a file,
  0.1% are deleted and 0.1% more projects appear (about 1% of projects touched in all).

Shape (roughly the public index's): versions per project are heavy-tailed (most have a few, some
over a hundred); each version has an sdist and usually a pure wheel; one project in ten ships
binary wheels for several Pythons and platforms. Files are small (100-300 bytes of seeded random
bytes with a correct sha256), except for "big" projects (every ``big_every``-th), whose files are
50-500 KB, for the immediate-policy benchmark.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["SyntheticIndex", "SynthFile"]

_WORDS = [
    "py",
    "async",
    "data",
    "flask",
    "django",
    "http",
    "json",
    "yaml",
    "auth",
    "cloud",
    "test",
    "lib",
    "core",
    "tools",
    "utils",
    "cli",
    "api",
    "web",
    "net",
    "ml",
    "torch",
    "numpy",
    "plot",
    "sql",
    "orm",
    "cache",
    "queue",
    "task",
    "log",
    "config",
    "crypto",
    "image",
    "text",
    "parse",
]
_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "musllinux_1_1_x86_64",
    "macosx_11_0_arm64",
    "macosx_10_9_x86_64",
    "win_amd64",
    "win32",
)
_PYTHONS = ("cp39", "cp310", "cp311", "cp312")
_BLOCK = random.Random(0).randbytes(600_000)  # file bodies are slices of this, prefixed by the name
STATE_SERIAL_STEP = 10_000_000  # serials of state-1 changes sit above every state-0 serial


@dataclass(frozen=True, slots=True)
class SynthFile:
    filename: str
    size: int
    offset: int
    yanked: bool
    upload: str

    def body(self) -> bytes:
        head = self.filename.encode()
        return head + _BLOCK[self.offset : self.offset + self.size - len(head)]


class SyntheticIndex:
    """The synthetic index of ``projects`` projects, in ``state`` 0 or 1 (mutable: ``state``)."""

    def __init__(self, projects: int, *, seed: int = 1, big_every: int = 200, state: int = 0) -> None:
        self.count, self.seed, self.big_every, self.state = projects, seed, big_every, state
        self.extra = max(projects // 1000, 1)  # projects that appear in state 1

    # -- which projects, and their serials ------------------------------------------------

    def name(self, i: int) -> str:
        rng = random.Random(self.seed * 7919 + i)
        return f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{i}"

    def change(self, i: int) -> str | None:
        """What state 1 does to project ``i``: "release", "yank", "delete", "new" or None."""
        if i >= self.count:
            return "new"
        roll = random.Random(self.seed * 104729 + i).random()
        if roll < 0.006:
            return "release"
        if roll < 0.008:
            return "yank"
        if roll < 0.009:
            return "delete"
        return None

    def indices(self) -> list[int]:
        """The project indices listed in the current state."""
        if self.state == 0:
            return list(range(self.count))
        listed = [i for i in range(self.count) if self.change(i) != "delete"]
        return listed + list(range(self.count, self.count + self.extra))

    def serial(self, i: int) -> int:
        if self.state == 1 and self.change(i) is not None:
            return STATE_SERIAL_STEP + i
        return 1 + i * 3

    def is_big(self, i: int) -> bool:
        return i % self.big_every == 0

    # -- pages and files -------------------------------------------------------------------

    def files(self, i: int) -> list[tuple[str, SynthFile]]:
        """``(version, file)`` of project ``i`` in the current state."""
        rng = random.Random(self.seed * 15485863 + i)
        big = self.is_big(i)
        versions = 1 + min(int(rng.paretovariate(1.2)) - 1, 9 if big else 150)
        binary = rng.random() < 0.1
        change = self.change(i) if self.state == 1 else None
        if change == "release":
            versions += 1
        name = self.name(i).replace("-", "_")
        out: list[tuple[str, SynthFile]] = []
        for v in range(versions):
            version = f"{1 + v // 10}.{v % 10}.0"
            year = 2015 + min(v // 12, 10)
            upload = f"{year}-{1 + v % 12:02d}-15T12:00:00.000000Z"
            names = [f"{name}-{version}.tar.gz"]
            if rng.random() < 0.7:
                names.append(f"{name}-{version}-py3-none-any.whl")
            if binary:
                for py in _PYTHONS[rng.randrange(3) :]:
                    for plat in _PLATFORMS[: rng.randrange(2, len(_PLATFORMS) + 1)]:
                        names.append(f"{name}-{version}-{py}-{py}-{plat}.whl")
            for filename in names:
                size = rng.randrange(50_000, 500_000) if big else rng.randrange(100, 300)
                offset = rng.randrange(0, len(_BLOCK) - size)
                out.append((version, SynthFile(filename, size, offset, False, upload)))
        if change == "yank" and out:
            version, first = out[0]
            out[0] = (version, SynthFile(first.filename, first.size, first.offset, True, first.upload))
        return out

    def listing(self) -> bytes:
        projects = [{"name": self.name(i), "_last-serial": self.serial(i)} for i in self.indices()]
        last = max(p["_last-serial"] for p in projects)
        meta = {"api-version": "1.1", "_last-serial": last}
        return json.dumps({"meta": meta, "projects": projects}).encode()

    def lookup(self, normalized: str) -> int | None:
        """The index of a listed project from its normalized name (``<word>-<word>-<i>``)."""
        tail = normalized.rsplit("-", 1)[-1]
        if not tail.isdigit():
            return None
        i = int(tail)
        listed = i < self.count + (self.extra if self.state == 1 else 0)
        if not listed or (self.state == 1 and self.change(i) == "delete") or self.name(i) != normalized:
            return None
        return i

    def page(self, i: int) -> bytes:
        name = self.name(i)
        files = []
        versions: list[str] = []
        for version, f in self.files(i):
            if not versions or versions[-1] != version:
                versions.append(version)
            files.append(
                {
                    "filename": f.filename,
                    "url": f"/files/{i}/{f.filename}",
                    "hashes": {"sha256": _sha256(f)},
                    "requires-python": ">=3.8",
                    "size": f.size,
                    "upload-time": f.upload,
                    "yanked": "broken" if f.yanked else False,
                }
            )
        meta = {"api-version": "1.1", "_last-serial": self.serial(i)}
        return json.dumps({"meta": meta, "name": name, "files": files, "versions": versions}).encode()

    def file(self, i: int, filename: str) -> bytes | None:
        for _, f in self.files(i):
            if f.filename == filename:
                return f.body()
        return None


@lru_cache(maxsize=200_000)
def _sha256(f: SynthFile) -> str:
    return hashlib.sha256(f.body()).hexdigest()
