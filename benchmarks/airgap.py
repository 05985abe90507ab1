"""Air-gap benchmark: export and import about 1 GB, side by side with ``tar`` of the same files.

    python -m benchmarks.airgap                     # 1000 MB in 2 MB files, 256 MiB chunks
    python -m benchmarks.airgap --megabytes 100     # a quick run

One SQLite catalog and directory store get one version holding the files (seeded random bytes).
Then, each in its own process so that its peak RSS is its own (``os.wait4``): ``repository
export`` into a directory, ``tar cf`` of the same stored files into another (the ceiling: a plain
copy into an archive, no hashing), and ``repository import`` into a second home. Prints MB/s and
peak memory for each, and the ratios to tar, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path


def _populate(home: Path, megabytes: int, file_mb: int) -> list[Path]:
    from storage.catalog import Catalog
    from storage.content import ContentWriter, NewPackage
    from storage.filesystem_store import FileSystemStore

    catalog = Catalog.from_url(f"sqlite:///{home / 'catalog.db'}")
    store = FileSystemStore(home / "artifacts")
    writer = ContentWriter(catalog)
    catalog.create_repository("foo")
    rng = random.Random(21)
    packages, contents = [], []
    for index in range(max(1, megabytes // file_mb)):
        content = rng.randbytes(file_mb * 2**20)
        digest = hashlib.sha256(content).hexdigest()
        filename = f"bench{index}-1.0-py3-none-any.whl"
        packages.append(NewPackage(f"bench{index}", f"bench{index}", "1.0", filename, "bdist_wheel", "py3", None,
                                   digest, len(content), None, False, None, None, False,
                                   f"https://index.example/{filename}"))  # fmt: skip
        stored = store.put_chunks([content], sha256=digest, size=len(content))
        contents.append((stored.sha256, stored.size, stored.key))
    ids = writer.upsert_packages(packages)
    writer.record_artifacts(contents)
    sync_id = str(uuid.uuid4())
    writer.stage(sync_id, catalog.get_repository("foo").id, ids.values())
    writer.commit_version(repository="foo", sync_id=sync_id, mirror=True)
    catalog.dispose()
    return [home / "artifacts" / key for _, _, key in contents]


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``; return (seconds, peak RSS in MB) of that process alone."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--file-mb", type=int, default=2)
    parser.add_argument("--chunk-size", default="256MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mirrorflow-airgap-") as tmp:
        root = Path(tmp)
        online, offline = root / "online", root / "offline"
        online.mkdir()
        files = _populate(online, args.megabytes, args.file_mb)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        mirrorflow = [sys.executable, "-c", "from flows.cli import main; main()"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORFLOW_")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        export = _run([*mirrorflow, "repository", "export", "--name", "foo", "--to", str(root / "out"),
                       "--chunk-size", args.chunk_size], env | {"MIRRORFLOW_HOME": str(online)})  # fmt: skip
        tar = _run(["tar", "cf", str(root / "plain.tar"), *map(str, files)], env)
        imported = _run([*mirrorflow, "repository", "import", "--name", "bar", "--from", str(root / "out")],
                        env | {"MIRRORFLOW_HOME": str(offline)})  # fmt: skip
        print(f"{total_mb:.0f} MB in {len(files)} files, chunks of {args.chunk_size}")
        print(f"{'step':<8} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'vs tar':>7}")
        for name, (seconds, rss) in (("tar cf", tar), ("export", export), ("import", imported)):
            ratio = tar[0] / seconds
            print(f"{name:<8} {seconds:8.2f} {total_mb / seconds:8.1f} {rss:12.0f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
