"""``autopublish``: after a sync commits a version, publish it as static files (``mirrorflow.server.publish``).

A repository publishes automatically when its ``autopublish`` is true and it has a ``publish_to``
directory or ``s3://bucket/prefix`` (``mirrorflow repository update --autopublish --publish-to DIR``;
a bucket on the S3 endpoint of the sync's settings, ``mirrorflow.server.publish_s3``). The version is committed
before publishing starts, and stays committed whatever publishing does: a failed publication is a
warning in the run's log and the sync report's ``publication`` field, never a failed sync.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mirrorflow.server.publish import publish
from mirrorflow.storage.artifacts import ArtifactStore
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.serving import ServingCatalog

if TYPE_CHECKING:
    from mirrorflow.flows.settings import Settings

__all__ = ["publish_after_sync"]


def publish_after_sync(
    catalog: Catalog,
    store: ArtifactStore,
    repository: Any,
    version: int,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    *,
    settings: Settings | None = None,
) -> dict[str, Any] | None:
    """Publish ``version`` of ``repository`` (its catalog row) when it autopublishes.

    Returns the report's ``publication`` field (None: the repository does not autopublish): where,
    which version and what was written, or ``error`` with the one line why it failed. Raises nothing.
    """
    if not repository.autopublish or not repository.publish_to:
        return None
    if repository.publish_to.startswith("s3://"):
        return _publish_to_bucket(catalog, store, repository, version, logger, settings)
    to = Path(repository.publish_to)
    try:
        done = publish(ServingCatalog(catalog), store, repository.name, version, to)
    except Exception as exc:  # the version is committed: publishing must not fail the sync
        return _failed(repository.name, version, str(to), exc, logger)
    logger.info("published %r version %d to %s (%d written)", repository.name, version, to, done.written)
    return {
        "to": str(to),
        "version": version,
        "tree": str(done.tree),
        "written": done.written,
        "linked": done.linked + done.pages_linked,
    }


def _publish_to_bucket(
    catalog: Catalog,
    store: ArtifactStore,
    repository: Any,
    version: int,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    settings: Settings | None,
) -> dict[str, Any]:
    from mirrorflow.flows.cli_publish import bucket_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.server.publish_s3 import publish_to_bucket

    to = repository.publish_to
    try:
        bucket = bucket_for(settings if settings is not None else Settings(), to)
        done = publish_to_bucket(ServingCatalog(catalog), store, repository.name, version, bucket)
    except Exception as exc:  # the version is committed: publishing must not fail the sync
        return _failed(repository.name, version, to, exc, logger)
    logger.info("published %r version %d to %s (%d uploaded)", repository.name, version, to, done.uploaded)
    return {"to": to, "version": version, "written": done.uploaded, "linked": done.unchanged}


def _failed(
    repository: str,
    version: int,
    to: str,
    exc: Exception,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> dict[str, Any]:
    """Log a failed autopublish (the version stays committed) and return its report entry."""
    logger.warning(
        "autopublish of %r version %d to %s failed (the version stays committed): %s",
        repository,
        version,
        to,
        exc,
        exc_info=not _expected(exc),
    )
    return {"to": to, "version": version, "error": f"{type(exc).__name__}: {exc}"}


def _expected(exc: Exception) -> bool:
    """An error a user can act on (no traceback in the log), as opposed to a bug."""
    from mirrorflow.storage.errors import MirrorflowError

    return isinstance(exc, MirrorflowError | OSError)
