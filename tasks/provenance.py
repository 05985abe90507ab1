"""PEP 740 provenance in a sync: record the upstream's provenance URL of each kept file, and fetch the
objects (policy ``immediate``) into the catalog, outside the repository version.

A provenance object is fetched from the URL the upstream's page names (``DistFile.provenance``,
validated by the parsers as a file URL is), checked to be a PEP 740 provenance object
(``provenance_problem``, pure) and stored byte for byte (``mirrorflow.storage.provenance``). With
``on_demand`` and ``streamed`` only the URL is recorded: the server fetches the object on its first
request. A failed fetch never fails its file or its project: it is counted in the report
(``provenance_failed``, by filename) and the URL stays recorded without a body, so the next sync and
the first request try again.

Every time a sync reads a project's page it fetches the provenance of the page's kept files again:
an upstream may add attestations to a file already uploaded, and a version (immutable) does not hold
them. A page the upstream answered "not modified" costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.provenance import record_urls, store_body
from mirrorflow.tasks.index_client import IndexClient
from mirrorflow.tasks.report import TRANSIENT, describe
from mirrorflow.tasks.retrying import call_with_retries
from mirrorflow.tasks.workers import Pacer, pulled

__all__ = [
    "MAX_PROVENANCE_BYTES",
    "InvalidProvenance",
    "ProvenanceOutcome",
    "fetch_provenance",
    "provenance_problem",
    "sync_provenance",
]

#: The largest provenance object fetched: PEP 740 objects are a few kB per attestation.
MAX_PROVENANCE_BYTES = 4 * 1024 * 1024


class InvalidProvenance(ValueError):
    """What the upstream served is not a PEP 740 provenance object (``.url``, ``.reason``)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"provenance {url!r}: {reason}")
        self.url, self.reason = url, reason


def provenance_problem(body: bytes) -> str | None:
    """Why ``body`` is not a PEP 740 provenance object, or None when it is one.

    Checked: UTF-8 JSON, an object with ``version`` 1 and a list ``attestation_bundles``. The
    attestations themselves are checked by ``repository verify --provenance`` (pypi-attestations).

    >>> provenance_problem(b'{"version": 1, "attestation_bundles": []}') is None
    True
    >>> provenance_problem(b'<html>'), provenance_problem(b'{"version": 2, "attestation_bundles": []}')
    ('not JSON', "'version' is 2, not 1")
    """
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "not JSON"
    if not isinstance(document, dict):
        return f"top level is {type(document).__name__}, not an object"
    if document.get("version") != 1:
        return f"'version' is {document.get('version')!r}, not 1"
    if not isinstance(document.get("attestation_bundles"), list):
        return "'attestation_bundles' is not a list"
    return None


def _at_most(chunks: Iterator[bytes], url: str) -> bytes:
    received = bytearray()
    for chunk in chunks:
        received += chunk
        if len(received) > MAX_PROVENANCE_BYTES:
            raise InvalidProvenance(url, f"larger than {MAX_PROVENANCE_BYTES} bytes")
    return bytes(received)


def fetch_provenance(index: IndexClient, url: str) -> bytes:
    """GET one provenance object and check it; raise ``InvalidProvenance`` or the client's errors."""
    with index.stream_file(url) as response:
        body = _at_most(response.iter_bytes(), url)
    problem = provenance_problem(body)
    if problem is not None:
        raise InvalidProvenance(url, problem)
    return body


@dataclass(slots=True)
class ProvenanceOutcome:
    """What a batch did with provenance: URLs recorded, objects fetched, fetches that failed (by filename)."""

    recorded: int = 0
    fetched: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def sync_provenance(
    wanted: Mapping[str, tuple[str, str]],
    *,
    repository_id: int,
    immediate: bool,
    catalog: Catalog,
    index: IndexClient,
    pool: ThreadPoolExecutor,
    concurrency: int,
    pacer: Pacer,
    attempts: int,
) -> ProvenanceOutcome:
    """Record ``wanted`` (distribution sha256 -> (upstream provenance URL, filename)) as what
    repository ``repository_id``'s remote names; with
    ``immediate``, fetch each object and store it. Returns the counts for the report."""
    outcome = ProvenanceOutcome()
    if not wanted:
        return outcome
    outcome.recorded = record_urls(
        catalog, repository_id, {digest: url for digest, (url, _) in wanted.items()}
    )
    if not immediate:
        return outcome
    items = sorted(wanted.items())

    def fetch(item: tuple[str, tuple[str, str]]) -> bytes | Exception:
        _, (url, _) = item
        try:
            return call_with_retries(
                lambda: fetch_provenance(index, url), attempts=attempts, transient=TRANSIENT
            )
        except Exception as exc:  # counted and retried next sync: never fails the file
            return exc

    for (digest, (url, filename)), body in zip(
        items, pulled(pool, concurrency, fetch, items, pacer=pacer), strict=True
    ):
        if isinstance(body, Exception):
            outcome.failed[filename] = describe(body)
            continue
        store_body(catalog, digest, url, body)
        outcome.fetched += 1
    return outcome
