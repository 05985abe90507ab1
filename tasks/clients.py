"""A sync's clients (index, artifact store, catalog writer), built through constructors from the config.

The flow builds them once (``SyncServices.build``) and passes them to every stage task as an
argument: on the thread-pool runner the tasks receive that very object, so they share one HTTP
client and one database engine. Nothing is registered anywhere, and nothing is looked up by key.

A task on another process (a Dask worker) cannot receive live clients: they do not pickle. So a
``SyncServices`` pickles as the config it was built from (``__reduce__``), and unpickling builds the
clients in the receiving process on first use, once per process and config (``_in_this_process``):
the worker process's many tasks of one sync share them. That cache is filled only there, by a
received handle's first use; the flow never writes into it and no code asks it for anything else.

Values come in through the config, never from the environment.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from mirrorflow.storage.artifacts import ArtifactStore
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.dependency_cache import DependencyStore
from mirrorflow.storage.filesystem_store import FileSystemStore
from mirrorflow.storage.serials import SerialMemory
from mirrorflow.tasks.config import HttpSpec, StoreSpec
from mirrorflow.tasks.index_client import IndexClient, build_http_client

__all__ = ["SyncServices", "http_client_from", "reader_connection", "store_from"]

_ClientsKey = tuple[str, StoreSpec, HttpSpec]


class SyncServices:
    """The I/O collaborators of a sync: the upstream index, the artifact store, the catalog's writer.

    ``key`` is what they were built from (``SyncConfig.clients_key``): a process that receives them
    pickled gets a handle that builds its own from it on first use (so a Dask scheduler that only
    unpickles a task's arguments builds nothing). None for services assembled by hand (tests),
    which do not pickle.
    """

    __slots__ = ("key", "_built")

    def __init__(
        self,
        *,
        index: IndexClient | None = None,
        store: ArtifactStore | None = None,
        writer: ContentWriter | None = None,
        key: _ClientsKey | None = None,
    ) -> None:
        self.key = key
        self._built: tuple[IndexClient, ArtifactStore, ContentWriter] | None = None
        if index is not None and store is not None and writer is not None:
            self._built = (index, store, writer)
        elif key is None:
            raise TypeError("SyncServices: give index, store and writer, or the key to build them from")

    @classmethod
    def build(
        cls, key: _ClientsKey, *, catalog: Catalog | None = None, http: httpx.Client | None = None
    ) -> SyncServices:
        """Build the clients from plain values; reuse the caller's ``catalog`` and ``http`` client when given."""
        catalog_url, store, http_spec = key
        client = http if http is not None else http_client_from(http_spec)
        index = IndexClient(
            http_spec.index_url,
            client=client,
            max_page_bytes=http_spec.max_page_bytes,
            fresh_client=partial(http_client_from, replace(http_spec, concurrency=1)),  # a retry's connection
        )
        writer = ContentWriter(catalog if catalog is not None else Catalog.from_url(catalog_url))
        return cls(index=index, store=store_from(store), writer=writer, key=key)

    @property
    def index(self) -> IndexClient:
        return self._services()[0]

    @property
    def store(self) -> ArtifactStore:
        return self._services()[1]

    @property
    def writer(self) -> ContentWriter:
        return self._services()[2]

    @property
    def memory(self) -> SerialMemory:
        """The serial memory, in the writer's catalog."""
        return SerialMemory(self.writer.catalog)

    def _services(self) -> tuple[IndexClient, ArtifactStore, ContentWriter]:
        """The three clients; a handle received from another process takes this process's services
        for its key on first use."""
        if self._built is None:
            if self.key is None:  # __init__ refuses this; kept for the type, and for a subclass
                raise TypeError("SyncServices: give index, store and writer, or the key to build them from")
            self._built = _in_this_process(self.key)._services()
        return self._built

    def __reduce__(self) -> tuple[Callable[[_ClientsKey], SyncServices], tuple[_ClientsKey]]:
        if self.key is None:
            raise TypeError("SyncServices built by hand (no key) cannot be sent to another process")
        return (_handle, (self.key,))


def _handle(key: _ClientsKey) -> SyncServices:
    """Unpickling: a handle that builds nothing until a task uses it."""
    return SyncServices(key=key)


_built: dict[_ClientsKey, SyncServices] = {}
_built_lock = threading.Lock()


def _in_this_process(key: _ClientsKey) -> SyncServices:
    """The services for ``key`` in this process, built on first use and kept for its life."""
    with _built_lock:
        services = _built.get(key)
        if services is None:
            services = _built[key] = SyncServices.build(key)
        return services


def reader_connection(key: _ClientsKey) -> tuple[httpx.Client, DependencyStore]:
    """A ``DependencyReader``'s client and cache in a process that received it (its ``connect``, bound
    to a sync's key with ``functools.partial``): this process's services for ``key``, built once, so
    that a worker's tasks share one HTTP client and one catalog engine."""
    services = _in_this_process(key)
    return services.index.http, DependencyStore(services.writer.catalog)


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
        from mirrorflow.storage.s3_store import S3Store  # minio (0.1 s to import) only for an S3 store

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
