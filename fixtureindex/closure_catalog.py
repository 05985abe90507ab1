"""The closure catalog: fixture projects whose real wheel metadata exercises the dependency closure.

Include ``webapp[secure]``, ``client`` and ``broken`` with ``python_versions ["3.10", "3.12"]`` and
``exclude_platforms ["windows", "freebsd"]`` (:data:`CLOSURE_REMOTE`); then:

- ``webapp`` 1.0 needs ``asgi-ref>=3.7,<3.8``, 2.0 needs ``asgi-ref>=3.8``: both ranges, so ``asgi-ref``
  3.7 and 3.8 come in, 1.0 does not; both need ``sql-parse>=0.3`` (0.5 in, 0.1 out);
  ``tz-data; sys_platform == "win32"`` never applies (windows excluded); with the extra ``secure``,
  ``argon>=1``, which needs ``argon-bind``, which needs ``argon`` again (a cycle);
- ``asgi-ref`` 3.8 needs ``typing-ext>=4; python_version < "3.11"`` (in: 3.10 is a target);
- ``client`` needs ``idna-x>=2``, ``colour-x; sys_platform == "win32"`` (out),
  ``uvloop-x; sys_platform != "win32"`` (in) and ``socks-x; extra == "socks"`` (out: not asked);
- ``broken`` needs ``ghost>=1`` (on no index: unsatisfied) and ``sd-dynamic`` (an sdist whose
  Requires-Dist is not static: dependencies unknown) and ``sd-static`` (an sdist with Metadata-Version
  2.2: its PKG-INFO may be trusted; it needs ``idna-x>=3``);
- ``unrelated`` is never synced.
"""

from __future__ import annotations

import gzip
import io
import tarfile

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_sdist, make_wheel

__all__ = ["CLOSURE_EXPECTED", "CLOSURE_REMOTE", "closure_projects"]

#: The remote the catalog is made for.
CLOSURE_REMOTE = {
    "includes": ["webapp[secure]", "client", "broken"],
    "python_versions": ["3.10", "3.12"],
    "exclude_platforms": ["windows", "freebsd"],
    "include_dependencies": True,
}

#: The files the closure of ``CLOSURE_REMOTE`` syncs, by project: (version, ...).
CLOSURE_EXPECTED = {
    "webapp": ("1.0", "2.0"),
    "asgi-ref": ("3.7", "3.8"),
    "sql-parse": ("0.5",),
    "typing-ext": ("4.0",),
    "argon": ("1.0",),
    "argon-bind": ("1.0",),
    "client": ("1.0",),
    "idna-x": ("2.0", "3.0"),
    "uvloop-x": ("1.0",),
    "broken": ("1.0",),
    "sd-dynamic": ("1.0",),
    "sd-static": ("1.0",),
}


def _wheel(name: str, version: str, *requires: str) -> FixtureFile:
    # pip ignores an extra the metadata does not declare: declare each one a marker names.
    extras = sorted({r.split('extra == "', 1)[1].split('"', 1)[0] for r in requires if 'extra == "' in r})
    filename, content = make_wheel(name, version, requires_dist=requires, provides_extra=extras)
    return FixtureFile(filename, content)


def _static_sdist(name: str, version: str, *requires: str) -> FixtureFile:
    """An sdist whose PKG-INFO is Metadata-Version 2.2 with no ``Dynamic: Requires-Dist`` (PEP 643)."""
    lines = ["Metadata-Version: 2.2", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    base = f"{name.replace('-', '_')}-{version}"
    members = {f"{base}/PKG-INFO": "\n".join(lines) + "\n\n", f"{base}/setup.py": "raise SystemExit(1)\n"}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1577836800, 0o644
            archive.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return FixtureFile(f"{base}.tar.gz", compressed.getvalue())


def closure_projects() -> list[FixtureProject]:
    """The closure catalog (deterministic bytes)."""
    sdist_name, sdist = make_sdist("sd-dynamic", "1.0", requires_dist=["sql-parse"])
    webapp_2 = (
        "asgi-ref>=3.8",
        "sql-parse>=0.3",
        'tz-data; sys_platform == "win32"',
        'argon>=1; extra == "secure"',
    )
    return [
        FixtureProject(
            "webapp",
            [
                _wheel("webapp", "1.0", "asgi-ref>=3.7,<3.8", "sql-parse>=0.3"),
                _wheel("webapp", "2.0", *webapp_2),
            ],
        ),
        FixtureProject(
            "asgi-ref",
            [
                _wheel("asgi-ref", "1.0"),
                _wheel("asgi-ref", "3.7"),
                _wheel("asgi-ref", "3.8", 'typing-ext>=4; python_version < "3.11"'),
            ],
        ),
        FixtureProject("sql-parse", [_wheel("sql-parse", "0.1"), _wheel("sql-parse", "0.5")]),
        FixtureProject("typing-ext", [_wheel("typing-ext", "4.0")]),
        FixtureProject("tz-data", [_wheel("tz-data", "2024.1")]),
        FixtureProject("argon", [_wheel("argon", "1.0", "argon-bind")]),
        FixtureProject("argon-bind", [_wheel("argon-bind", "1.0", "argon")]),
        FixtureProject(
            "client",
            [
                _wheel(
                    "client",
                    "1.0",
                    "idna-x>=2",
                    'colour-x; sys_platform == "win32"',
                    'uvloop-x; sys_platform != "win32"',
                    'socks-x; extra == "socks"',
                )
            ],
        ),
        FixtureProject("idna-x", [_wheel("idna-x", "2.0"), _wheel("idna-x", "3.0")]),
        FixtureProject("colour-x", [_wheel("colour-x", "1.0")]),
        FixtureProject("uvloop-x", [_wheel("uvloop-x", "1.0")]),
        FixtureProject("socks-x", [_wheel("socks-x", "1.0")]),
        FixtureProject("broken", [_wheel("broken", "1.0", "ghost>=1", "sd-dynamic", "sd-static")]),
        FixtureProject("sd-dynamic", [FixtureFile(sdist_name, sdist)]),
        FixtureProject("sd-static", [_static_sdist("sd-static", "1.0", "idna-x>=3")]),
        FixtureProject("unrelated", [_wheel("unrelated", "1.0")]),
    ]
