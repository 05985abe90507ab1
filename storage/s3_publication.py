"""``PublicationBucket``: the objects of a published version under ``s3://<bucket>/<prefix>/``, via minio.

The port ``mirrorflow.server.publish_s3`` writes through: read one small object, tell whether the
prefix holds anything, put an object (bytes or a stream of known size, with its content type),
remove objects. Keys are relative to the prefix.

Vendor errors are translated here, as in ``mirrorflow.storage.s3_store``: ``S3Error`` of a missing key
on a read -> None; transient codes, 5xx and connection errors -> ``StoreUnavailable``; any other
``S3Error`` (NoSuchBucket, AccessDenied ...) -> ``ArtifactStoreError``; each chained ``from exc``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from mirrorflow.storage.artifacts import ArtifactStoreError, StoreUnavailable
from mirrorflow.storage.s3_store import make_http_client

__all__ = ["PublicationBucket"]

_TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


class PublicationBucket:
    """Objects under ``prefix`` (no leading or trailing slash; may be empty) of ``bucket``."""

    def __init__(self, client: Minio, bucket: str, prefix: str) -> None:
        self._client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    @classmethod
    def from_settings(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        prefix: str,
        *,
        secure: bool,
        region: str | None = None,
    ) -> PublicationBucket:
        """Build the client (``endpoint`` is ``host:port``) as ``S3Store.from_settings`` does."""
        client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=make_http_client(),
        )
        return cls(client, bucket, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def bucket_exists(self) -> bool:
        with self._translated():
            return bool(self._client.bucket_exists(self.bucket))

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        try:
            with self._translated():
                response = self._client.get_object(self.bucket, self._name(key))
        except ArtifactStoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "NoSuchKey":
                return None
            raise
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def first_key(self) -> str | None:
        """Any one key under the prefix (None: the prefix holds nothing)."""
        with self._translated():
            for found in self._client.list_objects(self.bucket, prefix=self._name(""), recursive=True):
                name = found.object_name or ""
                return name[len(self._name("")) :]
        return None

    def put(self, key: str, body: bytes, *, content_type: str) -> None:
        with self._translated():
            self._client.put_object(
                self.bucket, self._name(key), io.BytesIO(body), len(body), content_type=content_type
            )

    def put_chunks(self, key: str, chunks: Iterable[bytes], *, size: int, content_type: str) -> None:
        """Upload a stream of ``size`` bytes (a store's ``open_chunks``) without spooling it."""
        with self._translated():
            self._client.put_object(
                self.bucket,
                self._name(key),
                cast(BinaryIO, _ChunkStream(iter(chunks))),
                size,
                content_type=content_type,
            )

    def remove(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._translated():
            errors = list(
                self._client.remove_objects(self.bucket, (DeleteObject(self._name(key)) for key in keys))
            )
        if errors:
            raise ArtifactStoreError(f"removing objects from {self} failed: {errors[0]}")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except S3Error as exc:
            if exc.code in _TRANSIENT_CODES:
                raise StoreUnavailable(f"{self} is unavailable: {exc.code}") from exc
            raise ArtifactStoreError(f"S3 request on {self} failed: {exc.code}: {exc.message}") from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StoreUnavailable(f"{self} is unavailable: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach the S3 endpoint of {self}: {exc}") from exc


class _ChunkStream(io.RawIOBase):
    """A readable stream over chunks, for ``put_object`` (which reads it in parts)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
