"""A live check against a real index: the seed's commands verbatim, then its three complex remotes.

Usage::

    make live-check INDEX=<index root URL>      # or: python scripts/live_check.py <index root URL>

Not part of the test suite (the tests never leave loopback): it is for a person, before a release or
after a change to how mirrorflow talks to upstreams. It runs the ``mirrorflow`` CLI next to this
Python, as a user would, each scenario in a fresh temporary ``MIRRORFLOW_HOME``:

1. the seed's four commands (Pulp's sync guide) with ``--url`` the index root, as given;
2. the same with the ``/simple/`` form of the URL;
3. the seed's ``complex-remote`` (four includes with specifiers);
4. its includes + excludes remote (``django`` and ``scipy``, minus ``django~=1.0`` and ``scipy``);
5. its ``complex-filters`` remote (sdist and wheels, no windows, the latest five versions);
6. the dependency closure (``--include-dependencies``, docs/closure.md): ``django`` for CPython 3.12 on
   linux and freebsd brings ``asgiref`` and ``sqlparse`` but not ``tzdata`` (windows only); ``requests``
   brings exactly ``certifi``, ``charset-normalizer``, ``idna`` and ``urllib3``. Both keep the latest
   release only (``--keep-latest-packages 1``, which applies to dependencies too): older releases of
   requests required ``chardet``, and a few dozen requests are enough.

``make live-check INDEX=<url> ONLY=closure`` (or a second argument ``closure``) runs the closure
scenarios alone.

Remotes keep the default policy (``on_demand``): a sync reads each project's page and records its
files; nothing is downloaded. So the whole check asks the index for a few dozen pages at most.
It prints every command with its exit code and the sync's one-line result, then a table: remote,
version, file count, sync time, exit code. Exits 1 when any command failed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MIRRORFLOW = str(Path(sys.executable).with_name("mirrorflow"))

#: The seed's remotes beyond the first, verbatim (sync-repository.md, "A More Complex Remote").
# fmt: off
COMPLEX_REMOTES: list[tuple[str, list[str]]] = [
    (
        "complex-remote",
        ["--includes", '["django~=2.0,!=2.0.1", "pip-tools>=1.12,<=2.0", "scipy", "shelf-reader"]'],
    ),
    ("complex-remote", ["--includes", '["django", "scipy"]', "--excludes", '["django~=1.0", "scipy"]']),
    (
        "complex-filters",
        [
            "--includes", '["django"]',
            "--package-types", '["sdist", "bdist_wheel"]',
            "--exclude-platforms", '["windows"]',
            "--keep-latest-packages", "5",
        ],
    ),
]
# fmt: on

#: The closure scenarios: (label, includes, extra options, projects that must be added, that must not).
CLOSURE_REMOTES: list[tuple[str, str, list[str], set[str], set[str] | None]] = [
    (
        "closure: django",
        '["django"]',
        ["--python-versions", '["3.12"]', "--exclude-platforms", '["windows", "macos"]'],
        {"asgiref", "sqlparse"},
        {"tzdata"},
    ),
    ("closure: requests", '["requests"]', [], {"certifi", "charset-normalizer", "idna", "urllib3"}, None),
]


@dataclass
class Row:
    scenario: str
    remote: str
    version: str = "-"
    files: str = "-"
    seconds: float = 0.0
    exit_code: int = 0
    #: The closure scenarios: the projects it added, and what was wrong with them ("" when right).
    added: str = ""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print(f"$ {shlex.join(['mirrorflow', *args])}", flush=True)
    done = subprocess.run([MIRRORFLOW, *args], capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        print(f"  exit {done.returncode}: " + "\n  ".join(tail), flush=True)
    return done


def _scenario(
    name: str,
    repository: str,
    remote: str,
    url: str,
    options: list[str],
    expect: tuple[set[str], set[str] | None] | None = None,
) -> Row:
    """Run create / remote create / sync / version show in a fresh home; return the table row.

    ``expect``: for a closure scenario, the projects that must be added and those that must not
    (None: nothing else may be added)."""
    row = Row(name, remote)
    with tempfile.TemporaryDirectory(prefix="mirrorflow-live-") as home:
        # A fresh home per scenario, removed after it: no local server or warm sync process to leave behind.
        env = os.environ | {
            "MIRRORFLOW_HOME": home,
            "MIRRORFLOW_PREFECT_SERVER": "temporary",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        for args in (
            ["repository", "create", "--name", repository],
            ["remote", "create", "--name", remote, "--url", url, *options],
        ):
            done = _run(args, env)
            if done.returncode:
                row.exit_code = done.returncode
                return row
        started = time.monotonic()
        sync = _run(["repository", "sync", "--name", repository, "--remote", remote], env)
        row.seconds = time.monotonic() - started
        row.exit_code = sync.returncode
        _print_sync(sync.stdout)
        if expect is not None and not sync.returncode:
            row.added, wrong = _check_closure(sync.stdout, *expect)
            row.exit_code = 1 if wrong else 0
        show = _run(["repository", "version", "show", "--repository", repository], env)
        if show.returncode:
            row.exit_code = row.exit_code or show.returncode
            return row
        version = json.loads(show.stdout)
        row.version = str(version.get("number", "-"))
        present = version.get("content_summary", {}).get("present", {})
        row.files = str(sum(kind.get("count", 0) for kind in present.values()))
    return row


def _print_sync(stdout: str) -> None:
    """One line from the sync's JSON: version, changed, and the report's counts that matter here."""
    try:
        result = json.loads(stdout)
    except ValueError:
        print(f"  {stdout.strip()[-300:]}")
        return
    report = result.get("report", {}) if isinstance(result, dict) else {}
    keys = ("projects", "files_kept", "skipped", "not_found", "legacy_filenames", "failures")
    shown = {key: report[key] for key in keys if report.get(key)}
    print(f"  version {result.get('number')}, changed {result.get('changed')}, {json.dumps(shown)}")


def _check_closure(stdout: str, must: set[str], must_not: set[str] | None) -> tuple[str, bool]:
    """The projects the closure added (with their chains printed), and whether that is wrong."""
    closure = json.loads(stdout).get("report", {}).get("closure", {})
    added = {item["project"]: item["chain"] for item in closure.get("added", [])}
    for project, chain in sorted(added.items()):
        print(f"  added {project}: {chain}")
    wrong = not must <= set(added) or (set(added) & must_not if must_not is not None else set(added) - must)
    if wrong:
        print(f"  WRONG: expected {sorted(must)} and not {sorted(must_not or ['anything else'])}")
    return ",".join(sorted(added)), bool(wrong)


def _forms(url: str) -> tuple[str, str]:
    """The index root and its ``/simple/`` form, whichever of the two was given."""
    base = url.rstrip("/")
    root = base[: -len("/simple")] if base.endswith("/simple") else base
    return root + "/", root + "/simple/"


def main(argv: list[str]) -> int:
    only = argv[1] if len(argv) == 2 else ""
    if (
        len(argv) not in (1, 2)
        or urlsplit(argv[0]).scheme not in ("http", "https")
        or only not in ("", "closure")
    ):
        print("usage: live_check.py <index root URL, http(s)://...> [closure]", file=sys.stderr)
        return 2
    url = argv[0]
    _, simple = _forms(url)
    scenarios: list[tuple[str, str, str, str, list[str], tuple[set[str], set[str] | None] | None]] = []
    if not only:
        scenarios += [
            ("seed, URL as given", "foo", "bar", url, ["--includes", '["shelf-reader"]'], None),
            ("seed, /simple/ form", "foo", "bar", simple, ["--includes", '["shelf-reader"]'], None),
        ]
        labels = ("complex-remote", "includes+excludes", "complex-filters")
        for label, (remote, options) in zip(labels, COMPLEX_REMOTES, strict=True):
            scenarios.append((label, remote, remote, url, options, None))
    for label, includes, options, must, must_not in CLOSURE_REMOTES:
        closure_options = ["--includes", includes, "--include-dependencies", "--keep-latest-packages", "1"]
        scenarios.append((label, "foo", "deps", url, [*closure_options, *options], (must, must_not)))
    rows = []
    for name, repository, remote, remote_url, options, expect in scenarios:
        print(f"\n== {name}", flush=True)
        rows.append(_scenario(name, repository, remote, remote_url, options, expect))
    header = ("scenario", "remote", "version", "files", "time (s)", "exit", "closure added")
    table = [header] + [
        (r.scenario, r.remote, r.version, r.files, f"{r.seconds:.1f}", str(r.exit_code), r.added)
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print()
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 1 if any(r.exit_code for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
