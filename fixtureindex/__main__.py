"""``python -m mirrorflow.fixtureindex build|serve --root DIR [--port N]``: build or serve the seed fixture index."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from mirrorflow.fixtureindex.builder import build_index
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import serve_index


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mirrorflow.fixtureindex", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the seed catalog's static index tree under --root")
    build.add_argument("--root", type=Path, required=True, help="directory to write the index into")
    serve = commands.add_parser("serve", help="serve the index under --root (built first if missing)")
    serve.add_argument("--root", type=Path, required=True, help="directory holding the index")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (default: a free port)")
    serve.add_argument(
        "--mode",
        choices=("negotiate", "html-only", "json-only"),
        default="negotiate",
        help="page format: negotiated on Accept (default), or pinned",
    )
    args = parser.parse_args(argv)

    if args.command == "build" or not (args.root / "index-state.json").is_file():
        index = build_index(seed_projects(), args.root)
        print(f"built {len(index.serials)} projects (serial {index.last_serial}) in {args.root}")
        if args.command == "build":
            return 0
    # Scripts stop a background server with SIGTERM (background jobs ignore SIGINT): shut down cleanly.
    signal.signal(signal.SIGTERM, _interrupt)
    with serve_index(args.root, host=args.host, port=args.port, mode=args.mode) as running:
        print(f"serving {args.root} at {running.url}  (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
