"""Serving distribution files: from the artifact store, fetched through on demand, or streamed.

``FileServer.prepare(file)`` runs in a worker thread and returns a ``Delivery``: chunks to stream
(with their length), or a URL to redirect to. Which way depends on the file:

- stored (``artifact_sha256`` set): streamed from the store (or a presigned S3 URL when asked);
- not stored, the remote's policy ``on_demand`` (or ``immediate``, e.g. for pull-through files):
  the first request downloads from the recorded URL and streams to the client *while* it downloads,
  hashing and spooling to a temporary file; at the end the digest is checked, the file stored and
  the artifact linked to its packages. Requests for the same digest meanwhile wait for that one
  download (single flight) and are then served from the store;
- ``streamed``: proxied from the upstream, verified while streaming, never stored.

A digest mismatch stores nothing. The first client has already received the status line, but the
last chunk is held back until the digest is checked, so its download stops short of the announced
length and fails; requests waiting on that download, and requests in
the next ``MISMATCH_MEMORY`` seconds, get a 502 naming both digests.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

from mirrorflow.server.upstream import ServeError, Upstreams
from mirrorflow.storage.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    StoredArtifact,
    artifact_key,
)
from mirrorflow.storage.records import ServedFile
from mirrorflow.storage.serving import ServingCatalog
from mirrorflow.tasks.index_client import IndexClient, IndexClientError

__all__ = ["Delivery", "FileServer", "MISMATCH_MEMORY", "content_type_of"]

log = logging.getLogger("mirrorflow.server")

MISMATCH_MEMORY = 30.0
_WAIT = 600.0  # longest a request waits for another request's download
_CHUNK = 1 << 16


def content_type_of(filename: str) -> str:
    """The Content-Type to serve a distribution file with.

    >>> content_type_of("a-1.0-py3-none-any.whl"), content_type_of("a-1.0.tar.gz")
    ('application/zip', 'application/gzip')
    """
    if filename.endswith((".whl", ".zip", ".egg")):
        return "application/zip"
    if filename.endswith((".tar.gz", ".tgz")):
        return "application/gzip"
    if filename.endswith(".metadata"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


@dataclass(slots=True)
class Delivery:
    """How to answer: ``chunks`` (with ``size`` when known), or a ``redirect`` URL."""

    chunks: Iterator[bytes] | None = None
    size: int | None = None
    redirect: str | None = None
    source: str = "store"  # store | fetch | stream | redirect, for the request log


@dataclass(slots=True)
class _Flight:
    done: threading.Event
    error: str | None = None


class FileServer:
    """Serves files of the catalog from the store and the upstreams."""

    def __init__(
        self,
        store: ArtifactStore,
        serving: ServingCatalog,
        upstreams: Upstreams,
        *,
        redirect_to_store: bool,
    ) -> None:
        self.store = store
        self.serving = serving
        self.upstreams = upstreams
        self.redirect_to_store = redirect_to_store
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._mismatches: dict[str, tuple[str, float]] = {}

    # -- entry point -------------------------------------------------------------------------

    def prepare(self, file: ServedFile) -> Delivery:
        """Return how to deliver ``file``. Raises ``ServeError`` (404, 502)."""
        for _ in range(3):  # a flight that ended without storing (client gone): try again
            stored = self._from_store(file)
            if stored is not None:
                return stored
            remote = self.upstreams.remote(file.remote)
            policy = remote.policy if remote is not None else "on_demand"
            index = remote.index if remote is not None else self.upstreams.fallback()
            if policy == "streamed":
                return self._streamed(file, index)
            self._raise_recent_mismatch(file.package.sha256)
            with self._lock:
                flight = self._flights.get(file.package.sha256)
                leader = flight is None
                if flight is None:
                    flight = self._flights[file.package.sha256] = _Flight(threading.Event())
            if leader:
                # Look again now that this request owns the digest's flight: another flight may
                # have stored the file and landed between the first look and the lock, and no
                # flight stores without first holding it. (Looked up outside ``_lock``: store I/O
                # must not hold every other request back.)
                try:
                    stored = self._from_store(file)
                except BaseException:
                    self._land(file.package.sha256, flight, None)
                    raise
                if stored is not None:
                    self._land(file.package.sha256, flight, None)
                    return stored
                return self._fetch_through(file, index, flight)
            if not flight.done.wait(_WAIT):
                raise ServeError(
                    504, f"{file.package.filename}: still downloading from the upstream, retry later"
                )
            if flight.error is not None:
                raise ServeError(502, flight.error)
        raise ServeError(502, f"{file.package.filename}: could not be fetched from the upstream, retry later")

    def stored_chunks(self, sha256: str) -> Iterator[bytes]:
        """Open a stored artifact (metadata files too). Raises ``ArtifactNotFound``."""
        return self.store.open_chunks(sha256, chunk_size=_CHUNK)

    # -- the three ways ----------------------------------------------------------------------

    def _from_store(self, file: ServedFile) -> Delivery | None:
        if file.artifact_sha256 is None and not self._stored_now(file):
            return None
        if self.redirect_to_store:
            url = self.store.url_for(
                file.package.sha256, filename=file.package.filename, expires=timedelta(hours=1)
            )
            if url is not None:
                return Delivery(redirect=url, source="redirect")
        try:
            size = self.store.stat(file.package.sha256)
            return Delivery(chunks=self.store.open_chunks(file.package.sha256, chunk_size=_CHUNK), size=size)
        except ArtifactNotFound:
            log.warning(
                "artifact %s of %r is recorded but missing from the store",
                file.package.sha256,
                file.package.filename,
            )
            return None
        except ArtifactStoreError as exc:
            raise ServeError(
                503, f"{file.package.filename}: the artifact store is unavailable ({exc})"
            ) from exc

    def _stored_now(self, file: ServedFile) -> bool:
        """Whether another request stored the file since the page was read (then link it)."""
        try:
            if not self.store.exists(file.package.sha256):
                return False
            size = self.store.stat(file.package.sha256)
        except ArtifactStoreError:
            return False
        self.serving.link_artifact(
            StoredArtifact(file.package.sha256, size, artifact_key(file.package.sha256))
        )
        return True

    def _open_upstream(self, file: ServedFile, index: IndexClient, stack: ExitStack) -> Iterator[bytes]:
        try:
            response = stack.enter_context(index.stream_file(file.package.url))
        except IndexClientError as exc:
            stack.close()
            raise ServeError(502, f"{file.package.filename}: the upstream failed: {exc}") from exc
        declared = response.headers.get("Content-Length", "")
        if file.package.size is not None and declared.isdigit() and int(declared) != file.package.size:
            stack.close()
            raise ServeError(
                502,
                f"{file.package.filename}: the upstream sends {declared} bytes, the index listed {file.package.size}; "
                "nothing stored",
            )
        return response.iter_bytes(_CHUNK)

    def _streamed(self, file: ServedFile, index: IndexClient) -> Delivery:
        stack = ExitStack()
        body = self._open_upstream(file, index, stack)

        def chunks() -> Iterator[bytes]:
            with stack:
                digest, held = hashlib.sha256(), b""
                for chunk in body:
                    digest.update(chunk)
                    if held:
                        yield held
                    held = chunk
                if digest.hexdigest() != file.package.sha256:
                    message = _mismatch(file, digest.hexdigest())
                    log.error("%s", message)
                    raise ServeError(502, message)
                yield held  # the last chunk only once the digest is right: a bad file never completes

        return Delivery(chunks=chunks(), size=file.package.size, source="stream")

    def _fetch_through(self, file: ServedFile, index: IndexClient, flight: _Flight) -> Delivery:
        stack = ExitStack()
        try:
            body = self._open_upstream(file, index, stack)
        except BaseException as exc:
            self._land(file.package.sha256, flight, exc.message if isinstance(exc, ServeError) else None)
            raise
        return Delivery(chunks=self._tee(file, body, stack, flight), size=file.package.size, source="fetch")

    def _tee(
        self, file: ServedFile, body: Iterator[bytes], stack: ExitStack, flight: _Flight
    ) -> Iterator[bytes]:
        """Yield the upstream's chunks while hashing and spooling them; store at the end if they match.

        If the client goes away first, the download stops and nothing is stored: waiting requests
        then start their own (``flight.error`` stays None).
        """
        mismatch: str | None = None
        try:
            with stack, tempfile.TemporaryFile(prefix="mirrorflow-fetch-") as spool:
                digest, received, held = hashlib.sha256(), 0, b""
                for chunk in body:
                    received += len(chunk)
                    if file.package.size is not None and received > file.package.size:
                        mismatch = _mismatch(file, None, received)
                        break
                    digest.update(chunk)
                    spool.write(chunk)
                    if held:
                        yield held
                    held = chunk  # held back: the client gets the last chunk only after verification
                if mismatch is None and (
                    digest.hexdigest() != file.package.sha256
                    or (file.package.size is not None and received != file.package.size)
                ):
                    mismatch = _mismatch(file, digest.hexdigest(), received)
                if mismatch is not None:
                    log.error("%s", mismatch)
                    self._remember_mismatch(file.package.sha256, mismatch)
                    raise ServeError(502, mismatch)
                spool.seek(0)
                stored = self.store.put_chunks(_read(spool), sha256=file.package.sha256, size=received)
                self.serving.link_artifact(stored)
                log.info(
                    "stored %r (%s, %d bytes) fetched on demand",
                    file.package.filename,
                    file.package.sha256,
                    received,
                )
                mismatch = None
            yield held
        finally:
            self._land(file.package.sha256, flight, mismatch)

    # -- single flight and mismatch memory ---------------------------------------------------

    def _land(self, sha256: str, flight: _Flight, error: str | None) -> None:
        flight.error = error
        with self._lock:
            if self._flights.get(sha256) is flight:
                del self._flights[sha256]
        flight.done.set()

    def _remember_mismatch(self, sha256: str, message: str) -> None:
        with self._lock:
            self._mismatches[sha256] = (message, time.monotonic() + MISMATCH_MEMORY)

    def _raise_recent_mismatch(self, sha256: str) -> None:
        with self._lock:
            found = self._mismatches.get(sha256)
            if found is not None and found[1] < time.monotonic():
                del self._mismatches[sha256]
                found = None
        if found is not None:
            raise ServeError(502, found[0])

    def fetch_whole(self, file: ServedFile) -> None:
        """Fetch an unstored file through (as a request would) without a client; raise ``ServeError``."""
        delivery = self.prepare(file)
        if delivery.chunks is not None:
            for _ in delivery.chunks:
                pass


def _read(spool: IO[bytes]) -> Iterator[bytes]:
    while chunk := spool.read(_CHUNK):
        yield chunk


def _mismatch(file: ServedFile, actual: str | None, received: int | None = None) -> str:
    got = f"sha256={actual!r}" if actual is not None else f"more than {file.package.size} bytes"
    size = f", {received} bytes" if received is not None else ""
    return (
        f"{file.package.filename}: the upstream's bytes do not match the index: expected sha256={file.package.sha256!r}, "
        f"got {got}{size}; nothing stored"
    )
