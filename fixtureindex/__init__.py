"""Fixture indexes for tests, the README demo and benchmarks.

Build PyPI-compatible indexes of real, installable wheels and sdists (``builder``), serve them on
loopback with PEP 691 content negotiation (``server``), and get the seed catalog (``catalog``)::

    python -m mirrorflow.fixtureindex build --root /tmp/index
    python -m mirrorflow.fixtureindex serve --root /tmp/index --port 8000

Not used by mirrorflow itself.
"""

from mirrorflow.fixtureindex.builder import (
    FixtureFile,
    FixtureProject,
    Index,
    build_index,
    make_legacy,
    make_sdist,
    make_wheel,
)
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import RunningIndex, serve_index

__all__ = [
    "FixtureFile",
    "FixtureProject",
    "Index",
    "RunningIndex",
    "build_index",
    "make_legacy",
    "make_sdist",
    "make_wheel",
    "seed_projects",
    "serve_index",
]
