"""``mirrorflow serve`` beside a static file server serving the same bytes at the same paths.

    .venv/bin/python -m benchmarks.serve_vs_static [--projects 20] [--seconds 5] [--connections 20]
        [--before-python /path/to/other/.venv/bin/python]

One run, side by side, on one machine:

1. cached project pages per second and server CPU per page, with ``wrk`` when installed (else a
   keep-alive load generator in threads of this process), for each server;
2. a project page of ``--big`` (5,000) files: the first request (mirrorflow renders it; nginx reads
   it from disk) and the repeat request (median of 50), each with pip's Accept header;
3. ``pip download --no-deps --only-binary :all:`` of ``--projects`` projects, through each server
   (median of ``--pip-rounds``), and the server's CPU per download (pip's own time dominates the
   wall clock: it starts a Python and resolves; the server's CPU is the part the server controls).

Then the ratios of mirrorflow serve to nginx side by side, with the issue's targets: pip download
through serve at most 1.3x nginx's time, a cached page at most 0.2 ms of server CPU.

The servers: ``mirrorflow serve`` (this checkout, the real CLI in its own process); optionally the
same command from another checkout (``--before-python``: a Python whose ``mirrorflow`` is the code
to compare with, e.g. main's venv; it reads the same catalog); ``mirrorflow serve`` with its page
cache off; and the static baselines: nginx when installed, and Python's ``http.server``. The static
tree is the version published by ``mirrorflow repository publish`` (``mirrorflow.server.publish``)
at ``/bench/``, so every server answers the same URLs; nginx runs with the publication's own
``nginx.conf`` (its ``listen``, ``root`` and locations moved under ``/bench/``), so it serves the
JSON pages to pip as mirrorflow does; ``http.server`` serves ``index.html`` (HTML) only. Server CPU
is read from ``/proc/<pid>/stat`` (user + system) around each load run. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path

import httpx

from mirrorflow.fixtureindex.builder import make_wheel
from mirrorflow.server.publish import publish
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.serving import ServingCatalog

# What pip sends (PEP 691): JSON preferred, HTML accepted.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
_TICKS = os.sysconf("SC_CLK_TCK")


BIG = "mf-bench-big"


def _package(name: str, version: str, filename: str, sha256: str, size: int) -> NewPackage:
    wheel = filename.endswith(".whl")
    return NewPackage(
        name=name, normalized_name=name, version=version, filename=filename,
        packagetype="bdist_wheel" if wheel else "sdist", python_version="py3" if wheel else "source",
        requires_python=">=3.8", sha256=sha256, size=size, upload_time=datetime(2024, 1, 1, tzinfo=UTC),
        yanked=False, yanked_reason=None, metadata_sha256=None, has_metadata=False,
        url=f"https://index.example/files/{filename}",
    )  # fmt: skip


def _populate(home: Path, projects: int, big: int, root: Path) -> list[str]:
    """Repository ``bench`` at version 1: one stored wheel per project, and project ``BIG`` of ``big``
    stored sdists; published under ``root/bench``. Returns the names of the one-wheel projects."""
    home.mkdir(parents=True)
    catalog = Catalog.from_url(f"sqlite:///{home / 'catalog.db'}")
    store = FileSystemStore(home / "artifacts")
    catalog.create_repository("bench")
    writer = ContentWriter(catalog)
    names, packages, stored = [], [], []
    files = [(f"mf-bench-{i:02d}", *make_wheel(f"mf-bench-{i:02d}", "1.0")) for i in range(projects)]
    files += [(BIG, f"mf_bench_big-{i}.0.tar.gz", f"sdist {i}".encode()) for i in range(big)]
    for name, filename, body in files:
        artifact = store.put_chunks([body], sha256=hashlib.sha256(body).hexdigest(), size=len(body))
        if name != BIG:
            names.append(name)
        stored.append((artifact.sha256, artifact.size, artifact.key))
        version = "1.0" if name != BIG else filename.split("-")[1].removesuffix(".tar.gz")
        packages.append(_package(name, version, filename, artifact.sha256, artifact.size))
    ids = writer.upsert_packages(packages)
    writer.record_artifacts(stored)
    writer.stage("bench", catalog.get_repository("bench").id, ids.values())
    writer.commit_version(repository="bench", sync_id="bench", mirror=False)
    root.mkdir()
    publish(ServingCatalog(catalog), store, "bench", None, root / "bench")
    catalog.dispose()
    return names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url}")


@contextmanager
def _process(command: list[str], url: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """Run a server until the block ends; yields its pid."""
    # cwd: "-c" puts the working directory first on sys.path; the Python's own install must win.
    cwd = tempfile.gettempdir()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            try:
                _wait_for(url, process)
            except RuntimeError as exc:
                errors.seek(0)
                raise RuntimeError(f"{exc}: {errors.read()[-2000:].decode(errors='replace')}") from None
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _mirrorflow(python: str, home: Path, port: int, *, cache: bool) -> contextmanager[int]:  # type: ignore[valid-type]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIRRORFLOW_", "PIP_"))}
    env["MIRRORFLOW_HOME"] = str(home)
    if cache:
        command = [
            python,
            "-c",
            "from mirrorflow.flows.console import main; main()",
            "serve",
            "--port",
            str(port),
        ]
    else:  # the same app with its page cache off and the state read on every request
        code = (
            "import uvicorn; from mirrorflow.flows.cli_serve import CatalogUpstreams;"
            "from mirrorflow.flows.runtime import catalog_for, store_for; from mirrorflow.flows.settings import Settings;"
            "from mirrorflow.server.app import WORKER_THREADS, create_app; s = Settings();"
            "c = catalog_for(s, pool_size=WORKER_THREADS);"
            "app = create_app(c, store_for(s), CatalogUpstreams(c, max_page_bytes=s.max_page_bytes),"
            " page_cache_bytes=0, state_interval=0.0);"
            f"uvicorn.run(app, host='127.0.0.1', port={port}, access_log=False, log_level='warning')"
        )
        command = [python, "-c", code]
    return _process(command, f"http://127.0.0.1:{port}/bench/simple/", env)


def _nginx(root: Path, port: int, work: Path) -> contextmanager[int]:  # type: ignore[valid-type]
    """nginx in one process (no master) with the publication's ``nginx.conf``, the tree at ``/bench/``."""
    work.mkdir(exist_ok=True)
    published = (root / "bench" / "nginx.conf").read_text()
    server = (
        published.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        .replace(f"root {root / 'bench'};", f"root {root};")
        .replace("location /simple/", "location /bench/simple/")
        .replace("location /files/", "location /bench/files/")
    )
    if server.count("/bench/") != 2 or f"root {root};" not in server:
        raise RuntimeError(f"the published nginx configuration changed shape; rewritten: {server!r}")
    (work / "server.conf").write_text(server)
    config = work / "nginx.conf"
    config.write_text(
        f"daemon off; master_process off; worker_processes 1; user root; pid {work}/nginx.pid;\n"
        f"error_log {work}/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http { access_log off; sendfile on; keepalive_requests 100000;\n"
        f"  include {work / 'server.conf'}; }}\n"
    )
    return _process(["nginx", "-c", str(config), "-p", str(work)], f"http://127.0.0.1:{port}/bench/simple/")


def _http_server(root: Path, port: int) -> contextmanager[int]:  # type: ignore[valid-type]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root)]
    return _process(command, f"http://127.0.0.1:{port}/bench/simple/")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _load(url: str, seconds: float, connections: int) -> int:
    """Requests completed in ``seconds`` with ``connections`` keep-alive clients (wrk when installed)."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        threads = min(2, connections)
        out = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-H", f"Accept: {PIP_ACCEPT}", url],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        summary = next(line for line in out.splitlines() if "requests in" in line)
        if "Non-2xx" in out:
            raise RuntimeError(f"{url}: {out}")
        for line in out.splitlines():
            if "Socket errors" in line:  # timeouts under load: counted, not fatal
                print(f"  (wrk, {url}: {line.strip()})")
        return int(summary.split()[0])
    return _threaded_load(url, seconds, connections)


def _threaded_load(url: str, seconds: float, connections: int) -> int:
    parsed = httpx.URL(url)
    done = [0] * connections
    deadline = time.monotonic() + seconds

    def client(slot: int) -> None:
        conn = HTTPConnection(parsed.host, parsed.port)
        while time.monotonic() < deadline:
            conn.request("GET", parsed.raw_path.decode(), headers={"Accept": PIP_ACCEPT})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: {response.status}")
            if response.getheader("connection", "").lower() == "close" or response.version == 10:
                conn.close()
                conn = HTTPConnection(parsed.host, parsed.port)
            done[slot] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def _big_page(url: str, pid: int, repeats: int = 50) -> tuple[float, float, float]:
    """(first request ms, median repeat ms, server CPU ms per repeat) for one page, with pip's Accept."""
    with httpx.Client(headers={"Accept": PIP_ACCEPT}, timeout=60) as client:

        def timed() -> float:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed

        first = timed()
        cpu = _cpu_seconds(pid)
        repeat = statistics.median(timed() for _ in range(repeats))
        return first, repeat, (_cpu_seconds(pid) - cpu) * 1000 / repeats


def _pip_download(index: str, names: list[str], dest: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    shutil.rmtree(dest, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--no-cache-dir",
    ]
    command += ["-q", "--index-url", index, "-d", str(dest), *names]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if len(list(dest.iterdir())) != len(names):
        raise RuntimeError(f"pip downloaded {len(list(dest.iterdir()))} of {len(names)} wheels")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--big", type=int, default=5000, help="files of the one big project page")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--pip-rounds", type=int, default=3)
    parser.add_argument("--before-python", help="a Python whose mirrorflow is the code to compare with")
    parser.add_argument("--only", help="run only the servers whose label contains this text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-static-") as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "static"
        names = _populate(home, args.projects, args.big, root)
        servers: list[tuple[str, object]] = [
            ("mirrorflow serve", lambda port: _mirrorflow(sys.executable, home, port, cache=True)),
            ("mirrorflow serve, no page cache", lambda port: _mirrorflow(sys.executable, home, port, cache=False)),
        ]  # fmt: skip
        if args.before_python:
            # A copy of the home: the other checkout may migrate its catalog to a schema this one lacks.
            before = shutil.copytree(home, Path(tmp) / "home-before")
            servers.insert(1, ("mirrorflow serve (before)", lambda p: _mirrorflow(args.before_python, before, p, cache=True)))  # fmt: skip
        if shutil.which("nginx"):
            servers.append(("nginx (static files)", lambda port: _nginx(root, port, Path(tmp) / "nginx")))
        servers.append(("python http.server (static)", lambda port: _http_server(root, port)))
        if args.only:
            servers = [server for server in servers if args.only in server[0]]
        tool = "wrk" if shutil.which("wrk") else "threads in this process (no wrk installed)"
        print(f"{args.projects} projects, one wheel each; load: {tool}, {args.connections} connections, "
              f"{args.seconds:g} s per run; page: /bench/simple/{names[0]}/ with pip's Accept header")  # fmt: skip
        with ExitStack() as running:
            started = []  # (label, base URL, pid); mirrorflow serve first: the ratios are its
            for label, start in servers:
                port = _free_port()
                pid = running.enter_context(start(port))  # type: ignore[operator]
                started.append((label, f"http://127.0.0.1:{port}", pid))
            bigs = {}  # first: before any other request could have warmed the big page
            for label, base, pid in started:
                bigs[label] = _big_page(f"{base}/bench/simple/{BIG}/", pid)
            rates, cpus = {}, {}
            for label, base, pid in started:  # one at a time; the others idle
                page = f"{base}/bench/simple/{names[0]}/"
                _load(page, 1.0, args.connections)  # warm: caches, connections, first-use imports
                cpu = _cpu_seconds(pid)
                requests = _load(page, args.seconds, args.connections)
                rates[label], cpus[label] = (
                    requests / args.seconds,
                    (_cpu_seconds(pid) - cpu) * 1000 / requests,
                )
            pips: dict[str, list[float]] = {label: [] for label, _, _ in started}
            pip_cpu = dict.fromkeys(pips, 0.0)
            for _ in range(args.pip_rounds):  # rounds interleaved: the machine's load drifts alike for all
                for label, base, pid in started:
                    cpu = _cpu_seconds(pid)
                    pips[label].append(_pip_download(f"{base}/bench/simple/", names, Path(tmp) / "dl"))
                    pip_cpu[label] += (_cpu_seconds(pid) - cpu) / args.pip_rounds
        _report(started, rates, cpus, bigs, pips, pip_cpu, args.big)


def _report(
    started: list[tuple[str, str, int]],
    rates: dict[str, float],
    cpus: dict[str, float],
    bigs: dict[str, tuple[float, float, float]],
    pips: dict[str, list[float]],
    pip_cpu: dict[str, float],
    big: int,
) -> None:
    """One table, a row per server; then mirrorflow serve's ratios to the static baseline, targets."""
    print(f"{'server':32} {'pages/s':>8} {'CPU ms/page':>11} {f'{big:,}-file page: first':>23} "
          f"{'repeat':>7} {'CPU ms':>7} {'pip download':>12} {'server CPU':>10}  pip rounds (s)")  # fmt: skip
    for label, _, _ in started:
        first, repeat, big_cpu = bigs[label]
        rounds = " ".join(f"{t:.2f}" for t in pips[label])
        print(f"{label:32} {rates[label]:8,.0f} {cpus[label]:11.3f} {first:20.1f} ms {repeat:4.1f} ms "
              f"{big_cpu:7.2f} {statistics.median(pips[label]):10.2f} s {pip_cpu[label] * 1000:7.0f} ms  "
              f"{rounds}")  # fmt: skip
    ours = started[0][0]
    static = next((label for label, _, _ in started if label.startswith("nginx")), started[-1][0])
    pip_ratio = statistics.median(pips[ours]) / statistics.median(pips[static])
    print(f"{ours} / {static}: pages/s x{rates[ours] / rates[static]:.2f}, "
          f"CPU per page x{cpus[ours] / cpus[static]:.1f}, "
          f"{big:,}-file page first x{bigs[ours][0] / bigs[static][0]:.1f} and repeat "
          f"x{bigs[ours][1] / bigs[static][1]:.1f}, pip download time x{pip_ratio:.2f}, "
          f"server CPU per pip download x{pip_cpu[ours] / max(pip_cpu[static], 1e-3):.1f}")  # fmt: skip
    print(f"targets: pip download at most 1.3x {static}: x{pip_ratio:.2f} "
          f"({'met' if pip_ratio <= 1.3 else 'NOT met'}); a cached page at most 0.2 ms of server CPU: "
          f"{cpus[ours]:.3f} ms ({'met' if cpus[ours] <= 0.2 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
