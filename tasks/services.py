"""Picklable descriptions of a sync's collaborators, and a per-process cache of the live ones.

A task that runs on a Dask worker cannot receive a live HTTP client or database engine: they do
not pickle. The flow therefore hands its tasks a ``ServicesSpec`` (plain values, picklable and
hashable) and each task calls ``services_for(spec)``:

- in the flow's own process, the flow *hosts* the services it built (``hosting``): the lookup
  finds them, so a thread-pool run shares one client and one engine, as before;
- in another process (a Dask worker), the first lookup builds the services from the spec and
  keeps them for the life of the process, keyed by the spec (without the per-run token).

Values come in through the spec, never from the environment.
"""

from __future__ import annotations

import dataclasses
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from storage.artifacts import ArtifactStore
from storage.catalog import Catalog
from storage.content import ContentWriter
from storage.filesystem_store import FileSystemStore
from tasks.batch import SyncServices
from tasks.index_client import IndexClient, build_http_client

__all__ = [
    "StoreSpec",
    "HttpSpec",
    "ServicesSpec",
    "services_for",
    "hosting",
    "build_services",
    "http_client_from",
    "store_from",
]


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """The artifact store: a directory (``root``) or an S3 bucket (``endpoint`` set)."""

    root: str | None = None
    endpoint: str | None = None
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    bucket: str = "mirrorflow"
    secure: bool = True
    region: str | None = None
    prefix: str = ""
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class HttpSpec:
    """The upstream index and how to reach it (a remote's download settings)."""

    index_url: str
    concurrency: int
    max_page_bytes: int
    timeout: float = 300.0
    connect_timeout: float | None = None
    read_timeout: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    proxy_url: str | None = None
    tls_validation: bool = True
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    proxy_username: str | None = None
    proxy_password: str | None = field(default=None, repr=False)
    #: Requests per second to the upstream, for each process of the sync (None or 0: no limit).
    rate_limit: int | None = None


@dataclass(frozen=True, slots=True)
class ServicesSpec:
    """Everything needed to rebuild a sync's services in any process. ``token`` names the run."""

    catalog_url: str
    store: StoreSpec
    http: HttpSpec
    token: str = ""


_lock = threading.Lock()
_hosted: dict[ServicesSpec, SyncServices] = {}
_built: dict[ServicesSpec, SyncServices] = {}


def services_for(spec: ServicesSpec) -> SyncServices:
    """The live services for ``spec``: the ones this process hosts, else built once and kept."""
    with _lock:
        hosted = _hosted.get(spec)
        if hosted is not None:
            return hosted
        key = dataclasses.replace(spec, token="")
        if key not in _built:
            _built[key] = build_services(key)
        return _built[key]


@contextmanager
def hosting(spec: ServicesSpec, services: SyncServices) -> Iterator[ServicesSpec]:
    """Make ``services`` what ``services_for(spec)`` returns in this process, for the block."""
    if not spec.token:
        raise ValueError("hosting: the spec needs a token naming the run (got '')")
    with _lock:
        _hosted[spec] = services
    try:
        yield spec
    finally:
        with _lock:
            _hosted.pop(spec, None)


def build_services(spec: ServicesSpec) -> SyncServices:
    """Build catalog, store and index client from plain values (a worker process's first task)."""
    catalog = Catalog.from_url(spec.catalog_url)
    client = http_client_from(spec.http)
    index = IndexClient(spec.http.index_url, client=client, max_page_bytes=spec.http.max_page_bytes)
    return SyncServices(index=index, store=store_from(spec.store), writer=ContentWriter(catalog))


def http_client_from(http: HttpSpec) -> httpx.Client:
    """A pooled HTTP client for the upstream, as the remote's download settings describe it."""
    proxy_url = http.proxy_url
    if proxy_url and http.proxy_username:
        proxy_url = str(
            httpx.URL(proxy_url).copy_with(username=http.proxy_username, password=http.proxy_password)
        )
    return build_http_client(
        concurrency=http.concurrency,
        timeout=http.timeout,
        connect_timeout=http.connect_timeout,
        read_timeout=http.read_timeout,
        headers=dict(http.headers) or None,
        proxy_url=proxy_url,
        verify=_verify(http),  # type: ignore[arg-type]  # an SSLContext is accepted as well
        auth=(http.username, http.password or "") if http.username else None,
        rate_limit=http.rate_limit,
    )


def store_from(spec: StoreSpec) -> ArtifactStore:
    """The artifact store the spec names: S3 when it has an endpoint, else a directory."""
    if spec.endpoint:
        from storage.s3_store import S3Store  # minio (0.1 s to import) only for an S3 store

        return S3Store.from_settings(
            spec.endpoint,
            spec.access_key,
            spec.secret_key,
            spec.bucket,
            secure=spec.secure,
            region=spec.region,
            prefix=spec.prefix,
            max_size=spec.max_size,
        )
    if spec.root is None:
        raise ValueError("store: give a directory (root) or an S3 endpoint (got neither)")
    return FileSystemStore(spec.root, max_size=spec.max_size)


def _verify(http: HttpSpec) -> ssl.SSLContext | bool:
    """TLS settings: Pulp-style PEM *contents* for the CA and the client certificate."""
    if not http.tls_validation:
        return False
    if not http.ca_cert and not http.client_cert:
        return SystemTrustOnFirstUse()
    context = (
        ssl.create_default_context(cadata=http.ca_cert) if http.ca_cert else ssl.create_default_context()
    )
    if http.client_cert:
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_path.write_text(http.client_cert)
            key_path.touch(mode=0o600)
            key_path.write_text(http.client_key or "")
            context.load_cert_chain(cert_path, key_path if http.client_key else None)
    return context


class SystemTrustOnFirstUse(ssl.SSLContext):
    """``ssl.create_default_context()``, except that the system's CA certificates load on the first
    TLS connection rather than when the context is built.

    Loading them costs about 20 ms at every sync's start, and a sync of a plain-http upstream (the
    fixture index, a mirror on the LAN) may never open a TLS connection. Only this default trust is
    deferred: a remote's own ``ca_cert`` or ``client_cert`` is loaded when the client is built, so
    that a malformed one fails the sync at once rather than look like a connection fault.
    """

    def __new__(cls) -> SystemTrustOnFirstUse:
        # PROTOCOL_TLS_CLIENT requires a certificate and checks the host name, as the default does.
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self) -> None:
        self._trust_lock = threading.Lock()
        self._trusted = False

    def _load_trust(self) -> None:
        with self._trust_lock:
            if not self._trusted:
                self.load_default_certs(ssl.Purpose.SERVER_AUTH)
                self._trusted = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)
