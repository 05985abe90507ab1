"""Serving PEP 740 provenance objects: ``/<repo>/files/<sha256>/<filename>.provenance``.

The object is served byte for byte as the upstream sent it, from the catalog
(``mirrorflow.storage.provenance``). One recorded but not fetched yet (policy ``on_demand``, or an
``immediate`` sync whose fetch failed) is fetched from the upstream's URL on this first request,
checked (``mirrorflow.tasks.provenance.fetch_provenance``) and stored; later requests are served
from the catalog. Pages point here, never at the upstream's URL.
"""

from __future__ import annotations

import logging

from mirrorflow.server.upstream import ServeError, Upstreams
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.provenance import provenance_of, store_body
from mirrorflow.storage.records import ServedFile
from mirrorflow.tasks.index_client import IndexClientError
from mirrorflow.tasks.provenance import InvalidProvenance, fetch_provenance

__all__ = ["PROVENANCE_SUFFIX", "PROVENANCE_TYPE", "provenance_body"]

log = logging.getLogger("mirrorflow.server")

#: What a file's URL ends with to name its provenance object.
PROVENANCE_SUFFIX = ".provenance"
#: The provenance object's media type (PEP 740 objects are JSON).
PROVENANCE_TYPE = "application/json"


def provenance_body(catalog: Catalog, upstreams: Upstreams, repository_id: int, file: ServedFile) -> bytes:
    """The provenance object of ``file`` in repository ``repository_id`` (the one its own remote
    named), fetched from its upstream first when not stored yet.

    Raises ``ServeError``: 404 when the upstream named no provenance for the file, 502 when the
    upstream's fails to come or is not a provenance object (nothing stored; the next request tries again).
    """
    row = provenance_of(catalog, repository_id, file.package.sha256)
    if row is None:
        raise ServeError(404, f"no provenance for file {file.package.filename!r}")
    if row.body is not None:
        return row.body
    remote = upstreams.remote(file.remote)
    index = remote.index if remote is not None else upstreams.fallback()
    try:
        body = fetch_provenance(index, row.url)
    except (IndexClientError, InvalidProvenance) as exc:
        log.warning("provenance of %r not fetched: %s", file.package.filename, exc)
        raise ServeError(
            502, f"{file.package.filename}: the upstream's provenance could not be fetched: {exc}"
        ) from exc
    store_body(catalog, file.package.sha256, row.url, body)
    log.info("provenance of %r fetched on first request", file.package.filename)
    return body
