"""Benchmark the simple-index server: a 5,000-file project page, and ``pip download`` through it.

    .venv/bin/python -m benchmarks.bench_serve [--files 5000] [--rounds 20]

(run it as a module: as a script, benchmarks/ would come first on sys.path and a module there named
``server`` would shadow the ``server`` package).

Prints the median time to serve the project page (HTML and JSON, over loopback HTTP, target under
50 ms), then ``pip download`` of one wheel through ``mirrorflow``'s server beside the same download
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
from datetime import UTC, datetime
from pathlib import Path

import httpx

from fixtureindex.builder import make_wheel
from server.app import create_app
from server.pages import JSON_V1
from server.threaded import serve_in_thread
from storage.catalog import Catalog
from storage.content import ContentWriter, NewPackage
from storage.filesystem_store import FileSystemStore
from tasks.index_client import IndexClient, build_http_client


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


def _median_ms(client: httpx.Client, path: str, accept: str, rounds: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, headers={"Accept": accept})
        times.append((time.perf_counter() - started) * 1000)
        size = len(response.content)
        response.raise_for_status()
    return statistics.median(times), size


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        catalog = Catalog.from_url(f"sqlite:///{root / 'catalog.db'}")
        store = FileSystemStore(root / "artifacts")
        wheel_name, wheel = _populate(catalog, store, args.files)
        app = create_app(catalog, store, _NoUpstreams())
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
            for label, accept in (("HTML", "text/html"), ("JSON", JSON_V1)):
                started = time.perf_counter()
                client.get("/bench/simple/bigproject/", headers={"Accept": accept}).raise_for_status()
                cold = (time.perf_counter() - started) * 1000
                print(
                    f"project page, {args.files} files, {label}, first request (query + render): {cold:.1f} ms"
                )
            for label, accept in (("HTML", "text/html"), ("JSON", JSON_V1)):
                median, size = _median_ms(client, "/bench/simple/bigproject/", accept, args.rounds)
                verdict = "ok" if median < 50 else "OVER TARGET"
                print(f"project page, {args.files} files, {label}, repeated (page cache): median {median:.1f} ms "
                      f"({size / 1024:.0f} KiB; target < 50 ms: {verdict})")  # fmt: skip
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
