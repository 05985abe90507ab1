"""A sync's one configuration (``mirrorflow.tasks.config.SyncConfig``), built at the flow's entry point from the
settings (environment), the remote's fields (catalog row or flow parameter) and the simple root found.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from mirrorflow.flows.remote_spec import RemoteFields, filter_spec_of
from mirrorflow.flows.runtime import http_spec_for, store_spec_for
from mirrorflow.flows.settings import Settings
from mirrorflow.tasks.config import Policy, SyncConfig
from mirrorflow.tasks.listing import filter_fingerprint

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_RETRIES", "sync_config"]

DEFAULT_CONCURRENCY = 10
DEFAULT_RETRIES = 3


def sync_config(
    settings: Settings,
    fields: RemoteFields,
    *,
    repository: str,
    repository_id: int,
    remote: str,
    index_url: str,
    mirror: bool,
    blocklist: tuple[str, ...] = (),
    advisories: str = "",
) -> SyncConfig:
    """The one configuration of a sync, from the settings, the remote and the simple root found.

    ``blocklist``: the repository's entries (``mirrorflow.storage.blocklists``). They are part of the
    filter fingerprint, so that a changed blocklist makes the next sync re-evaluate every project (an
    entry removed brings its files back).

    ``advisories``: a digest of the imported advisories (``mirrorflow.storage.advisories``), empty
    when there are none. With the remote's ``block_advisories``, it too is part of the fingerprint:
    an import that changes them re-evaluates every project (a withdrawn advisory lets files back).
    """
    concurrency = fields.download_concurrency or DEFAULT_CONCURRENCY
    http = http_spec_for(fields, concurrency=concurrency, max_page_bytes=settings.max_page_bytes)
    remote_fields = fields.model_dump()
    prefixes = tuple(fields.block_advisories) if advisories else ()
    folded = blocklist + ((f"(advisories)\0{advisories}\0{','.join(sorted(prefixes))}",) if prefixes else ())
    # keep_quarantined is folded in like an entry, only when set: memories recorded before it stay valid.
    marks = (*folded, "\0keep_quarantined") if fields.keep_quarantined else folded
    fingerprint = _with_blocklist(filter_fingerprint(remote_fields, mirror=mirror), marks)
    additive_or_mirror = _with_blocklist(filter_fingerprint(remote_fields, mirror=True), marks)
    return SyncConfig(
        sync_id=str(uuid.uuid4()),
        repository=repository,
        repository_id=repository_id,
        remote=remote,
        policy=Policy(fields.policy),
        spec=filter_spec_of(remote_fields),
        mirror=mirror,
        now=datetime.now(UTC),
        concurrency=concurrency,
        attempts=1 + (fields.max_retries if fields.max_retries is not None else DEFAULT_RETRIES),
        failure_policy=fields.failure_policy,
        max_failed_percent=fields.max_failed_percent,
        fingerprint=fingerprint,
        accepted_fingerprints=(fingerprint, additive_or_mirror),
        catalog_url=settings.catalog_url,
        store=store_spec_for(settings),
        http=replace(http, index_url=index_url),
        batch_size=settings.batch_size,
        max_file_bytes=settings.max_file_bytes,
        blocklist=tuple(sorted(blocklist)),
        block_advisories=prefixes,
        connection_backoff=settings.retry_backoff,
    )


def _with_blocklist(fingerprint: str, blocklist: tuple[str, ...]) -> str:
    """``fingerprint`` unchanged without a blocklist (memories recorded before blocklists stay valid)."""
    if not blocklist:
        return fingerprint
    text = "\0".join((fingerprint, *sorted(blocklist)))
    return hashlib.sha256(text.encode()).hexdigest()
