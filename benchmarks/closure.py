"""The dependency closure's engine at scale: rounds to the fixed point over a synthetic graph (issue 19).

    python -m benchmarks.closure                       # 20,000 projects, 5 releases, 4 requirements each
    python -m benchmarks.closure --projects 40000      # memory grows with the graph, not the pages

A deterministic graph from a seed: each project has ``--releases`` releases, each release
``--requires`` requirements on other projects (ranges such as ``>=2``; one in four behind a
``sys_platform == "win32"`` marker, one in eight behind an extra nobody asks for), the first
``--roots`` projects are the explicit includes. The flow's rounds are replayed in-process without
I/O (what ``dependencies-batch`` returns is built from the graph), so the figures are the engine's:
rounds, wall and CPU time, CPU per release evaluated, and the peak of Python allocations (``tracemalloc``).
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from datetime import date

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from mirrorflow.tasks.closure import Closure, ProjectDependencies, ReleaseDependencies
from mirrorflow.tasks.filter_spec import FilterSpec

__all__ = ["main"]


def _graph(projects: int, releases: int, requires: int, seed: int) -> dict[str, list[tuple[str, ...]]]:
    rng = random.Random(seed)
    graph = {}
    for index in range(projects):
        lines = []
        for _ in range(releases):
            reqs = []
            for _ in range(requires):
                target = f"p{rng.randrange(projects)}"
                marker = rng.random()
                suffix = (
                    '; sys_platform == "win32"'
                    if marker < 0.25
                    else '; extra == "x"'
                    if marker < 0.375
                    else ""
                )
                reqs.append(f"{target}>={rng.randrange(1, releases + 1)}{suffix}")
            lines.append(tuple(reqs))
        graph[f"p{index}"] = lines
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=20000)
    parser.add_argument("--releases", type=int, default=5)
    parser.add_argument("--requires", type=int, default=4)
    parser.add_argument("--roots", type=int, default=20)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    graph = _graph(args.projects, args.releases, args.requires, args.seed)
    spec = FilterSpec.build(
        includes=[f"p{i}" for i in range(args.roots)], python_versions=["3.12"], exclude_platforms=["windows"]
    )
    tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    closure = Closure.start(spec, today=date(2026, 12, 3))
    evaluated = 0
    while names := closure.start_round():
        by_name: dict[str, list[Requirement]] = {}
        for requirement in closure.spec().includes:
            by_name.setdefault(requirement.name, []).append(requirement)
        for name in names:
            includes = by_name.get(name, [])
            releases = tuple(
                ReleaseDependencies(Version(str(v + 1)), f"{name}-{v + 1}.whl", requires, "cache")
                for v, requires in enumerate(graph[name])
                if any(r.specifier.contains(str(v + 1), prereleases=True) for r in includes)
            )
            evaluated += len(releases)
            closure.record(ProjectDependencies(NormalizedName(name), found=True, releases=releases))
    report = closure.report()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    print(
        f"{args.projects} projects x {args.releases} releases x {args.requires} requirements, {args.roots} roots: "
        f"{len(report.added)} added in {report.rounds} rounds, {evaluated} releases evaluated, "
        f"{len(closure.implicit_includes())} implicit includes; {elapsed:.1f} s wall, {cpu:.1f} s CPU "
        f"({1e6 * cpu / max(evaluated, 1):.0f} us CPU per release); peak allocations {peak / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
