"""``mirrorflow serve`` (the simple-index server) and ``mirrorflow repository pull-through``.

The server is built from the settings (``MIRRORFLOW_*``) by ``app_from_settings``, which uvicorn
calls in each worker process (``--workers``). Remotes are read from the catalog when a request
first needs them and their HTTP clients are built as a sync builds them (``mirrorflow.flows.runtime``).
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mirrorflow.flows.cli_app import Name, UsageError, app, check_range, emit, open_catalog, repository_app

if TYPE_CHECKING:  # the rest is imported when a server starts (see flows.cli's docstring)
    from mirrorflow.server.upstream import UpstreamRemote
    from mirrorflow.storage.catalog import Catalog
    from mirrorflow.tasks.index_client import IndexClient

__all__ = ["CatalogUpstreams", "app_from_settings", "serve"]

log = logging.getLogger(__name__)

_CONCURRENCY = 20


class CatalogUpstreams:
    """``mirrorflow.server.upstream.Upstreams`` over the catalog's remotes; clients are cached per remote version."""

    def __init__(self, catalog: Catalog, *, max_page_bytes: int) -> None:
        self.catalog = catalog
        self.max_page_bytes = max_page_bytes
        self._lock = threading.Lock()
        self._remotes: dict[str, tuple[Any, UpstreamRemote]] = {}
        self._fallback: IndexClient | None = None

    def remote(self, name: str | None) -> UpstreamRemote | None:
        from mirrorflow.flows.remote_spec import RemoteFields, filter_spec_of
        from mirrorflow.flows.runtime import http_client_for
        from mirrorflow.server.upstream import UpstreamRemote
        from mirrorflow.storage.catalog import NotFound
        from mirrorflow.tasks.index_client import IndexClient

        if name is None:
            return None
        try:
            row = self.catalog.get_remote(name)
        except NotFound:
            return None
        with self._lock:
            cached = self._remotes.get(name)
            if cached is not None and cached[0] == row.last_updated:
                return cached[1]
            fields = RemoteFields.from_row(row)
            client = http_client_for(fields, concurrency=fields.download_concurrency or _CONCURRENCY)
            upstream = UpstreamRemote(
                name=name,
                policy=fields.policy,
                spec=filter_spec_of(fields.model_dump()),
                index=IndexClient(
                    self._simple_root(name, fields.url, client),
                    client=client,
                    max_page_bytes=self.max_page_bytes,
                ),
            )
            self._remotes[name] = (row.last_updated, upstream)
            return upstream

    def _simple_root(self, name: str, url: str, client: Any) -> str:
        """The remote's simple root (``mirrorflow.tasks.index_url``); asked once per remote row, not per request."""
        from mirrorflow.tasks.index_client import IndexClientError, locate_simple_root
        from mirrorflow.tasks.index_url import simple_root_candidates

        candidates = simple_root_candidates(url)
        try:
            return locate_simple_root(url, candidates, client=client, max_page_bytes=self.max_page_bytes)
        except IndexClientError as exc:
            log.warning("remote %r: %s; looking projects up under %s", name, exc, candidates[0])
            return candidates[0]

    def fallback(self) -> IndexClient:
        from mirrorflow.tasks.index_client import IndexClient, build_http_client

        with self._lock:
            if self._fallback is None:
                client = build_http_client(concurrency=_CONCURRENCY, timeout=300.0)
                self._fallback = IndexClient("http://invalid.example/", client=client)
            return self._fallback


def app_from_settings(*, redirect_to_store: bool = False) -> Any:
    """Build the server app from ``MIRRORFLOW_*`` settings (the factory uvicorn calls)."""
    from mirrorflow.flows.runtime import catalog_for, store_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.server.app import WORKER_THREADS, create_app

    settings = Settings()
    # Its connection pool holds one connection per worker thread of the server.
    catalog = catalog_for(settings, pool_size=WORKER_THREADS)
    upstreams = CatalogUpstreams(catalog, max_page_bytes=settings.max_page_bytes)
    from mirrorflow.flows.read_api import CatalogReadApi

    app = create_app(
        catalog,
        store_for(settings),
        upstreams,
        redirect_to_store=redirect_to_store,
        api=CatalogReadApi(catalog),
        state_interval=settings.serve_state_interval,
    )
    # Move what start-up made (modules, the catalog) out of the collector's way: a full collection
    # of it on a first page request cost 50-70 ms (benchmarks/bench_serve.py).
    gc.collect()
    gc.freeze()
    return app


def _app_with_redirects() -> Any:
    return app_from_settings(redirect_to_store=True)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 to 65535; 0: any free port).")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes (1 to 64).")] = 1,
    redirect_to_store: Annotated[
        bool, typer.Option(help="Answer file requests with a presigned S3 URL (302) when the store has one.")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log one line per request (to stderr).")] = False,
) -> None:
    """Serve every repository as a simple index: pip install --index-url http://HOST:PORT/<repo>/simple/"""
    check_range("port", port, 0, 65535, what="a TCP port")
    check_range("workers", workers, 1, 64, what="a number of worker processes")
    _check_can_listen(host, port)
    import uvicorn

    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings
    from mirrorflow.server.app import WORKER_THREADS

    # Fail fast on a bad catalog URL, and migrate once before the workers start (with one worker,
    # this is the catalog the server uses).
    catalog_for(Settings(), pool_size=WORKER_THREADS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _configure_access_log(access_log)
    factory = (
        "mirrorflow.flows.cli_serve:_app_with_redirects"
        if redirect_to_store
        else "mirrorflow.flows.cli_serve:app_from_settings"
    )
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, access_log=False)


def _check_can_listen(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not listen on (a port in use, say).

    uvicorn would log its own six lines and a traceback-like "Errno 98" before exiting; the bind
    is tried here, as uvicorn makes it (``SO_REUSEADDR``; IPv6 for a host with a colon), and let go.
    Port 0 (any free port) always binds.
    """
    import errno
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} is in use: stop what listens there, or pick another --port"
                ) from None
            reason = exc.strerror or str(exc)
            raise UsageError(f"host: cannot listen on {host!r} port {port} ({reason})") from None


def _configure_access_log(enabled: bool) -> None:
    """Off: the request log middleware costs one check per request. On: lines go through a queue,
    written by a thread of their own rather than on the server's event loop."""
    import logging.handlers
    import queue
    import sys

    logger = logging.getLogger("mirrorflow.server.access")
    if not enabled:
        logger.setLevel(logging.WARNING)
        return
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.handlers.QueueListener(lines, handler).start()  # a daemon thread, for the process's life
    logger.addHandler(logging.handlers.QueueHandler(lines))
    logger.setLevel(logging.INFO)
    logger.propagate = False


@repository_app.command("pull-through")
def repository_pull_through(
    name: Name,
    remote: Annotated[str, typer.Option(help="Remote to pull missing projects from ('' to detach).")],
) -> None:
    """Attach a pull-through remote: projects the repository lacks are fetched from it on request."""
    from mirrorflow.flows.views import repository_view
    from mirrorflow.storage.serving import ServingCatalog

    catalog = open_catalog()
    ServingCatalog(catalog).set_pull_through(name, remote or None)
    row = catalog.get_repository(name)
    emit(repository_view(row, catalog.remote_uuid_of(row)) | {"pull_through": remote or None})
