"""``S3Store``: the artifact store port on an S3 bucket (AWS S3, MinIO, Ceph...), via the minio SDK.

Objects are named ``<prefix>/sha256/ab/cd/<sha256>`` (see ``artifacts.artifact_key``). A write is
spooled to a local temporary file and verified first, so nothing unverified ever reaches the
bucket, then uploaded to its final name in one ``fput_object``.

Vendor errors are translated here and nowhere else (errors drawn in ``mirrorflow.storage.artifacts``):

- ``S3Error`` NoSuchKey / NoSuchBucket               -> ``ArtifactNotFound``
- ``S3Error`` SlowDown / ServiceUnavailable / ...,
  ``ServerError`` (5xx), urllib3 connection errors,
  ``MaxRetryError``, timeouts                        -> ``StoreUnavailable`` (transient)
- any other ``S3Error`` (AccessDenied, bad keys ...) -> ``ArtifactStoreError``

all chained with ``from exc`` so the vendor detail stays in the traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from mirrorflow.storage.artifacts import (
    ArtifactNotFound,
    ArtifactStoreError,
    ChunkReader,
    StoredArtifact,
    StoredObject,
    StoreUnavailable,
    artifact_key,
    is_digest,
    spool_chunks,
)

__all__ = ["S3Store", "make_http_client"]

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioServerNotInitialized"}
)


def make_http_client(
    *, connect_timeout: float = 5.0, read_timeout: float = 60.0, retries: int = 2
) -> urllib3.PoolManager:
    """Return a urllib3 pool for ``Minio(http_client=...)`` that gives up quickly.

    minio's own default retries 5 times with 5-minute timeouts, which turns an S3 outage into a
    hung sync; retrying is the job of the Prefect task around us, so the store fails fast.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class S3Store:
    """Artifacts stored as objects in ``bucket``; implements ``mirrorflow.storage.artifacts.ArtifactStore``.

    ``prefix`` namespaces the keys inside a shared bucket. With ``create_bucket`` the bucket is
    created when missing (raises ``StoreUnavailable`` if the endpoint cannot be reached).
    ``max_size`` (bytes, None for no limit) makes ``put_chunks`` refuse larger artifacts.
    """

    def __init__(
        self,
        client: Minio,
        bucket: str,
        *,
        prefix: str = "",
        create_bucket: bool = True,
        max_size: int | None = None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._max_size = max_size
        if create_bucket:
            self._ensure_bucket()

    @classmethod
    def from_settings(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool,
        region: str | None = None,
        prefix: str = "",
        create_bucket: bool = True,
        max_size: int | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 2,
    ) -> S3Store:
        """Build the client (``endpoint`` is ``host:port``, no scheme) and the store.

        Pass ``region`` when known: minio otherwise asks the server for the bucket's location, one
        more request (also before presigning a URL).
        """
        client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=make_http_client(
                connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries
            ),
        )
        return cls(client, bucket, prefix=prefix, create_bucket=create_bucket, max_size=max_size)

    def __repr__(self) -> str:
        return f"S3Store(bucket={self._bucket!r}, prefix={self._prefix!r})"

    @property
    def bucket(self) -> str:
        """The bucket holding the artifacts."""
        return self._bucket

    def object_name(self, sha256: str) -> str:
        """Return the object name of the artifact ``sha256`` in the bucket. Raises ``ValueError``."""
        key = artifact_key(sha256)
        return f"{self._prefix}/{key}" if self._prefix else key

    def put_chunks(self, chunks: Iterable[bytes], *, sha256: str | None, size: int | None) -> StoredArtifact:
        """Verify and store the stream; see ``ArtifactStore.put_chunks``."""
        # fsync=False: the spool is only a staging copy; durability is the bucket's business.
        with spool_chunks(chunks, sha256=sha256, size=size, max_size=self._max_size, fsync=False) as spooled:
            if not self.exists(spooled.sha256):
                # Uploading straight to the final name is safe: an S3 PUT is atomic (the object
                # appears whole or not at all), and a multipart upload (used by fput_object for
                # large files) only becomes visible on CompleteMultipartUpload; minio aborts it on
                # failure (a bucket lifecycle rule, AbortIncompleteMultipartUpload, sweeps the parts
                # of a crashed process). Racing writers PUT identical, verified bytes.
                # sha256=None: a NoSuchBucket here is a misconfiguration, not a missing artifact.
                with self._translated(None):
                    self._client.fput_object(
                        self._bucket,
                        self.object_name(spooled.sha256),
                        str(spooled.path),
                        content_type="application/octet-stream",
                        metadata={"x-amz-meta-sha256": spooled.sha256},
                    )
            return StoredArtifact(sha256=spooled.sha256, size=spooled.size, key=artifact_key(spooled.sha256))

    def deferred(self) -> AbstractContextManager[S3Store]:
        """The store itself: an S3 PUT is durable when it returns, so there is nothing to defer."""
        return nullcontext(self)

    def exists(self, sha256: str) -> bool:
        """Return whether the artifact is stored (a missing bucket holds nothing)."""
        try:
            self.stat(sha256)
        except ArtifactNotFound:
            return False
        return True

    def open_chunks(self, sha256: str, *, chunk_size: int = 1 << 16) -> ChunkReader:
        """Stream the artifact's bytes (a closeable iterator); raises ``ArtifactNotFound`` at the call."""
        if chunk_size <= 0:
            raise ValueError(f"invalid chunk_size {chunk_size!r}: expected a positive number of bytes")
        name = self.object_name(sha256)
        with self._translated(sha256):
            response = self._client.get_object(self._bucket, name)

        def chunks() -> Iterator[bytes]:
            with self._translated(sha256):
                yield from response.stream(chunk_size)

        def release() -> None:
            response.close()
            response.release_conn()

        return ChunkReader(chunks(), release)

    def stat(self, sha256: str) -> int:
        """Return the artifact's size in bytes; raises ``ArtifactNotFound``."""
        name = self.object_name(sha256)
        with self._translated(sha256):
            result = self._client.stat_object(self._bucket, name)
        if result.size is None:  # only for directory markers, which content keys never are
            raise ArtifactStoreError(f"object {name!r} in bucket {self._bucket!r} reports no size")
        return result.size

    def delete(self, sha256: str) -> None:
        """Remove the artifact; a missing object (or bucket) is not an error."""
        name = self.object_name(sha256)
        try:
            with self._translated(sha256):
                self._client.remove_object(self._bucket, name)
        except ArtifactNotFound:
            pass

    def stored_objects(self) -> Iterator[StoredObject]:
        """Yield every object under this store's ``sha256/`` prefix with its last-modified time."""
        prefix = f"{self._prefix}/sha256/" if self._prefix else "sha256/"
        with self._translated(None):
            for obj in self._client.list_objects(self._bucket, prefix=prefix, recursive=True):
                name = (obj.object_name or "").rsplit("/", 1)[-1]
                if is_digest(name) and obj.last_modified is not None:
                    yield StoredObject(name, obj.last_modified.astimezone(UTC))

    def remove_spool(self, *, older_than: datetime) -> int:
        """Return 0: an S3 store spools in the system's temporary directory, never in the bucket."""
        return 0

    def url_for(self, sha256: str, *, filename: str, expires: timedelta) -> str | None:
        """Return a presigned GET URL, valid for ``expires``, that downloads as ``filename``.

        Signing is local when the client knows its region; existence is not checked. Raises
        ``ValueError`` if ``expires`` is outside what S3 accepts (1 second to 7 days).
        """
        name = self.object_name(sha256)
        with self._translated(sha256):
            return self._client.presigned_get_object(
                self._bucket,
                name,
                expires=expires,
                response_headers={"response-content-disposition": _content_disposition(filename)},
            )

    def _ensure_bucket(self) -> None:
        with self._translated(None):
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket)
            except S3Error as exc:
                # Another process created it between our check and our request.
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    @contextmanager
    def _translated(self, sha256: str | None) -> Iterator[None]:
        """Turn minio and urllib3 errors raised inside the block into ``mirrorflow.storage.artifacts`` errors."""
        try:
            yield
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES and sha256 is not None:
                raise ArtifactNotFound(sha256) from exc
            if exc.code in _TRANSIENT_CODES:
                raise StoreUnavailable(f"S3 bucket {self._bucket!r} is unavailable: {exc.code}") from exc
            raise ArtifactStoreError(
                f"S3 request on bucket {self._bucket!r} failed: {exc.code}: {exc.message}"
            ) from exc
        except ServerError as exc:
            raise StoreUnavailable(
                f"S3 bucket {self._bucket!r} is unavailable: HTTP {exc.status_code}"
            ) from exc
        except InvalidResponseError as exc:
            # A non-XML answer is a proxy or load balancer speaking for a missing S3 backend.
            raise StoreUnavailable(f"S3 bucket {self._bucket!r} is unavailable: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach the S3 endpoint of bucket {self._bucket!r}: {exc}") from exc


def _content_disposition(filename: str) -> str:
    """Return an RFC 6266 ``attachment`` header value naming ``filename``.

    >>> _content_disposition("demo-1.0-py3-none-any.whl")
    'attachment; filename="demo-1.0-py3-none-any.whl"; filename*=UTF-8\\'\\'demo-1.0-py3-none-any.whl'
    """
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
