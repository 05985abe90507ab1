"""The one place where clients are built from settings: catalog, artifact store, HTTP client.

Built once per process and shared by the flow's tasks (they receive them as arguments).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mirrorflow.flows.settings import Settings
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.secrets import SecretBox, load_or_create_key

if TYPE_CHECKING:
    # httpx loads its own command line (rich, pygments) on import: only the commands that make
    # requests import it, through the functions below (see flows.cli's docstring).
    import httpx

    from mirrorflow.flows.remote_spec import RemoteFields
    from mirrorflow.storage.artifacts import ArtifactStore
    from mirrorflow.tasks.config import HttpSpec, StoreSpec

__all__ = [
    "catalog_for",
    "store_for",
    "store_spec_for",
    "http_spec_for",
    "http_client_for",
    "reset_caches",
    "secret_box_for",
]


_catalogs: dict[tuple[str, int | None], Catalog] = {}
_catalogs_lock = threading.Lock()


def catalog_for(settings: Settings, *, pool_size: int | None = None) -> Catalog:
    """The catalog named by the settings, migrated to the newest schema (once per process).

    ``pool_size``: connections kept open (``mirrorflow.storage.catalog.make_engine``); the server asks for one
    per worker thread, and gets a catalog of its own.
    """
    key = (settings.catalog_url, pool_size)
    with _catalogs_lock:
        if key not in _catalogs:
            if settings.database_url is None:
                settings.home.mkdir(parents=True, exist_ok=True)
            _catalogs[key] = Catalog.from_url(key[0], secrets=secret_box_for(settings), pool_size=pool_size)
        return _catalogs[key]


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
    from mirrorflow.tasks.clients import store_from

    return store_from(store_spec_for(settings))


def store_spec_for(settings: Settings) -> StoreSpec:
    """The artifact store the settings name, as plain (picklable) values."""
    from mirrorflow.tasks.config import StoreSpec

    return StoreSpec(
        root=None if settings.s3_endpoint else str(settings.artifacts_dir),
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key or "",
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        bucket=settings.s3_bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        prefix=settings.s3_prefix,
        max_size=settings.max_file_bytes,
    )


def http_spec_for(remote: RemoteFields, *, concurrency: int, max_page_bytes: int) -> HttpSpec:
    """How to reach a remote's index, as plain (picklable) values."""
    from mirrorflow.tasks.config import HttpSpec

    headers: dict[str, str] = {}
    for entry in remote.headers or []:
        headers.update(entry)
    return HttpSpec(
        index_url=remote.url,
        concurrency=concurrency,
        max_page_bytes=max_page_bytes,
        timeout=remote.total_timeout or 300.0,
        connect_timeout=remote.connect_timeout or remote.sock_connect_timeout,
        read_timeout=remote.sock_read_timeout,
        headers=tuple(sorted(headers.items())),
        proxy_url=remote.proxy_url,
        tls_validation=remote.tls_validation,
        ca_cert=remote.ca_cert,
        client_cert=remote.client_cert,
        client_key=remote.client_key,
        username=remote.username,
        password=remote.password,
        proxy_username=remote.proxy_username,
        proxy_password=remote.proxy_password,
        rate_limit=remote.rate_limit,
    )


def http_client_for(remote: RemoteFields, *, concurrency: int) -> httpx.Client:
    """A pooled HTTP client configured from a remote's download settings."""
    from mirrorflow.tasks.clients import http_client_from
    from mirrorflow.tasks.index_client import DEFAULT_MAX_PAGE_BYTES

    spec = http_spec_for(remote, concurrency=concurrency, max_page_bytes=DEFAULT_MAX_PAGE_BYTES)
    return http_client_from(spec)
