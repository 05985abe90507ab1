"""One sync's configuration: a frozen, picklable value built once, at the flow's entry point.

Every stage reads what it needs from ``SyncConfig``: the decisions' inputs (filters, policy, the
moment the sync started, retries), the repository and the run's id, and how to reach the catalog,
the artifact store and the upstream (``StoreSpec``, ``HttpSpec``: plain values, so that a task on a
Dask worker can build its own clients from them, ``mirrorflow.tasks.clients``). The wire formats (settings from
the environment, a remote's fields, flow parameters) are validated in ``flows`` and end here.

Pure: imports only the standard library and pure modules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from mirrorflow.storage.schema import Policy
from mirrorflow.tasks.filter_spec import FilterSpec
from mirrorflow.tasks.outcome import FailurePolicy

__all__ = ["HttpSpec", "Policy", "StoreSpec", "SyncConfig", "SyncMode", "Scope"]


class SyncMode(enum.StrEnum):
    """How a sync chose its pages (``mirrorflow.tasks.listing.plan_projects``)."""

    FULL = "full"
    SERIAL = "serial"
    CONDITIONAL = "conditional"


class Scope(enum.StrEnum):
    """What the commit replaces: every project (``all``), or only those the sync touched."""

    ALL = "all"
    TOUCHED = "touched"


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """The artifact store: a directory (``root``) or an S3 bucket (``endpoint`` set)."""

    root: str | None = None
    endpoint: str | None = None
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    bucket: str = "mirrorflow"
    secure: bool = True
    region: str | None = None
    prefix: str = ""
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class HttpSpec:
    """The upstream index and how to reach it (a remote's download settings)."""

    index_url: str
    concurrency: int
    max_page_bytes: int
    timeout: float = 300.0
    connect_timeout: float | None = None
    read_timeout: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    proxy_url: str | None = None
    tls_validation: bool = True
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    proxy_username: str | None = None
    proxy_password: str | None = field(default=None, repr=False)
    #: Requests per second to the upstream, for each process of the sync (None or 0: no limit).
    rate_limit: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    """Everything one sync needs, fixed when it starts. Keyword-only: each field is named where it is built."""

    sync_id: str
    repository: str
    repository_id: int
    #: The remote's name (``(inline)`` for a flow parameter's inline remote).
    remote: str
    policy: Policy
    spec: FilterSpec
    #: Remove what the remote no longer selects (True), or only add (False). No default: say which.
    mirror: bool
    #: The moment the sync started: the filters' "too new" cutoff is computed from it.
    now: datetime
    concurrency: int
    attempts: int
    failure_policy: FailurePolicy
    max_failed_percent: float
    #: The filter fingerprint the commit records (``tasks.listing.filter_fingerprint``).
    fingerprint: str
    #: The fingerprints under which the serial memory still describes what this sync would select.
    accepted_fingerprints: tuple[str, ...]
    catalog_url: str
    store: StoreSpec
    http: HttpSpec
    #: Projects per mapped batch (each batch is a few task runs).
    batch_size: int = 200
    #: First wait before refetching a page older than the listing promised (doubles each time).
    stale_backoff: float = 1.0
    #: Seconds between the progress lines of a download still running (``mirrorflow.tasks.progress``).
    progress_every: float = 10.0
    #: Largest file accepted (settings.max_file_bytes): a larger declared size is skipped unfetched.
    max_file_bytes: int | None = None
    #: The repository's blocklist entries (``mirrorflow.tasks.blocklist``), read when the sync started.
    blocklist: tuple[str, ...] = ()
    #: The remote's ``block_advisories`` prefixes, empty when no advisory is imported (nothing to look up).
    block_advisories: tuple[str, ...] = ()
    #: First wait before retrying a request that lost its connection (settings.retry_backoff).
    connection_backoff: float = 2.0

    @property
    def clients_key(self) -> tuple[str, StoreSpec, HttpSpec]:
        """What the clients are built from: equal keys share clients in a worker process."""
        return (self.catalog_url, self.store, self.http)

    @property
    def whole_index(self) -> bool:
        """True when the remote names no includes: the sync covers the whole listing."""
        return not self.spec.includes
