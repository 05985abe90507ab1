"""Fixtures for the index server: its request log, collected per test; ``NoUpstreams`` for an app
whose repositories never reach an upstream."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["NoUpstreams", "access_lines"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[Callable[[], list[str]]]:
    """The server's request log lines (one per request), collected during the test."""
    logger = logging.getLogger("mirrorflow.server.access")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: list(handler.lines)
    logger.removeHandler(handler)
    logger.setLevel(level)


class NoUpstreams:
    """``mirrorflow.server.upstream.Upstreams`` with no remote: a fallback on a closed loopback port."""

    def remote(self, name: str) -> None:
        return None

    def fallback(self) -> Any:
        from mirrorflow.tasks.index_client import IndexClient, build_http_client

        return IndexClient("http://127.0.0.1:9/", client=build_http_client(timeout=1.0))
