"""Fixtures for the index server: its request log, collected per test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

__all__ = ["access_lines"]


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
