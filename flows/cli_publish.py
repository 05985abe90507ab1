"""``mirrorflow repository publish``: a version as static files for any web server (``mirrorflow.server.publish``),
or as objects in an S3 bucket (``mirrorflow.server.publish_s3``).

A version synced ``on_demand`` or ``streamed`` holds files that were never downloaded: publishing
it is refused by name, unless ``--fetch-missing`` fetches them first, as ``repository export
--fetch-missing`` does (from the upstream with the repository's remote settings, each checked
against its recorded sha256 and size before it is stored; ``mirrorflow.flows.airgap_run.fetch_missing``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from mirrorflow.flows.cli_app import Name, UsageError, check_range, emit, open_catalog, repository_app

if TYPE_CHECKING:
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.artifacts import ArtifactStore
    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.storage.s3_publication import PublicationBucket

__all__ = ["bucket_for", "parse_s3_target", "repository_publish"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]").fullmatch


def parse_s3_target(text: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket[/prefix]``; raise ``UsageError`` naming ``to``.

    >>> parse_s3_target("s3://mirror-site/simple-root/"), parse_s3_target("s3://mirror-site")
    (('mirror-site', 'simple-root'), ('mirror-site', ''))
    >>> parse_s3_target("s3://Bad_Bucket/x")
    Traceback (most recent call last):
    ...
    mirrorflow.flows.cli_app.UsageError: to: 's3://Bad_Bucket/x' does not name an S3 bucket (3-63 of a-z, 0-9, '.', '-')
    """
    parts = urlsplit(text)
    prefix = parts.path.strip("/")
    if not _BUCKET(parts.netloc) or parts.query or parts.fragment:
        raise UsageError(f"to: {text!r} does not name an S3 bucket (3-63 of a-z, 0-9, '.', '-')")
    if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
        raise UsageError(f"to: {text!r} has an empty, '.' or '..' segment in its prefix")
    return parts.netloc, prefix


@repository_app.command("publish")
def repository_publish(
    name: Name,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Directory to write the version to (replaced when it holds one), or s3://bucket/prefix "
            "(on the S3 endpoint of the MIRRORFLOW_S3_* settings).",
        ),
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: latest).")
    ] = None,
    fetch_missing: Annotated[
        bool,
        typer.Option(
            "--fetch-missing",
            help="Fetch files synced on_demand from the upstream (verified) instead of refusing them.",
        ),
    ] = False,
) -> None:
    """Write a version as PEP 503/691 pages, files and .metadata files: serve DIR with any web server."""
    if version is not None:
        check_range("version", version, 0, 2**31 - 1, what="a version number")
    from mirrorflow.flows.runtime import store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.storage.serving import ServingCatalog

    settings = Settings()
    if to.startswith("s3://"):
        bucket = bucket_for(settings, to)  # refused before anything is fetched
        catalog, store = open_catalog(), store_for(settings)
        fetched = _fetch_unstored(catalog, store, name, version) if fetch_missing else 0
        _publish_s3(catalog, store, name, version, bucket, fetched)
        return
    from mirrorflow.server.publish import publish

    path = Path(to)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise UsageError(f"to: {to!r} is a file, not a directory")
    catalog, store = open_catalog(), store_for(settings)
    fetched = _fetch_unstored(catalog, store, name, version) if fetch_missing else 0
    done = publish(ServingCatalog(catalog), store, name, version, path)
    emit(
        {
            "repository": done.repository,
            "version": done.version,
            "to": str(done.to),
            "projects": done.projects,
            "files": done.files,
            "metadata_files": done.metadata,
            "tree": str(done.tree),
            "files_linked_from_before": done.linked,
            "pages_unchanged": done.pages_linked,
            "written": done.written,
            "blocked_files_left_out": done.blocked,
            "provenance_files": done.provenance,
            "provenance_not_fetched": done.provenance_missing,
            "fetched": fetched,
        }
    )


def _fetch_unstored(catalog: Catalog, store: ArtifactStore, name: str, version: int | None) -> int:
    """Fetch, verify and store the files the version would publish that are not stored; how many.

    Raises ``PublishError`` (no such repository or version) or the fetch's own error (a digest
    that does not match: nothing stored for that file), before anything is published.
    """
    from mirrorflow.flows.airgap_run import fetch_missing
    from mirrorflow.server.publish import unstored_files
    from mirrorflow.storage.export import unstored_packages
    from mirrorflow.storage.serving import ServingCatalog

    unstored = unstored_files(ServingCatalog(catalog), name, version)
    if not unstored:
        return 0
    return fetch_missing(catalog, store, name, unstored_packages(catalog, [f.package_id for f in unstored]))


def bucket_for(settings: Settings, to: str) -> PublicationBucket:
    """The bucket ``s3://bucket/prefix`` names, on the S3 endpoint of the settings; raise ``UsageError``."""
    from mirrorflow.storage.s3_publication import PublicationBucket

    bucket_name, prefix = parse_s3_target(to)
    if not settings.s3_endpoint:
        raise UsageError(f"to: {to!r} needs an S3 endpoint: set MIRRORFLOW_S3_ENDPOINT (and its keys)")
    return PublicationBucket.from_settings(
        settings.s3_endpoint,
        settings.s3_access_key or "",
        settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        bucket_name,
        prefix,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def _publish_s3(
    catalog: Catalog,
    store: ArtifactStore,
    name: str,
    version: int | None,
    bucket: PublicationBucket,
    fetched: int,
) -> None:
    from mirrorflow.server.publish_s3 import publish_to_bucket
    from mirrorflow.storage.serving import ServingCatalog

    done = publish_to_bucket(ServingCatalog(catalog), store, name, version, bucket)
    emit(
        {
            "repository": done.repository,
            "version": done.version,
            "to": done.to,
            "projects": done.projects,
            "files": done.files,
            "metadata_files": done.metadata,
            "uploaded": done.uploaded,
            "unchanged": done.unchanged,
            "removed": done.removed,
            "blocked_files_left_out": done.blocked,
            "provenance_files": done.provenance,
            "provenance_not_fetched": done.provenance_missing,
            "fetched": fetched,
        }
    )
