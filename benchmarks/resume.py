"""Resume, don't redo: an immediate sync of about 1 GB killed with ``kill -9`` at about 90%, then rerun.

    python -m benchmarks.resume                      # 20,000 projects, one in 40 big: ~1 GB
    python -m benchmarks.resume --kill-at 0.5        # kill at half the bytes instead

Runs the CLI as a user would (``mirrorflow repository sync``, its own process, embedded SQLite
catalog and directory store in a fresh ``MIRRORFLOW_HOME``) against the synthetic index of
``benchmarks/run.py``'s large step. When the store holds ``--kill-at`` of the step's bytes under
their final keys, the sync's whole process group gets SIGKILL. After the lock's lease, the same
command runs again. Prints what the first run had stored, what the rerun downloaded and reused
(its report's ``downloaded_bytes`` and ``resumed_files``), and the rerun's bytes as a share of the
whole: at most the missing part plus what was in flight is the target (issue 17).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import LARGE_BIG_EVERY, _Server
from benchmarks.synthetic import SyntheticIndex

__all__ = ["main"]


def _stored_bytes(root: Path) -> int:
    """Bytes of the objects published under their keys (``sha256/``), not the spool."""
    total = 0
    for directory, _dirs, files in os.walk(root / "sha256"):
        total += sum(os.stat(os.path.join(directory, name)).st_size for name in files)
    return total


def _mirrorflow(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).with_name("mirrorflow")), *args]
    return subprocess.Popen(
        command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def _run(*args: str, env: dict[str, str]) -> str:
    process = _mirrorflow(*args, env=env)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"mirrorflow {' '.join(args)} failed ({process.returncode}): {err.strip()[-500:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.9, help="Share of the bytes stored when killed.")
    args = parser.parse_args()

    index = SyntheticIndex(args.projects, seed=args.seed, big_every=LARGE_BIG_EVERY)
    big = [i for i in index.indices() if index.is_big(i)]
    total = sum(f.size for i in big for _, f in index.files(i))
    server = _Server(args.projects, args.seed, big_every=LARGE_BIG_EVERY)
    home = Path(tempfile.mkdtemp(prefix="mirrorflow-bench-resume-"))
    lease = 10  # the smallest lease the settings accept
    env = {**os.environ, "MIRRORFLOW_HOME": str(home), "MIRRORFLOW_SYNC_LOCK_LEASE": str(lease)}
    env.pop("MIRRORFLOW_DATABASE_URL", None)
    env.pop("MIRRORFLOW_S3_ENDPOINT", None)
    try:
        print(f"synthetic index: {len(big)} big projects, {total / 1e6:.0f} MB; kill at {args.kill_at:.0%}")
        includes = json.dumps([index.name(i) for i in big])
        _run("repository", "create", "--name", "big", env=env)
        _run("remote", "create", "--name", "big", "--url", server.url, "--includes", includes,
             "--policy", "immediate", env=env)  # fmt: skip
        started = time.monotonic()
        first = _mirrorflow(
            "repository", "sync", "--name", "big", "--remote", "big", env=env, start_new_session=True
        )
        stored = 0
        while first.poll() is None:
            stored = _stored_bytes(home / "artifacts")
            if stored >= args.kill_at * total:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait()
                break
            time.sleep(0.05)
        else:
            raise SystemExit(
                f"the first sync ended ({first.returncode}) before {args.kill_at:.0%} was stored"
            )
        killed_after = time.monotonic() - started
        print(f"first run killed after {killed_after:.1f} s with {stored / 1e6:.0f} MB "
              f"({stored / total:.0%}) stored under their keys")  # fmt: skip
        time.sleep(lease + 1)  # the killed run's lock expires
        started = time.monotonic()
        result = json.loads(_run("repository", "sync", "--name", "big", "--remote", "big", env=env))
        seconds = time.monotonic() - started
        report = result["report"]
        again = report["downloaded_bytes"]
        print(f"rerun: {seconds:.1f} s, version {result['number']}, downloaded {again / 1e6:.0f} MB "
              f"in {report['downloaded_files']} files, reused {report['resumed_files']} files from the store")  # fmt: skip
        print(f"rerun downloaded {again / total:.1%} of the step's bytes; missing at the kill: "
              f"{(total - stored) / total:.1%} (the rest of the difference was in flight)")  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
