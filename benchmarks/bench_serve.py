"""Benchmark the simple-index server: a 5,000-file project page, and ``pip download`` through it.

    .venv/bin/python -m benchmarks.bench_serve [--files 5000] [--rounds 20] [--starts 5]

(run it as a module: as a script, benchmarks/ comes first on sys.path, so a module there must not be named
after a package such as ``server``).

Prints the time to serve the project page (HTML and JSON, over loopback HTTP, target under 50 ms):
the median with the server's page cache off (every request queries the catalog and renders), the
first request of each format in freshly started servers (no cache can help it; median and worst
of ``--starts`` servers), and the median of repeats served from the page cache (pages per repository version); then ``pip download`` of one wheel through ``mirrorflow``'s server beside the same download
from a plain static file server (``python -m http.server`` over a PEP 503 tree), in the same run.
Uses a temporary SQLite catalog and directory store; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from mirrorflow.fixtureindex.builder import make_wheel
from mirrorflow.server.app import create_app
from mirrorflow.server.pages import JSON_V1
from mirrorflow.server.threaded import serve_in_thread
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.tasks.index_client import IndexClient, build_http_client


class _NoUpstreams:
    def remote(self, name: str | None) -> None:
        return None

    def fallback(self) -> IndexClient:
        return IndexClient("http://127.0.0.1:9/", client=build_http_client(timeout=1.0))


def _package(name: str, version: str, filename: str, sha256: str, size: int) -> NewPackage:
    return NewPackage(
        name=name, normalized_name=name, version=version, filename=filename, packagetype="bdist_wheel",
        python_version="py3", requires_python=">=3.8", sha256=sha256, size=size,
        upload_time=datetime(2024, 1, 1, tzinfo=UTC), yanked=False, yanked_reason=None,
        metadata_sha256=None, has_metadata=False, url=f"https://index.example/files/{filename}",
    )  # fmt: skip


def _populate(catalog: Catalog, store: FileSystemStore, files: int) -> tuple[str, bytes]:
    catalog.create_repository("bench")
    repo = catalog.get_repository("bench")
    writer = ContentWriter(catalog)
    packages = []
    for i in range(files):
        filename = f"bigproject-{i // 5}.{i % 5}-py3-none-any.whl"
        digest = hashlib.sha256(filename.encode()).hexdigest()
        packages.append(_package("bigproject", f"{i // 5}.{i % 5}", filename, digest, 1000 + i))
    wheel_name, wheel = make_wheel("mf-bench", "1.0")
    stored = store.put_chunks([wheel], sha256=hashlib.sha256(wheel).hexdigest(), size=len(wheel))
    packages.append(_package("mf-bench", "1.0", wheel_name, stored.sha256, stored.size))
    ids = writer.upsert_packages(packages)
    writer.record_artifacts([(stored.sha256, stored.size, stored.key)])
    writer.stage("bench-sync", repo.id, ids.values())
    writer.commit_version(repository="bench", sync_id="bench-sync", mirror=False)
    return wheel_name, wheel


_PAGE = "/bench/simple/bigproject/"
_FORMATS = (("HTML", "text/html"), ("JSON", JSON_V1))


def _get_ms(client: httpx.Client, path: str, accept: str) -> float:
    started = time.perf_counter()
    response = client.get(path, headers={"Accept": accept})
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def _median_ms(client: httpx.Client, path: str, accept: str, rounds: int) -> float:
    return statistics.median(_get_ms(client, path, accept) for _ in range(rounds))


def _uncached(app: Any, rounds: int) -> None:
    """Every request queries the catalog and renders: the server's page cache is off."""
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        for label, accept in _FORMATS:
            size = len(client.get(_PAGE, headers={"Accept": accept}).content)
            median = _median_ms(client, _PAGE, accept, rounds)
            print(f"  {label} ({size / 1024:.0f} KiB): uncached (query + render each time): median "
                  f"{median:.1f} ms (target < 50 ms: {_verdict(median)})")  # fmt: skip


def _first_requests(make_app: Callable[[], Any], starts: int) -> None:
    """The first request of each format in each of ``starts`` freshly started servers: no cache helps."""
    firsts: dict[str, list[float]] = {label: [] for label, _ in _FORMATS}
    for _ in range(starts):
        with serve_in_thread(make_app()) as base, httpx.Client(base_url=base, timeout=60) as client:
            for label, accept in _FORMATS:
                firsts[label].append(_get_ms(client, _PAGE, accept))
    for label, times in firsts.items():
        median = statistics.median(times)
        print(f"  {label}: FIRST request after server start, {starts} starts: median {median:.1f} ms, "
              f"max {max(times):.1f} ms (target < 50 ms: {_verdict(median)})")  # fmt: skip


def _verdict(ms: float) -> str:
    return "ok" if ms < 50 else "OVER TARGET"


def _pip_download(index: str, dest: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q"]
    command += ["--index-url", index, "-d", str(dest), "mf-bench"]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def _static_tree(root: Path, wheel_name: str, wheel: bytes) -> None:
    digest = hashlib.sha256(wheel).hexdigest()
    (root / "files").mkdir(parents=True)
    (root / "files" / wheel_name).write_bytes(wheel)
    page = root / "simple" / "mf-bench"
    page.mkdir(parents=True)
    link = f'<a href="../../files/{wheel_name}#sha256={digest}">{wheel_name}</a>'
    (page / "index.html").write_text(f"<!DOCTYPE html><html><body>{link}</body></html>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--starts", type=int, default=5, help="fresh servers to time a first request on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        catalog = Catalog.from_url(f"sqlite:///{root / 'catalog.db'}")
        store = FileSystemStore(root / "artifacts")
        wheel_name, wheel = _populate(catalog, store, args.files)
        print(f"project page of {args.files} files, over loopback HTTP:")
        _uncached(
            create_app(catalog, store, _NoUpstreams(), page_cache_bytes=0, state_interval=0.0), args.rounds
        )
        _first_requests(lambda: create_app(catalog, store, _NoUpstreams()), args.starts)
        app = create_app(catalog, store, _NoUpstreams())
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
            for label, accept in _FORMATS:
                median = _median_ms(client, _PAGE, accept, args.rounds)
                print(f"  {label}: repeated, from the page cache: median {median:.1f} ms")
            ours = _pip_download(f"{base}/bench/simple/", root / "dl-ours")
        _static_tree(root / "static", wheel_name, wheel)
        static = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(root / "static")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert static.stdout is not None
            line = static.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
            port = int(line.split(" port ")[1].split()[0])
            plain = _pip_download(f"http://127.0.0.1:{port}/simple/", root / "dl-static")
        finally:
            static.terminate()
            static.wait()
        print(f"pip download of one wheel: mirrorflow serve {ours:.2f} s, static http.server {plain:.2f} s")
        catalog.dispose()


if __name__ == "__main__":
    main()
