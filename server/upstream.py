"""How the server reaches upstream indexes: one ``UpstreamRemote`` per remote, looked up by name.

The entry point (``mirrorflow.flows.cli_serve``) builds these from the catalog's remotes with the same HTTP
settings a sync uses; tests may pass their own ``Upstreams``.

Errors raised to the routes (``mirrorflow.server.app`` turns them into responses)::

    ServeError            .status (404, 502, 503), .message: short text for the client
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.filters import FilterSpec
from mirrorflow.tasks.index_client import IndexClient

__all__ = ["ServeError", "UpstreamRemote", "Upstreams"]


class ServeError(MirrorflowError):
    """A request that cannot be served; ``status`` and a one-line ``message`` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class UpstreamRemote:
    """A remote as the server uses it: its policy, filters and a client for its index."""

    name: str
    policy: str
    spec: FilterSpec
    index: IndexClient


class Upstreams(Protocol):
    def remote(self, name: str | None) -> UpstreamRemote | None:
        """Return the remote named ``name`` (None when it does not exist or ``name`` is None)."""
        ...

    def fallback(self) -> IndexClient:
        """A client for files whose remote is gone: their recorded URL is fetched without settings."""
        ...
