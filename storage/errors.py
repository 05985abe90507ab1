"""The root of mirrorflow's own errors: what a user can act on, as opposed to a bug.

Every error mirrorflow raises for a condition outside the code (bad input, a missing object, an
upstream or a store failing) derives from ``MirrorflowError``; the CLI prints those as one line
(``Error: ...``) and exit 1, and lets anything else surface as a bug, with its traceback. Errors
that were ``ValueError`` before stay ``ValueError`` as well (``InvalidFilter(MirrorflowError,
ValueError)``), so callers that catch ``ValueError`` keep working.

The tree, each branch drawn in its own module's docstring::

    MirrorflowError
     ├── mirrorflow.storage.catalog.CatalogError         NotFound, AlreadyExists, locks.RepositoryBusy
     ├── mirrorflow.storage.artifacts.ArtifactStoreError ArtifactNotFound, DigestMismatch, ArtifactTooLarge,
     │                                        StoreUnavailable
     ├── mirrorflow.storage.secrets.SecretError          InvalidSecretKey, NoSecretKey, WrongSecretKey
     ├── mirrorflow.tasks.filters.InvalidFilter          a remote's filter field (also a ValueError)
     ├── mirrorflow.tasks.filenames.InvalidFilename      a distribution filename (also a ValueError)
     ├── mirrorflow.tasks.simple_fields.InvalidPage      an upstream page that cannot be parsed (also a ValueError)
     ├── mirrorflow.tasks.core_metadata.WheelMetadataError
     ├── mirrorflow.tasks.index_client.IndexClientError  ProjectNotFound, UpstreamError, TransientError
     ├── mirrorflow.tasks.commit.SyncFailed              a sync that could not complete (no version made)
     ├── mirrorflow.server.upstream.ServeError           a file request that cannot be served
     ├── mirrorflow.server.hrefs.InvalidHref             a href that names no repository version (also a ValueError)
     └── flows: UsageError, InvalidParameters, NoRemote, runners.TaskRunnerUnavailable

This module imports nothing, so that decision code (``mirrorflow.tasks.filters``) may import it and stay pure.
"""

from __future__ import annotations

__all__ = ["MirrorflowError"]


class MirrorflowError(Exception):
    """Base of every error mirrorflow raises on purpose; its message is one line for the user."""
