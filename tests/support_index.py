"""Fixtures for fixture indexes: real tiny wheels and sdists, served over loopback HTTP.

- ``seed_index`` (session): the seed catalog (``mirrorflow.fixtureindex.catalog``) built once and served;
  yields the ``RunningIndex`` (``.url`` is the simple root, ``.hits`` counts requests per path).
- ``serve_projects(projects, tmp_path, mode=...)``: build and serve custom projects, as a context manager.
- ``index_http_client``: an ``httpx.Client`` from ``build_http_client``, closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mirrorflow.fixtureindex.builder import FixtureProject, build_index
from mirrorflow.fixtureindex.catalog import seed_projects
from mirrorflow.fixtureindex.server import Mode, RunningIndex, serve_index
from mirrorflow.tasks.index_client import build_http_client

__all__ = ["index_http_client", "seed_index", "serve_projects"]


@contextmanager
def serve_projects(
    projects: Iterable[FixtureProject],
    tmp_path: Path,
    *,
    mode: Mode = "negotiate",
    ranges: bool = False,
    etags: bool = False,
) -> Iterator[RunningIndex]:
    """Build ``projects`` under ``tmp_path / "index"`` and serve them until the block ends
    (``ranges``: files answer range requests with 206; ``etags``: pages answer If-None-Match with 304)."""
    root = tmp_path / "index"
    build_index(projects, root)
    with serve_index(root, mode=mode, ranges=ranges, etags=etags) as running:
        yield running


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIndex]:
    """The seed catalog, built once per session and served on loopback."""
    with serve_projects(seed_projects(), tmp_path_factory.mktemp("seed-index")) as running:
        yield running


@pytest.fixture
def index_http_client() -> Iterator[httpx.Client]:
    """A pooled client as production builds it (HTTP/2 on: over plain http it falls back to HTTP/1.1)."""
    with build_http_client(concurrency=4, timeout=10.0) as client:
        yield client
