"""Publish a repository version to an S3 bucket (``--to s3://bucket/prefix``): the static tree of
``mirrorflow.server.publish`` as objects, for an S3 website endpoint or a CDN in front of the bucket.

The keys under the prefix are the directory tree's (``simple/index.html``, ``simple/<project>/index.html``,
``index.v1_html``, ``index.v1_json``, ``files/<sha256>/<filename>``, ``.metadata`` and
``.provenance``), with each page's media type as its ``Content-Type``, and ``.mirrorflow-publication``: the manifest, every key
of the publication with the sha256 of its bytes. (No ``nginx.conf``: see docs/serving.md for the
``Accept`` rewrite a CDN does instead.)

**Atomic for readers, object by object** (S3 has no rename of many keys, and a pointer object would
need every reader to follow it, which pip does not). Objects are written in an order that never lets
a reader see a link to something missing:

0. the keys it may upload that no manifest names yet go into ``.mirrorflow-publication.pending``;
1. new distribution files and ``.metadata`` files (content-addressed keys: a key never changes),
   and new or changed ``.provenance`` objects;
2. changed project pages (each page is replaced in one PUT: the old page or the new, never half);
3. the listing pages (so a project is listed only once its page exists);
4. pages of projects the version no longer holds are removed, then the manifest is written;
5. files no longer linked are removed one publication later (those the manifest before this one
   retired), so a reader holding a page from the publication before keeps working; then the
   pending object is removed.

Between 2 and 3 a reader can see some projects' new pages beside others' old ones, each complete
and each linking only files that exist: the same view a reader of a live index has while it
uploads. A failed publication leaves every page the old or the new one, the manifest the old one.

**No orphans**: a publication that fails while copying files (1) removes what it uploaded, as no page
links it yet. One that fails later (or cannot remove them) leaves its keys in the pending object;
the next publication takes them as part of the one before: their pages go at 4, their files are
retired at 5 and removed one publication later (a reader may hold a page of the failed attempt).

**Incremental**: a key the manifest before holds with the same sha256 is not uploaded again
(files by key, pages by digest). One publisher at a time per prefix (nothing locks a bucket).

The pages say what ``publish``'s (and serve's) say: the blocklist and blocking advisories apply,
PEP 792 statuses and PEP 740 provenance are carried (``mirrorflow.server.publish.version_pages``). Errors: ``PublishError`` (``to``: no such bucket, a prefix
holding objects but no manifest; and ``publish``'s own), naming the field and value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from mirrorflow.server.pages import HTML
from mirrorflow.server.provenance import PROVENANCE_SUFFIX, PROVENANCE_TYPE
from mirrorflow.server.publish import (
    MARKER,
    PAGES,
    PublishError,
    VersionToPublish,
    load_version,
    version_pages,
)
from mirrorflow.storage.artifacts import ArtifactStore, ArtifactStoreError
from mirrorflow.storage.records import PageFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.core_metadata import WheelMetadataError, metadata_from_wheel

__all__ = ["PENDING", "Bucket", "BucketPublished", "publish_to_bucket"]

#: The side object naming the keys a publication under way may have uploaded, before any manifest does.
PENDING = MARKER + ".pending"

_FILE_TYPE = "application/octet-stream"
_METADATA_TYPE = "text/plain; charset=utf-8"
_MANIFEST_TYPE = "application/json"


class Bucket(Protocol):
    """Where the objects go (``mirrorflow.storage.s3_publication.PublicationBucket``); keys are relative."""

    def bucket_exists(self) -> bool: ...
    def read(self, key: str) -> bytes | None: ...
    def first_key(self) -> str | None: ...
    def put(self, key: str, body: bytes, *, content_type: str) -> None: ...
    def put_chunks(self, key: str, chunks: Iterable[bytes], *, size: int, content_type: str) -> None: ...
    def remove(self, keys: list[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class BucketPublished:
    """What ``publish_to_bucket`` did: ``uploaded`` objects (files, metadata and pages), ``unchanged``
    ones already there, ``removed`` ones (pages of projects gone, files retired a publication ago);
    ``provenance`` and ``provenance_missing`` as ``Published``'s."""

    repository: str
    version: int
    to: str
    projects: int
    files: int
    metadata: int
    uploaded: int
    unchanged: int
    removed: int
    blocked: int
    provenance: int = 0
    provenance_missing: int = 0


def publish_to_bucket(
    serving: ServingCatalog, store: ArtifactStore, repository: str, version: int | None, bucket: Bucket
) -> BucketPublished:
    """Write version ``version`` (None: the latest) of ``repository`` under ``bucket``'s prefix.

    Raises ``PublishError``; store and bucket errors become one too (field ``to`` or ``file``).
    """
    try:
        before = _manifest(bucket)  # refused before anything is read or written
        loaded = load_version(serving, repository, version)
        pending = _Pending.record(bucket, before, _keys(loaded))
        writer = _BucketWriter(store, bucket, before)
        try:
            pages = {
                normalized: [writer.file(f, loaded.provenance.get(f.sha256)) for f in files]
                for normalized, files in loaded.pages.items()
            }
        except BaseException:
            pending.undo()  # no page links this attempt's uploads yet
            raise
        for key, body, media_type in version_pages(loaded, pages):  # projects' pages, then the listing
            writer.page(key, body, media_type)
        previous = {**pending.stale, **before.get("objects", {})}  # a failed attempt's keys too
        gone_pages = [key for key in previous if key.startswith("simple/") and key not in writer.objects]
        bucket.remove(gone_pages)
        retired = {k: v for k, v in previous.items() if k.startswith("files/") and k not in writer.objects}
        manifest = {
            "repository": repository,
            "version": loaded.number,
            "projects": len(loaded.projects),
            "objects": writer.objects,
            "retired": retired,
        }
        bucket.put(
            MARKER, (json.dumps(manifest, sort_keys=True) + "\n").encode(), content_type=_MANIFEST_TYPE
        )
        expired = [
            key for key in before.get("retired", {}) if key not in writer.objects and key not in retired
        ]
        bucket.remove(expired)
        pending.done()
    except ArtifactStoreError as exc:
        raise PublishError("to", str(bucket), str(exc)) from exc
    return BucketPublished(
        repository,
        loaded.number,
        str(bucket),
        len(loaded.projects),
        writer.files,
        writer.metadata,
        writer.uploaded,
        writer.unchanged,
        len(gone_pages) + len(expired),
        loaded.blocked,
        writer.provenance,
        loaded.provenance_missing,
    )


def _manifest(bucket: Bucket) -> dict[str, dict[str, str]]:
    """The manifest of the publication there now ({}: none); refuse a prefix holding something else."""
    if not bucket.bucket_exists():
        raise PublishError("to", str(bucket), "no such bucket")
    pending = _pending(bucket)
    data = bucket.read(MARKER)
    if data is None:
        found = bucket.first_key()
        if found is not None and pending is None:
            raise PublishError("to", str(bucket), f"holds {found!r} but no publication: give an empty prefix")
        return {"pending": pending or {}}  # nothing, or what a first publication that failed left
    try:
        manifest = json.loads(data)
        if not isinstance(manifest.get("objects"), dict) or not isinstance(manifest.get("retired", {}), dict):
            raise ValueError("no objects")
    except ValueError as exc:  # JSONDecodeError included
        raise PublishError("to", str(bucket), f"has an unreadable {MARKER!r}: {exc}") from None
    return {"objects": manifest["objects"], "retired": manifest.get("retired", {}), "pending": pending or {}}


def _pending(bucket: Bucket) -> dict[str, str] | None:
    """The keys the pending object names (None: there is none), each with an unknown digest ("")."""
    data = bucket.read(PENDING)
    if data is None:
        return None
    try:
        keys = json.loads(data)
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ValueError("not a list of keys")
    except ValueError as exc:  # JSONDecodeError included
        raise PublishError("to", str(bucket), f"has an unreadable {PENDING!r}: {exc}") from None
    return dict.fromkeys(keys, "")


def _file_key(file: PageFile) -> str:
    return f"files/{file.sha256}/{file.filename}"


def _keys(version: VersionToPublish) -> Iterator[str]:
    """Every key a publication of ``version`` may write (a wheel's ``.metadata`` whether or not it
    has one)."""
    for files in version.pages.values():
        for file in files:
            yield _file_key(file)
            if file.core_metadata_sha256 is not None or file.filename.endswith(".whl"):
                yield _file_key(file) + ".metadata"
            if file.sha256 in version.provenance:
                yield _file_key(file) + PROVENANCE_SUFFIX
    for normalized in [*version.pages, *version.status_only]:
        for name, _ in PAGES:
            yield f"simple/{normalized}/{name}"
    for name, _ in PAGES:
        yield f"simple/{name}"


class _Pending:
    """The keys this publication may upload that no manifest names (``new``), and those an earlier,
    failed one left (``stale``: perhaps linked by pages it wrote), kept in ``PENDING`` until the
    manifest names or retires them."""

    def __init__(self, bucket: Bucket, stale: dict[str, str], new: list[str]) -> None:
        self.bucket, self.stale, self.new = bucket, stale, new

    @classmethod
    def record(cls, bucket: Bucket, before: dict[str, dict[str, str]], keys: Iterable[str]) -> _Pending:
        """Write the pending object (before the first upload) when there is anything new to name."""
        known = {**before.get("retired", {}), **before.get("objects", {})}
        stale = {key: "" for key in before.get("pending", {}) if key not in known}
        new = sorted({key for key in keys if key not in known and key not in stale})
        if new:
            cls._write(bucket, [*stale, *new])
        return cls(bucket, stale, new)

    def undo(self) -> None:
        """After a failure before any page changed: remove this attempt's uploads, and name only the
        stale keys again. Best effort: what it cannot remove stays named for the next publication."""
        if not self.new:
            return
        try:
            self.bucket.remove(self.new)
            if self.stale:
                self._write(self.bucket, list(self.stale))
            else:
                self.bucket.remove([PENDING])
        except (ArtifactStoreError, PublishError):
            pass  # the error that failed the publication is the one to report

    def done(self) -> None:
        """After the manifest: it names or retires every pending key, and the gone pages are removed."""
        if self.stale or self.new:
            self.bucket.remove([PENDING])

    @staticmethod
    def _write(bucket: Bucket, keys: list[str]) -> None:
        bucket.put(PENDING, (json.dumps(keys) + "\n").encode(), content_type=_MANIFEST_TYPE)


class _BucketWriter:
    """Uploads what the manifest before does not hold; records every key it publishes."""

    def __init__(self, store: ArtifactStore, bucket: Bucket, before: dict[str, dict[str, str]]) -> None:
        self.store, self.bucket = store, bucket
        self.before = {**before.get("retired", {}), **before.get("objects", {})}
        self.objects: dict[str, str] = {}
        self.files = self.metadata = self.uploaded = self.unchanged = self.provenance = 0

    def page(self, key: str, body: bytes, media_type: str) -> None:
        digest = hashlib.sha256(body).hexdigest()
        self.objects[key] = digest
        if self.before.get(key) == digest:
            self.unchanged += 1
            return
        content_type = f"{HTML}; charset=utf-8" if media_type == HTML else media_type
        self.bucket.put(key, body, content_type=content_type)
        self.uploaded += 1

    def file(self, file: PageFile, provenance: bytes | None) -> PageFile:
        """Upload a file (a wheel's core metadata, its ``provenance`` object) unless there; return it
        as the page lists it."""
        key = _file_key(file)
        self._copy(key, file.sha256, _FILE_TYPE)
        self.files += 1
        if provenance is not None:  # by its bytes' digest, as a page: an upstream may change it
            self.page(key + PROVENANCE_SUFFIX, provenance, PROVENANCE_TYPE)
            self.provenance += 1
        digest = file.core_metadata_sha256
        if digest is not None:
            self._copy(key + ".metadata", digest, _METADATA_TYPE)
        elif file.filename.endswith(".whl"):
            digest = self._metadata_from_wheel(key, file)
        if digest is None:  # the bucket holds no metadata of it: the page offers none
            return file._replace(has_metadata=False, metadata_sha256=None, artifact_sha256=None)
        self.metadata += 1
        return file._replace(core_metadata_sha256=digest)

    def _copy(self, key: str, sha256: str, content_type: str) -> None:
        self.objects[key] = sha256
        if self.before.get(key) == sha256:
            self.unchanged += 1
            return
        try:
            size = self.store.stat(sha256)
            chunks = self.store.open_chunks(sha256)
            try:
                self.bucket.put_chunks(key, chunks, size=size, content_type=content_type)
            finally:
                close = getattr(chunks, "close", None)  # a ChunkReader releases its file or connection
                if close is not None:
                    close()
        except ArtifactStoreError as exc:
            raise PublishError("file", key, f"cannot be copied from the store: {exc}") from exc
        self.uploaded += 1

    def _metadata_from_wheel(self, key: str, file: PageFile) -> str | None:
        metadata = key + ".metadata"
        known = self.before.get(metadata)
        if known is not None and file.metadata_sha256 in (None, known):  # read and checked before
            self.objects[metadata] = known
            self.unchanged += 1
            return known
        try:
            data = metadata_from_wheel(self.store.open_chunks(file.sha256), filename=file.filename)
        except WheelMetadataError:
            return None  # a wheel without readable metadata: published without it
        except ArtifactStoreError as exc:
            raise PublishError("file", key, f"cannot be read from the store: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if file.metadata_sha256 is not None and digest != file.metadata_sha256:
            return None  # it is not what the index said it is: not offered
        self.objects[metadata] = digest
        self.bucket.put(metadata, data, content_type=_METADATA_TYPE)
        self.uploaded += 1
        return digest
