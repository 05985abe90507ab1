"""Air-gap benchmark: export and import about 1 GB, side by side with ``tar`` of the same files.

    python -m benchmarks.airgap                     # 1000 MB in 2 MB files, 256 MiB chunks
    python -m benchmarks.airgap --megabytes 100     # a quick run

One SQLite catalog and directory store get one version holding the files (seeded random bytes).
Then, each in its own process so that its peak RSS is its own (``os.wait4``): ``repository
export`` into a directory, ``tar cf`` of the same stored files into another (the ceiling: a plain
copy into an archive, no hashing), ``tar cf`` followed by ``sync`` of its archive (the same copy
made durable, as export and import make theirs), ``sha256sum`` of the files (one hashing pass:
export and import each make two), and ``repository import`` into a second home. Prints MB/s and
peak memory for each, and the ratios to tar and to durable tar (their time over the step's),
measured in the same run. ``--dir /dev/shm`` runs it in memory, without the disk.
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
    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.storage.content import ContentWriter, NewPackage
    from mirrorflow.storage.filesystem_store import FileSystemStore

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


def _run(*commands: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``commands`` one after the other; return (seconds, largest peak RSS in MB) of them alone.

    The RSS of a command that is not Python (tar, sync, sha256sum) is at least the benchmark's
    own: the child is forked from it before it runs the command."""
    os.sync()  # not timed: each step starts on a quiet disk and pays for its own writes only
    started, peak = time.monotonic(), 0.0
    for command in commands:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command[:4]} failed")
        peak = max(peak, usage.ru_maxrss / 1024)
    return time.monotonic() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--file-mb", type=int, default=2)
    parser.add_argument("--chunk-size", default="256MiB")
    parser.add_argument("--dir", default=None, help="where to work (default: the temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mirrorflow-airgap-", dir=args.dir) as tmp:
        root = Path(tmp)
        online, offline = root / "online", root / "offline"
        online.mkdir()
        files = _populate(online, args.megabytes, args.file_mb)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        mirrorflow = [sys.executable, "-c", "from mirrorflow.flows.cli import main; main()"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORFLOW_")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        export = _run([*mirrorflow, "repository", "export", "--name", "foo", "--to", str(root / "out"),
                       "--chunk-size", args.chunk_size], env=env | {"MIRRORFLOW_HOME": str(online)})  # fmt: skip
        tar = _run(["tar", "cf", str(root / "plain.tar"), *map(str, files)], env=env)
        (root / "plain.tar").unlink()
        durable = _run(["tar", "cf", str(root / "plain.tar"), *map(str, files)], ["sync", str(root / "plain.tar")],
                       env=env)  # fmt: skip
        (root / "plain.tar").unlink()
        hashed = _run(["sha256sum", *map(str, files)], env=env)
        imported = _run([*mirrorflow, "repository", "import", "--name", "bar", "--from", str(root / "out")],
                        env=env | {"MIRRORFLOW_HOME": str(offline)})  # fmt: skip
        print(f"{total_mb:.0f} MB in {len(files)} files, chunks of {args.chunk_size}, in {root.parent}")
        print(
            f"{'step':<14} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'vs tar':>7} {'vs tar+sync':>12}"
        )
        steps = (("tar cf", tar), ("tar cf + sync", durable), ("sha256sum", hashed), ("export", export),
                 ("import", imported))  # fmt: skip
        for name, (seconds, rss) in steps:
            print(f"{name:<14} {seconds:8.2f} {total_mb / seconds:8.1f} {rss:12.0f} {tar[0] / seconds:7.2f} "
                  f"{durable[0] / seconds:12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
