"""Fixture indexes for tests, the README demo and benchmarks.

Build PyPI-compatible indexes of real, installable wheels and sdists (``builder``), serve them on
loopback with PEP 691 content negotiation (``server``), and get the seed catalog (``catalog``)::

    python -m mirrorflow.fixtureindex build --root /tmp/index
    python -m mirrorflow.fixtureindex serve --root /tmp/index --port 8000

Not used by mirrorflow itself.
"""

# See flows/__init__.py: the folder installs as mirrorflow.fixtureindex, and only under that name.
if not __name__.startswith("mirrorflow."):
    raise ImportError(
        f"import mirrorflow.{__name__}, not {__name__}: the folder installs as mirrorflow.{__name__}"
    )

from mirrorflow.fixtureindex.builder import (  # noqa: E402
    FixtureFile,
    FixtureProject,
    Index,
    build_index,
    make_legacy,
    make_sdist,
    make_wheel,
)
from mirrorflow.fixtureindex.catalog import seed_projects  # noqa: E402
from mirrorflow.fixtureindex.server import RunningIndex, serve_index  # noqa: E402

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
