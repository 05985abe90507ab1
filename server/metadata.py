"""PEP 658 core metadata (``<file>.metadata``): stored once, content-addressed, in the artifact store.

Where the bytes come from, first that works:

1. already stored for this package (``core_metadata`` row) -> served from the store;
2. the upstream offers it (``has_metadata``): ``<file url>.metadata`` is fetched, checked against
   the index's ``metadata_sha256`` when given, stored (source ``upstream``);
3. the file is a wheel: ``*.dist-info/METADATA`` is read out of the stored wheel (fetched through
   first when the policy is on_demand), checked against ``metadata_sha256`` when the index gave
   one, stored (source ``wheel``). This is also the fallback when the upstream is unreachable.

Anything else is a 404.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from mirrorflow.server.files import FileServer
from mirrorflow.server.upstream import ServeError
from mirrorflow.storage.artifacts import ArtifactStoreError
from mirrorflow.storage.records import ServedFile
from mirrorflow.tasks.core_metadata import MAX_METADATA_BYTES, WheelMetadataError, metadata_from_wheel
from mirrorflow.tasks.index_client import IndexClientError

__all__ = ["MAX_METADATA_BYTES", "core_metadata"]

log = logging.getLogger("mirrorflow.server")


def core_metadata(files: FileServer, file: ServedFile) -> bytes:
    """Return the core metadata of ``file``, storing it on first use. Raises ``ServeError``."""
    if file.core_metadata_sha256 is not None:
        try:
            return b"".join(files.stored_chunks(file.core_metadata_sha256))
        except ArtifactStoreError:
            log.warning("stored metadata of %r is missing; reading it again", file.package.filename)
    data: bytes | None = None
    source = "upstream"
    failure = None
    if file.package.has_metadata:
        try:
            data = _from_upstream(files, file)
        except ServeError as exc:
            failure = exc
    if data is None and file.package.filename.endswith(".whl"):
        data, source = _from_wheel(files, file), "wheel"
    if data is None:
        if failure is not None:
            raise failure
        raise ServeError(404, f"no core metadata for {file.package.filename!r}")
    if (
        file.package.metadata_sha256 is not None
        and hashlib.sha256(data).hexdigest() != file.package.metadata_sha256
    ):
        raise ServeError(
            502,
            f"{file.package.filename}.metadata ({source}): sha256 {hashlib.sha256(data).hexdigest()!r} does not "
            f"match the index's {file.package.metadata_sha256!r}; nothing stored",
        )
    stored = files.store.put_chunks([data], sha256=None, size=len(data))
    files.serving.remember_metadata(file.package_id, stored, source=source)
    return data


def _from_upstream(files: FileServer, file: ServedFile) -> bytes:
    remote = files.upstreams.remote(file.remote)
    index = remote.index if remote is not None else files.upstreams.fallback()
    url = file.package.url + ".metadata"
    try:
        with index.stream_file(url) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_METADATA_BYTES:
                    raise ServeError(502, f"{url!r}: metadata larger than {MAX_METADATA_BYTES} bytes")
                chunks.append(chunk)
    except IndexClientError as exc:
        log.warning("metadata of %r not fetched from the upstream: %s", file.package.filename, exc)
        raise ServeError(502, f"{file.package.filename}.metadata: the upstream failed: {exc}") from exc
    return b"".join(chunks)


def _from_wheel(files: FileServer, file: ServedFile) -> bytes | None:
    if file.artifact_sha256 is None:
        remote = files.upstreams.remote(file.remote)
        if remote is not None and remote.policy == "streamed":
            return None  # streamed files are never stored, so there is no wheel to read
        files.fetch_whole(file)
        file = replace(file, artifact_sha256=file.package.sha256)
    try:
        return metadata_from_wheel(files.stored_chunks(file.package.sha256), filename=file.package.filename)
    except ArtifactStoreError as exc:
        raise ServeError(503, f"{file.package.filename}: cannot read the stored wheel ({exc})") from exc
    except WheelMetadataError as exc:
        raise ServeError(502, f"{exc.filename}: {exc.reason}") from exc
