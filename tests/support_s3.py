"""Fixtures: a moto S3 server on loopback driven by the real minio client, and artifact stores.

- ``s3_endpoint`` (session): ``"127.0.0.1:<port>"`` of a moto S3 server started for the session;
- ``s3_client``: a ``Minio`` client on that endpoint with dummy credentials (passed to the
  constructor, never through the environment) and a fail-fast connection pool;
- ``s3_store``: an ``S3Store`` on a fresh bucket, emptied and removed afterwards;
- ``fs_store``: a ``FileSystemStore`` under ``tmp_path``.

No outside network: the server binds 127.0.0.1 on a free port chosen by the OS.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject
from moto.server import ThreadedMotoServer

from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.s3_store import S3Store, make_http_client

__all__ = ["fs_store", "new_bucket_name", "s3_client", "s3_endpoint", "s3_store"]

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "mirrorflow-test"
S3_SECRET_KEY = "mirrorflow-test-secret"


def new_bucket_name() -> str:
    """Return a bucket name no other test uses (the moto server lives for the whole session)."""
    return f"mirrorflow-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; yield ``host:port``."""
    # werkzeug logs each request of moto's server at INFO from the server's thread, to whatever
    # stream a handler holds then: a CLI command run in-process by a test (its stderr captured, then
    # closed) could get another command's request line, or a "Logging error" on a closed stream,
    # mixed into its one-line error. The S3 server is scaffolding: its request lines are not wanted.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Iterator[Minio]:
    """A minio client on the moto server; its connection pool is closed after the test."""
    http = make_http_client(connect_timeout=2.0, read_timeout=30.0, retries=1)
    yield Minio(
        s3_endpoint,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
        secure=False,
        region=S3_REGION,  # known region: no GetBucketLocation round trip, presigning stays local
        http_client=http,
    )
    http.clear()


@pytest.fixture
def s3_store(s3_client: Minio) -> Iterator[S3Store]:
    """An ``S3Store`` on a fresh bucket; the bucket is emptied and removed afterwards."""
    store = S3Store(s3_client, new_bucket_name())
    yield store
    _drop_bucket(s3_client, store.bucket)


@pytest.fixture
def fs_store(tmp_path: Path) -> FileSystemStore:
    """A ``FileSystemStore`` rooted in a fresh directory under ``tmp_path``."""
    return FileSystemStore(tmp_path / "artifacts")


def _drop_bucket(client: Minio, bucket: str) -> None:
    if not client.bucket_exists(bucket):
        return
    names = [obj.object_name for obj in client.list_objects(bucket, recursive=True)]
    errors = list(client.remove_objects(bucket, [DeleteObject(name) for name in names if name]))
    assert not errors, errors
    client.remove_bucket(bucket)
