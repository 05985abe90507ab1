"""Record real simple pages of a few projects as parser test data (``tests/pages/recorded/``).

Usage::

    python scripts/record_pages.py <index root URL> [--out tests/pages/recorded]

The root is the index root (``https://<host>/``), never written down here: on a machine that reaches the
public index, get it at run time, e.g. ``python -c 'from pip._internal.models.index import PyPI;
print(PyPI.url)'``. For each project below the script fetches three documents:

- ``<root>/simple/<name>/`` as PEP 691 JSON  -> ``<name>.v1.json``
- the same page as PEP 503 HTML              -> ``<name>.html``
- the legacy JSON API ``<root>/pypi/<name>/json`` -> ``<name>.legacy.json``

and writes them with every host of the index (the root's host and the hosts its file URLs point to,
and their parent domains) rewritten to ``index.example``. Nothing else in a page is changed, except:

- a project listed with ``keep`` versions is trimmed to the files of those versions, the same files in
  all three documents (a large project's pages run to megabytes);
- the legacy JSON's ``info.description`` (the project's whole README) is emptied.

A 404 is retried twice (the caching front of these machines sometimes answers 404 for a page it has);
the script stops after ``MAX_REQUESTS`` requests. It prints what it wrote and every host left in the
recorded files (project links such as a source repository), so a reader can check that no index host
is among them. Not part of the test suite: the tests only read what this wrote.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: project -> the versions kept (None: every file the index lists). Why each is here:
PROJECTS: dict[str, frozenset[str] | None] = {
    "shelf-reader": None,  # the seed's project: a py2 wheel and an sdist
    "pip-tools": frozenset({"1.11.0", "2.0.0", "2.0.1", "2.0.2", "7.4.1"}),  # the seed's range
    # Django 2.0.x, the seed's complex-remote range; 4.2.x: core-metadata, requires-python; many files.
    "django": frozenset({"2.0", "2.0.1", "2.0.2", "2.0.13", "4.2.16"}),
    # scipy 1.11.0 is yanked with a reason on every file; 0.10.0 is an old sdist-only release.
    "scipy": frozenset({"0.10.0", "1.11.0", "1.11.1"}),
    "mysql-python": None,  # bdist_egg (py2.x-win32, linux-i686) and bdist_wininst .exe files
    "pyreadline": None,  # bdist_wininst .exe, including "pyreadline-1.5-win32-setup.exe"
    "password-strength": None,  # wheels whose version part is not PEP 440 (0.0.1_1), a bdist_dumb
}

#: What every index host becomes in the recorded pages.
PLACEHOLDER = "index.example"

MAX_REQUESTS = 60
_ACCEPT_JSON = "application/vnd.pypi.simple.v1+json"
_ACCEPT_HTML = "application/vnd.pypi.simple.v1+html, text/html;q=0.9"
_USER_AGENT = "mirrorflow-record-pages"


class Fetcher:
    """GET with a request budget and a retried 404."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def get(self, url: str, accept: str) -> bytes:
        for attempt in range(3):
            if self.count >= self.limit:
                raise SystemExit(f"error: request budget of {self.limit} spent; nothing more is fetched")
            self.count += 1
            request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": _USER_AGENT})
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or attempt == 2:
                    raise SystemExit(f"error: GET {url} answered {exc.code}") from None
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")


def _domains(host: str) -> set[str]:
    """The host and its parent domain (``a.b.c`` -> ``{"a.b.c", "b.c"}``)."""
    if not host:
        return set()
    labels = host.lower().split(".")
    return {host.lower(), ".".join(labels[-2:])} if len(labels) > 2 else {host.lower()}


_HOST_RE = re.compile(r"\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+\b")


def _scrub(text: str, hosts: set[str]) -> str:
    """Replace every index host in ``text`` with the placeholder, longest first.

    Besides ``hosts`` (and their parent domains), any host name with a label that names an index
    domain counts: the index's older names (``<label>.<other domain>``) appear in old projects' links.
    """
    labels = {host.split(".")[-2] for host in hosts if host.count(".") >= 1}
    hosts = hosts | {
        found.lower()
        for found in _HOST_RE.findall(text)
        if labels & set(found.lower().split(".")[:-1]) and "." in found
    }
    for host in sorted(hosts, key=len, reverse=True):
        text = re.sub(re.escape(host), PLACEHOLDER, text, flags=re.IGNORECASE)
    return text


def _legacy_filenames(legacy: dict[str, Any], keep: frozenset[str]) -> set[str]:
    releases = legacy.get("releases", {})
    missing = keep - set(releases)
    if missing:
        raise SystemExit(f"error: {legacy['info']['name']!r} has no release(s) {sorted(missing)!r} to keep")
    return {entry["filename"] for version in keep for entry in releases[version]}


def _trim_legacy(legacy: dict[str, Any], keep: frozenset[str] | None, filenames: set[str]) -> dict[str, Any]:
    """Empty the description; with ``keep``, hold only those releases (and ``urls`` entries among them)."""
    legacy = dict(legacy, info=dict(legacy["info"], description=""))
    if keep is not None:
        legacy["releases"] = {v: files for v, files in legacy["releases"].items() if v in keep}
        legacy["urls"] = [entry for entry in legacy.get("urls", []) if entry["filename"] in filenames]
    return legacy


_ANCHOR_TEXT_RE = re.compile(r"<a\b[^>]*>([^<]*)</a>")


def _trim_html(html: str, filenames: set[str]) -> str:
    """Drop the anchor lines whose text is not one of ``filenames`` (one anchor per line, as served)."""
    lines = []
    for line in html.splitlines(keepends=True):
        match = _ANCHOR_TEXT_RE.search(line)
        if match is None or match.group(1).strip() in filenames:
            lines.append(line)
    return "".join(lines)


def record(root: str, out: Path, fetch: Fetcher) -> list[Path]:
    """Fetch, trim and scrub every project's three documents into ``out``. Returns the files written."""
    root = root.rstrip("/")
    hosts = _domains(urlsplit(root).hostname or "")
    written = []
    for name, keep in PROJECTS.items():
        legacy = json.loads(fetch.get(f"{root}/pypi/{name}/json", "application/json"))
        page = json.loads(fetch.get(f"{root}/simple/{name}/", _ACCEPT_JSON))
        html = fetch.get(f"{root}/simple/{name}/", _ACCEPT_HTML).decode("utf-8")
        for entry in page["files"]:
            hosts |= _domains(urlsplit(entry["url"]).hostname or "")
        for entry in legacy.get("urls", []):
            hosts |= _domains(urlsplit(entry["url"]).hostname or "")
        for key in ("package_url", "project_url", "release_url"):
            value = legacy["info"].get(key)
            if isinstance(value, str) and value:
                hosts |= _domains(urlsplit(value).hostname or "")
        filenames: set[str] = set()
        if keep is not None:
            filenames = _legacy_filenames(legacy, keep)
            page["files"] = [entry for entry in page["files"] if entry["filename"] in filenames]
            if "versions" in page:
                page["versions"] = [version for version in page["versions"] if version in keep]
            html = _trim_html(html, filenames)
        legacy = _trim_legacy(legacy, keep, filenames)
        documents = {
            f"{name}.v1.json": json.dumps(page, indent=1, ensure_ascii=False) + "\n",
            f"{name}.html": html,
            f"{name}.legacy.json": json.dumps(legacy, indent=1, ensure_ascii=False) + "\n",
        }
        for filename, text in documents.items():
            path = out / filename
            path.write_text(text, encoding="utf-8")
            written.append(path)
    # A second pass: hosts learnt from a later project's pages are scrubbed from the earlier ones too.
    for path in written:
        path.write_text(_scrub(path.read_text(encoding="utf-8"), hosts), encoding="utf-8")
    return written


_URL_HOST_RE = re.compile(r"https?://([A-Za-z0-9.-]+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the index root URL, e.g. https://<host>/ (no default)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "tests/pages/recorded")
    args = parser.parse_args(argv)
    if urlsplit(args.root).scheme not in ("http", "https") or not urlsplit(args.root).hostname:
        print(f"error: root: {args.root!r} is not an http(s) URL", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    fetch = Fetcher(MAX_REQUESTS)
    written = record(args.root, args.out, fetch)
    left = set()
    for path in written:
        text = path.read_text(encoding="utf-8")
        left |= {host.lower() for host in _URL_HOST_RE.findall(text)}
        print(f"{path}  {len(text.encode()):>8} bytes")
    print(f"{fetch.count} requests; hosts left in the recorded files: {', '.join(sorted(left))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
