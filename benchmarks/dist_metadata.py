"""A big wheel's dependencies: HTTP range requests against the whole download, on loopback (issue 19).

    python -m benchmarks.dist_metadata                 # a 100 MB wheel, 5 reads each way
    python -m benchmarks.dist_metadata --mb 20 --files 2000 --repeat 3

Builds one wheel of ``--files`` small members plus incompressible filler up to ``--mb`` megabytes,
serves it from the fixture index twice (one server answers ``Range`` with 206, the other ignores it
and answers 200, as a plain static server does), and reads its ``Requires-Dist`` with
``mirrorflow.tasks.dist_metadata.DependencyReader`` (no ``.metadata`` URL given, no cache) each way.
Prints, side by side, the requests, the bytes received and the median time of a read.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, build_index, metadata_text
from mirrorflow.fixtureindex.server import serve_index
from mirrorflow.tasks.dist_metadata import DependencyReader
from mirrorflow.tasks.index_client import build_http_client

__all__ = ["main"]

REQUIRES = [f"dependency-{n}>={n}.0; python_version >= '3.9'" for n in range(30)]


def big_wheel(megabytes: int, members: int) -> tuple[str, bytes]:
    """A wheel of ``members`` small modules and ``megabytes`` of stored random filler."""
    name, version = "bigwheel", "1.0"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n in range(members):
            archive.writestr(f"{name}/module_{n}.py", f"VALUE = {n}\n" * 20)
        chunk = 8 * 1024 * 1024
        with archive.open(f"{name}/data.bin", "w", force_zip64=True) as blob:
            left = megabytes * 1024 * 1024
            while left > 0:
                blob.write(os.urandom(min(chunk, left)))
                left -= chunk
        dist_info = f"{name}-{version}.dist-info"
        archive.writestr(f"{dist_info}/METADATA", metadata_text(name, version, requires_dist=REQUIRES))
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr(f"{dist_info}/RECORD", "")
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="filler megabytes in the wheel")
    parser.add_argument("--files", type=int, default=500, help="small members (the central directory grows)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    filename, content = big_wheel(args.mb, args.files)
    digest = hashlib.sha256(content).hexdigest()
    with tempfile.TemporaryDirectory(prefix="mirrorflow-bench-") as tmp:
        root = Path(tmp) / "index"
        build_index([FixtureProject("bigwheel", [FixtureFile(filename, content)])], root)
        with (
            serve_index(root, ranges=True) as ranged,
            serve_index(root, ranges=False) as plain,
            build_http_client(concurrency=2, timeout=120.0) as client,
        ):
            print(f"wheel: {filename}, {len(content) / 1e6:.1f} MB, {args.files + 4} members")
            print(f"{'way':<16}{'source':<16}{'requests':>10}{'bytes':>16}{'median s':>12}")
            for way, server in (("range", ranged), ("full download", plain)):
                url = f"{server.base_url}files/{digest[:2]}/{filename}"
                times, reader = [], DependencyReader(client)
                for _ in range(args.repeat):
                    reader = DependencyReader(client)
                    started = time.perf_counter()
                    deps = reader.read(filename=filename, url=url, sha256=digest, metadata_url=None)
                    times.append(time.perf_counter() - started)
                    if deps.requires_dist != tuple(REQUIRES):
                        raise RuntimeError(f"{way}: read {deps!r}, not the wheel's requirements")
                stats = reader.stats
                print(
                    f"{way:<16}{deps.source:<16}{stats.requests:>10}{stats.bytes_received:>16,}"
                    f"{statistics.median(times):>12.4f}"
                )


if __name__ == "__main__":
    main()
