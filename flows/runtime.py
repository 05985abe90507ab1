"""The one place where clients are built from settings: catalog, artifact store, HTTP client.

Built once per process and shared by the flow's tasks (they receive them as arguments).
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from flows.settings import Settings
from storage.artifacts import ArtifactStore
from storage.catalog import Catalog
from storage.filesystem_store import FileSystemStore
from storage.s3_store import S3Store
from storage.secrets import SecretBox, load_or_create_key
from tasks.index_client import build_http_client

__all__ = ["catalog_for", "store_for", "http_client_for", "reset_caches", "secret_box_for"]


_catalogs: dict[str, Catalog] = {}
_catalogs_lock = threading.Lock()


def catalog_for(settings: Settings) -> Catalog:
    """The catalog named by the settings, migrated to the newest schema (once per process)."""
    url = settings.catalog_url
    with _catalogs_lock:
        if url not in _catalogs:
            if settings.database_url is None:
                settings.home.mkdir(parents=True, exist_ok=True)
            _catalogs[url] = Catalog.from_url(url, secrets=secret_box_for(settings))
        return _catalogs[url]


def secret_box_for(settings: Settings) -> SecretBox:
    """The box sealing remote secrets: ``MIRRORFLOW_SECRET_KEY``, else the key file in ``home``."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value(), source="MIRRORFLOW_SECRET_KEY")
    path = settings.secret_key_file
    return SecretBox(load_or_create_key(path), source=str(path))


def reset_caches() -> None:
    """Dispose of the catalogs built so far (tests, and processes that change settings)."""
    with _catalogs_lock:
        for catalog in _catalogs.values():
            catalog.dispose()
        _catalogs.clear()


def store_for(settings: Settings) -> ArtifactStore:
    """The S3 store when an endpoint is set, else the directory store under ``home``."""
    if settings.s3_endpoint:
        return S3Store.from_settings(
            settings.s3_endpoint,
            settings.s3_access_key or "",
            settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            prefix=settings.s3_prefix,
        )
    return FileSystemStore(settings.artifacts_dir, max_size=settings.max_file_bytes)


def http_client_for(remote: Any, *, concurrency: int) -> httpx.Client:
    """A pooled HTTP client configured from a remote's download settings."""
    timeout = remote.total_timeout or 300.0
    auth = (remote.username, remote.password or "") if remote.username else None
    headers = {}
    for entry in remote.headers or []:
        headers.update(entry)
    cert = None  # client certificates: see _verify, which loads them into the TLS context
    return build_http_client(
        concurrency=concurrency,
        timeout=timeout,
        connect_timeout=remote.connect_timeout or remote.sock_connect_timeout,
        read_timeout=remote.sock_read_timeout,
        headers=headers or None,
        proxy_url=remote.proxy_url,
        verify=_verify(remote),
        cert=cert,
        auth=auth,
    )


def _verify(remote: Any) -> ssl.SSLContext | bool:
    """TLS settings: Pulp-style PEM *contents* for ca_cert / client_cert / client_key."""
    if not remote.tls_validation:
        return False
    context = (
        ssl.create_default_context(cadata=remote.ca_cert) if remote.ca_cert else ssl.create_default_context()
    )
    if remote.client_cert:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_path.write_text(remote.client_cert)
            key_path.touch(mode=0o600)
            key_path.write_text(remote.client_key or "")
            context.load_cert_chain(cert_path, key_path if remote.client_key else None)
    return context
