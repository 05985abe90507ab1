"""A ``SyncConfig`` for tests that run the stages by hand: every field named, sensible defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from mirrorflow.tasks.config import HttpSpec, Policy, StoreSpec, SyncConfig
from mirrorflow.tasks.filters import FilterSpec
from mirrorflow.tasks.outcome import FailurePolicy


def sync_config(**fields: Any) -> SyncConfig:
    """A config for one hand-run sync; ``fields`` override the defaults (``mirror`` must be given)."""
    values: dict[str, Any] = {
        "sync_id": str(uuid.uuid4()),
        "repository": "foo",
        "repository_id": 1,
        "remote": "bar",
        "policy": Policy.ON_DEMAND,
        "spec": FilterSpec.build(),
        "now": datetime.now(UTC),
        "concurrency": 2,
        "attempts": 3,
        "failure_policy": FailurePolicy.AUTO,
        "max_failed_percent": 5.0,
        "fingerprint": "",
        "accepted_fingerprints": (),
        "catalog_url": "sqlite://",
        "store": StoreSpec(root="/nonexistent"),
        "http": HttpSpec(index_url="https://index.example/simple/", concurrency=2, max_page_bytes=2**20),
        "connection_backoff": 0.05,  # as MIRRORFLOW_RETRY_BACKOFF in support_prefect
    }
    values.update(fields)
    return SyncConfig(**values)
