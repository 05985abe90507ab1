"""The seed catalog: the fixture projects the seed workflow, the README demo and the tests use.

Every release date is fixed, so a build is byte-for-byte reproducible (same files, same digests).

- ``shelf-reader`` 0.1: exactly two files (an sdist and a ``py2`` wheel);
- ``Django`` (display name capitalized): 1.11 ... 3.0 including a pre-release (3.0a1), sdist + py3 wheel;
- ``pip-tools``: six releases, sdist + ``py2.py3`` wheel;
- ``scipy``: 1.5.0, 1.6.0rc1, 1.6.0 with an sdist and Windows / manylinux / macOS ``cp39`` wheels;
- ``mf-demo-app`` 1.0 (needs ``mf-demo-lib>=1.0``) and ``mf-demo-lib`` 1.0, 2.0 and a yanked 2.1 wheel,
  small and installable, for the pip install tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from mirrorflow.fixtureindex.builder import FixtureFile, FixtureProject, make_sdist, make_wheel

__all__ = ["SCIPY_PLATFORMS", "seed_projects"]

#: The platform tags of each scipy release's wheels.
SCIPY_PLATFORMS = (
    "win_amd64",
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "macosx_10_9_x86_64",
)


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC)


def _release(
    name: str,
    version: str,
    day: str,
    *,
    wheel_tags: Iterable[tuple[str, str, str]] = (("py3", "none", "any"),),
    sdist: bool = True,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    yanked: bool | str = False,
) -> list[FixtureFile]:
    """Return the files of one release: its sdist (when ``sdist``) and one wheel per tag triple."""
    requires_dist = tuple(requires_dist)
    built = []
    if sdist:
        built.append(make_sdist(name, version, requires_dist=requires_dist, requires_python=requires_python))
    for python_tag, abi_tag, platform_tag in wheel_tags:
        built.append(
            make_wheel(
                name,
                version,
                python_tag=python_tag,
                abi_tag=abi_tag,
                platform_tag=platform_tag,
                requires_dist=requires_dist,
                requires_python=requires_python,
            )
        )
    return [
        FixtureFile(filename, content, requires_python=requires_python, yanked=yanked, upload_time=_at(day))
        for filename, content in built
    ]


def _django() -> FixtureProject:
    releases = [
        ("1.11", "2020-01-08", None),
        ("1.11.29", "2020-03-04", None),
        ("2.0", "2020-04-02", ">=3.4"),
        ("2.0.1", "2020-05-05", ">=3.4"),
        ("2.0.2", "2020-06-03", ">=3.4"),
        ("2.1", "2020-08-01", ">=3.5"),
        ("2.2.28", "2022-04-11", ">=3.5"),
        ("3.0a1", "2021-09-10", ">=3.6"),
        ("3.0", "2021-12-02", ">=3.6"),
    ]
    files = [
        file
        for version, day, requires_python in releases
        for file in _release("Django", version, day, requires_python=requires_python)
    ]
    return FixtureProject("Django", files)


def _pip_tools() -> FixtureProject:
    releases = [
        ("1.11.0", "2020-02-10"),
        ("1.12.0", "2020-07-15"),
        ("1.12.1", "2020-09-22"),
        ("2.0.0", "2021-03-30"),
        ("2.0.2", "2021-06-18"),
        ("3.0.0", "2022-01-25"),
    ]
    tags = (("py2.py3", "none", "any"),)
    files = [
        file
        for version, day in releases
        for file in _release("pip-tools", version, day, wheel_tags=tags, requires_dist=("click>=6",))
    ]
    return FixtureProject("pip-tools", files)


def _scipy() -> FixtureProject:
    releases = [("1.5.0", "2022-06-21"), ("1.6.0rc1", "2023-01-03"), ("1.6.0", "2023-02-01")]
    tags = [("cp39", "cp39", platform) for platform in SCIPY_PLATFORMS]
    files = [
        file
        for version, day in releases
        for file in _release("scipy", version, day, wheel_tags=tags, requires_python=">=3.9")
    ]
    return FixtureProject("scipy", files)


def seed_projects() -> list[FixtureProject]:
    """Return the seed catalog (see the module docstring), in a fixed order."""
    shelf_reader = _release("shelf-reader", "0.1", "2020-01-02", wheel_tags=(("py2", "none", "any"),))
    demo_lib = [
        *_release("mf-demo-lib", "1.0", "2023-05-02", requires_python=">=3.8"),
        *_release("mf-demo-lib", "2.0", "2024-03-12", requires_python=">=3.8"),
        *_release("mf-demo-lib", "2.1", "2024-04-09", sdist=False, requires_python=">=3.8", yanked="broken"),
    ]
    demo_app = _release(
        "mf-demo-app", "1.0", "2024-06-20", requires_dist=("mf-demo-lib>=1.0",), requires_python=">=3.8"
    )
    return [
        FixtureProject("shelf-reader", shelf_reader),
        _django(),
        _pip_tools(),
        _scipy(),
        FixtureProject("mf-demo-lib", demo_lib),
        FixtureProject("mf-demo-app", demo_app),
    ]
