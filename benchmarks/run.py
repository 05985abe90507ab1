"""The scale benchmark: ``python -m benchmarks.run --projects 20000``
(``--memory-scaling``: the same steps at 20,000 and 40,000 projects, peak RSS compared).

Serves a ``benchmarks.synthetic`` index from a separate process on loopback and prints, in one run:

1. the raw ceiling: a plain async httpx client fetching the listing and every project page at the
   sync's concurrency (pages/s), just before the on_demand sync and again just after it;
2. a whole-index on_demand sync (mirror mode): projects/s, as a ratio of the raw page rate, and the
   process's peak RSS;
3. a no-change resync (serials unchanged: no page is fetched);
4. an incremental resync after the index moves to its later state (~1% of projects touched);
5. immediate-policy syncs of the "big" projects (one in 200, about 200 MB) into the directory
   store, each paired with the raw client fetching the same pages and files just before it: MB/s,
   each ratio and the median;
6. the same with five times the bytes (one project in 40 big, about 1 GB, from a second server),
   where Prefect's fixed cost per flow run weighs five times less.

The catalog is SQLite in a temporary home (``--database-url`` for PostgreSQL). Prefect runs on its
temporary test server, started once. Figures go to stdout; nothing is timed inside tests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.synthetic import SyntheticIndex

__all__ = ["main"]

ACCEPT = "application/vnd.pypi.simple.v1+json"
#: Not "benchmarks.server": run as a script, a module of that name would shadow the ``server`` package.
_SERVER_MODULE = "benchmarks.synthetic_server"
#: The larger immediate step serves one project in this many as "big" (the index's default is 200).
LARGE_BIG_EVERY = 40


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _fetch_all(urls: list[str], concurrency: int, *, accept: str | None) -> int:
    """GET every URL with ``concurrency`` workers over one pooled AsyncClient; return the bytes read."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    total = 0
    headers = {"Accept": accept} if accept else {}
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        pending = iter(urls)

        async def worker() -> None:
            nonlocal total
            for url in pending:
                async with client.stream("GET", url, headers=headers) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total


def _raw(urls: list[str], concurrency: int, accept: str | None = None) -> tuple[float, int]:
    started, cpu = time.perf_counter(), _cpu_s()
    size = asyncio.run(_fetch_all(urls, concurrency, accept=accept))
    seconds, cpu = time.perf_counter() - started, _cpu_s() - cpu
    _line("  (raw client's CPU)", f"{cpu:.1f} s, {cpu * 1000 / len(urls):.2f} ms per URL")
    return seconds, size


def _raw_pages(page_urls: list[str], concurrency: int, when: str) -> float:
    """Fetch the listing and every page with the raw client; print and return the pages per second."""
    seconds, size = _raw(page_urls, concurrency, ACCEPT)
    rate = (len(page_urls) - 1) / seconds
    _line(
        f"raw: listing + project pages ({when})", f"{seconds:.1f} s, {rate:.0f} pages/s, {size / 1e6:.0f} MB"
    )
    return rate


class _Server:
    def __init__(self, projects: int, seed: int, big_every: int = 200) -> None:
        command = [sys.executable, "-m", _SERVER_MODULE, "--projects", str(projects), "--seed", str(seed)]
        self.process = subprocess.Popen(
            [*command, "--big-every", str(big_every)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline().split()[1])
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/simple/"

    def set_state(self, state: int) -> None:
        httpx.get(f"{self.base}/_state/{state}").raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _cpu_s() -> float:
    """CPU seconds this process used so far, every thread (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sync(repository: str, remote: str, *, mirror: bool) -> tuple[float, float, dict[str, Any]]:
    """Run one sync; return its wall seconds, this process's CPU seconds during it, and its result."""
    from mirrorflow.flows.settings import Settings
    from mirrorflow.flows.sync_repository import run_sync

    started, cpu = time.perf_counter(), _cpu_s()
    result = run_sync(repository, remote, mirror=mirror, settings=Settings())
    return time.perf_counter() - started, _cpu_s() - cpu, result


def _line(label: str, value: str) -> None:
    print(f"{label:<44} {value}", flush=True)


def run(
    projects: int,
    seed: int,
    concurrency: int,
    database_url: str | None,
    skip_raw: bool,
    immediate_runs: int = 3,
) -> None:
    from mirrorflow.flows.allocator import tune_allocator

    tune_allocator()  # as the CLI and the served deployments do at start (flows.allocator)
    home = Path(tempfile.mkdtemp(prefix="mirrorflow-bench-"))
    os.environ["MIRRORFLOW_HOME"] = str(home)
    if database_url:
        os.environ["MIRRORFLOW_DATABASE_URL"] = database_url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    index = SyntheticIndex(projects, seed=seed)
    server = _Server(projects, seed)
    print(f"synthetic index: {projects} projects, seed {seed}, concurrency {concurrency}, home {home}")
    try:
        from prefect.testing.utilities import prefect_test_harness

        from mirrorflow.flows.runtime import catalog_for
        from mirrorflow.flows.settings import Settings

        with prefect_test_harness(server_startup_timeout=240):
            _bench(
                index,
                server,
                concurrency,
                skip_raw,
                catalog_for(Settings()),
                database_url=database_url,
                immediate_runs=immediate_runs,
            )
    finally:
        server.stop()


def _bench(
    index: SyntheticIndex,
    server: _Server,
    concurrency: int,
    skip_raw: bool,
    catalog: Any,
    *,
    database_url: str | None,
    immediate_runs: int,
) -> None:
    catalog.create_remote("synthetic", url=server.url, policy="on_demand", download_concurrency=concurrency)
    catalog.create_repository("all", remote="synthetic")
    names = [index.name(i) for i in index.indices()]
    page_urls = [server.url] + [f"{server.url}{name}/" for name in names]
    raw_rate = 0.0
    if not skip_raw:
        raw_rate = _raw_pages(page_urls, concurrency, "before")
    rss_before = _rss_mb()
    seconds, cpu, result = _sync("all", "synthetic", mirror=True)
    rate = len(names) / seconds
    ratio = ""
    if not skip_raw:
        # The machine's speed drifts during a long step: the ceiling is the mean of a raw run
        # just before the sync and one just after it.
        after = _raw_pages(page_urls, concurrency, "after")
        raw_rate = (raw_rate + after) / 2
        ratio = f" = {rate / raw_rate:.0%} of raw (mean of before and after, {raw_rate:.0f} pages/s)"
    _line("on_demand whole-index sync (mirror)", f"{seconds:.1f} s, {rate:.0f} projects/s{ratio}")
    _line("  CPU of this process", f"{cpu:.1f} s, {cpu * 1000 / len(names):.2f} ms per project")
    _line("  in-flow", f"{result.report.get('duration_s')} s")
    _line("  version / files kept", f"{result.version} / {result.report['files_kept']}")
    _line(
        "  peak RSS (process, so far)", f"{_peak_rss_mb():.0f} MB (RSS before the sync {rss_before:.0f} MB)"
    )
    seconds, _cpu, result = _sync("all", "synthetic", mirror=True)
    in_flow = result.report.get("duration_s")
    _line("no-change resync", f"{seconds:.2f} s (in-flow {in_flow} s), version {result.version}")
    server.set_state(1)
    index.state = 1
    seconds, _cpu, result = _sync("all", "synthetic", mirror=True)
    report = result.report
    touched = report["projects"] + report.get("incremental", {}).get("gone", 0)
    _line(
        "incremental resync (later state)",
        f"{seconds:.2f} s (in-flow {report.get('duration_s')} s), {touched} projects touched, "
        f"version {result.version}",
    )
    runs = 1 if database_url else immediate_runs
    _immediate(index, server, concurrency, skip_raw, runs=runs, label="big", fresh_first=False)
    # The same step with five times the bytes: Prefect's fixed cost per flow run (about a second,
    # see benchmarks/README.md) weighs five times less in the figure. Another seed, so that no file
    # is one the first step stored (a PostgreSQL catalog is shared by both steps' stores).
    large_index = SyntheticIndex(index.count, seed=index.seed + 1, big_every=LARGE_BIG_EVERY)
    large_server = _Server(index.count, index.seed + 1, big_every=LARGE_BIG_EVERY)
    try:
        _immediate(large_index, large_server, concurrency, skip_raw, runs=runs, label="large")
    finally:
        large_server.stop()
    _line("peak RSS (process, whole run)", f"{_peak_rss_mb():.0f} MB")


def _immediate(
    index: SyntheticIndex,
    server: _Server,
    concurrency: int,
    skip_raw: bool,
    *,
    runs: int,
    label: str,
    fresh_first: bool = True,
) -> None:
    """Immediate syncs of the big projects, each paired with the raw client fetching the same pages
    and files just before it; prints every pair and the median ratio.

    On a shared 2-core machine the speed of both sides drifts by tens of percent within a minute:
    a ratio of two runs made seconds apart, and the median of a few such ratios, says more than
    one pair. Each sync goes into a fresh home (SQLite catalog and directory store), removed
    after it, so that it downloads everything (the first may use the benchmark's own home:
    ``fresh_first``); with ``--database-url`` there is one run per step, into that database.
    """
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings

    big = [i for i in index.indices() if index.is_big(i)]
    names = [index.name(i) for i in big]
    page_urls = [f"{server.url}{name}/" for name in names]
    file_urls = [f"{server.base}/files/{i}/{f.filename}" for i in big for _, f in index.files(i)]
    ratios: list[float] = []
    flow_ratios: list[float] = []
    for run in range(1, runs + 1):
        raw_mbps = 0.0
        home = None
        if not skip_raw:
            page_seconds, _ = _raw(page_urls, concurrency, ACCEPT)
            file_seconds, size = _raw(file_urls, concurrency)
            seconds = page_seconds + file_seconds
            raw_mbps = size / 1e6 / seconds
            _line(
                f"raw: {label} projects' pages + files ({run}/{runs})",
                f"{seconds:.1f} s, {len(page_urls)} pages, {len(file_urls)} files, {raw_mbps:.0f} MB/s",
            )
        main_home = os.environ["MIRRORFLOW_HOME"]
        if run > 1 or fresh_first:
            home = tempfile.mkdtemp(prefix="mirrorflow-bench-immediate-")
            os.environ["MIRRORFLOW_HOME"] = home
        try:
            catalog = catalog_for(Settings())
            catalog.create_remote(
                f"synthetic-{label}",
                url=server.url,
                policy="immediate",
                download_concurrency=concurrency,
                includes=names,
            )
            catalog.create_repository(label, remote=f"synthetic-{label}")
            seconds, cpu, result = _sync(label, f"synthetic-{label}", mirror=False)
        finally:
            os.environ["MIRRORFLOW_HOME"] = main_home
            if home is not None:
                shutil.rmtree(home, ignore_errors=True)
        size = result.report["downloaded_bytes"]
        mbps = size / 1e6 / seconds
        in_flow = result.report.get("duration_s") or seconds
        flow_mbps = size / 1e6 / in_flow
        ratio = flow_ratio = ""
        if raw_mbps:
            ratios.append(mbps / raw_mbps)
            flow_ratios.append(flow_mbps / raw_mbps)
            ratio, flow_ratio = f" = {ratios[-1]:.0%} of raw", f" = {flow_ratios[-1]:.0%} of raw"
        _line(
            f"immediate sync of the {label} projects ({run}/{runs})",
            f"{seconds:.1f} s, {size / 1e6:.0f} MB, {mbps:.0f} MB/s{ratio}",
        )
        _line(
            "  in-flow (without Prefect's run overhead)", f"{in_flow:.1f} s, {flow_mbps:.0f} MB/s{flow_ratio}"
        )
        _line("  CPU of this process", f"{cpu:.1f} s, {cpu / (size / 1e6) * 1000:.1f} ms per MB")
    if ratios:
        _line(
            f"immediate / raw, {label} projects, median",
            f"{statistics.median(ratios):.0%} (in-flow {statistics.median(flow_ratios):.0%}); "
            f"each: {', '.join(f'{r:.0%}' for r in ratios)}",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="mirrorflow scale benchmark")
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw httpx ceilings")
    parser.add_argument(
        "--immediate-runs",
        type=int,
        default=3,
        help="immediate syncs, each paired with a raw run (default 3; 1 with --database-url)",
    )
    parser.add_argument(
        "--memory-scaling",
        action="store_true",
        help="run the benchmark (without the raw ceilings) at --projects and twice as many, each in "
        "its own process, and compare their peak RSS",
    )
    args = parser.parse_args()
    if args.memory_scaling:
        memory_scaling(args.projects, args.seed, args.concurrency, args.database_url)
    else:
        run(args.projects, args.seed, args.concurrency, args.database_url, args.skip_raw, args.immediate_runs)


def memory_scaling(projects: int, seed: int, concurrency: int, database_url: str | None) -> None:
    """Peak RSS at ``projects`` and ``2 * projects``, each a fresh process running the same steps."""
    peaks = []
    for count in (projects, 2 * projects):
        command = [sys.executable, "-m", "benchmarks.run", "--projects", str(count), "--skip-raw"]
        command += ["--immediate-runs", "1"]
        command += ["--seed", str(seed), "--concurrency", str(concurrency)]
        if database_url:
            command += ["--database-url", database_url]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        print(output, end="", flush=True)
        line = next(line for line in output.splitlines() if line.startswith("peak RSS (process, whole run)"))
        peaks.append(float(line.split()[-2]))
    _line(
        f"peak RSS, {projects} -> {2 * projects} projects",
        f"{peaks[0]:.0f} MB -> {peaks[1]:.0f} MB ({peaks[1] / peaks[0] - 1:+.1%})",
    )


if __name__ == "__main__":
    main()
