"""Verify and repair: re-hash the stored files of a repository version, fetch bad ones again.

The stored files are the distribution files and the core metadata (PEP 658 ``.metadata``) the
server stored for them; the metadata files are checked after the distribution files, so a wheel
repaired in the same run can give its METADATA back.

Each artifact is streamed from the store (``open_chunks``: bounded memory), hashed and compared
with its digest and size; a bounded thread pool checks several at once. Every artifact found
intact is marked ``verified_at`` at once, so an interrupted verify, run again with
``skip_verified_within``, does not re-hash what it already checked (resumable, idempotent).

A corrupt object is deleted before it is fetched again (the store keeps an existing object under
its key), then the upstream bytes are stored through ``put_chunks``, which verifies them against
the digest and size before publishing: a repair never stores bytes it did not check. A core
metadata file is fetched again from the upstream ``<file url>.metadata`` when the index offers it,
else (or when that fails) read out of the stored wheel (``mirrorflow.tasks.core_metadata``, as the server does);
either way ``put_chunks`` checks the bytes against the recorded digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from mirrorflow.storage.artifacts import ArtifactNotFound, ArtifactStore, ArtifactStoreError
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.maintenance import (
    StoredArtifactRow,
    clear_verified,
    mark_verified,
    version_artifacts,
    version_core_metadata,
)
from mirrorflow.tasks.core_metadata import metadata_from_wheel

__all__ = ["Fetch", "Problem", "VerifyReport", "check_artifact", "verify_version"]

#: Opens an upstream URL and yields its body in chunks (the CLI passes the index client's stream).
Fetch = Callable[[str], AbstractContextManager[Iterable[bytes]]]


@dataclass(frozen=True, slots=True)
class Problem:
    """An artifact that is not intact: ``kind`` is ``missing``, ``corrupt`` or ``unreadable``."""

    sha256: str
    filenames: tuple[str, ...]
    kind: str
    detail: str
    repaired: bool = False
    repair_error: str | None = None


@dataclass(slots=True)
class VerifyReport:
    """What a verify found; ``remaining`` are the problems still there after any repair.

    ``artifacts`` counts every stored file of the version, ``core_metadata`` of them included.
    """

    repository: str
    version: int
    artifacts: int = 0
    core_metadata: int = 0
    checked: int = 0
    skipped_recently_verified: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def as_dict(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return {
            "repository": self.repository,
            "version": self.version,
            "artifacts": self.artifacts,
            "core_metadata": self.core_metadata,
            "checked": self.checked,
            "skipped_recently_verified": self.skipped_recently_verified,
            "ok": self.checked - len(self.problems),
            "problems": counts,
            "repaired": sum(p.repaired for p in self.problems),
            "remaining": len(self.remaining),
            "details": [
                {
                    "sha256": p.sha256,
                    "filenames": list(p.filenames),
                    "problem": p.kind,
                    "detail": p.detail,
                    "repaired": p.repaired,
                    **({"repair_error": p.repair_error} if p.repair_error else {}),
                }
                for p in self.problems
            ],
        }


def check_artifact(store: ArtifactStore, sha256: str, size: int) -> tuple[str, str] | None:
    """Re-hash one stored artifact. Returns None when intact, else ``(kind, detail)``."""
    digest = hashlib.sha256()
    received = 0
    try:
        with _closing(store.open_chunks(sha256)) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                received += len(chunk)
    except ArtifactNotFound:
        return "missing", "no object in the store"
    except ArtifactStoreError as exc:
        return "unreadable", f"{type(exc).__name__}: {exc}"
    actual = digest.hexdigest()
    if actual != sha256 or received != size:
        return "corrupt", f"stored bytes have sha256={actual!r} size={received!r}, expected size={size!r}"
    return None


def verify_version(
    catalog: Catalog,
    store: ArtifactStore,
    repository: str,
    version: int | None,
    *,
    workers: int,
    skip_verified_within: timedelta,
    repair: Fetch | None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> VerifyReport:
    """Verify (and with ``repair``, fix) the stored files of a version; see the module docstring.

    ``skip_verified_within`` skips artifacts found intact that recently (``timedelta(0)``: none).
    Raises ``NotFound`` for an unknown repository or version.
    """
    number, files = version_artifacts(catalog, repository, version)
    metadata = version_core_metadata(catalog, repository, number)
    report = VerifyReport(repository, number, len(files) + len(metadata), len(metadata))
    threshold = now() - skip_verified_within
    # distribution files first: a core metadata file may be read out of a wheel repaired here
    batches = [
        [r for r in rows if skip_verified_within <= timedelta(0) or not _fresh(r, threshold)]
        for rows in (files, metadata)
    ]
    report.skipped_recently_verified = report.artifacts - sum(map(len, batches))

    def one(row: StoredArtifactRow) -> Problem | None:
        found = check_artifact(store, row.sha256, row.size)
        if found is None:
            mark_verified(catalog, [row.sha256], at=now())  # at once: an interrupted run keeps it
            return None
        clear_verified(catalog, [row.sha256])
        problem = Problem(row.sha256, row.filenames, kind=found[0], detail=found[1])
        return _repair(catalog, store, row, problem, repair, now) if repair else problem

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for todo in batches:
            for problem in pool.map(one, todo):
                report.checked += 1
                if problem is not None:
                    report.problems.append(problem)
    return report


def _repair(
    catalog: Catalog,
    store: ArtifactStore,
    row: StoredArtifactRow,
    problem: Problem,
    fetch: Fetch,
    now: Callable[[], datetime],
) -> Problem:
    """Store the artifact again from the first source that gives the right bytes.

    The sources are the upstream URLs, then (core metadata) the METADATA of each stored wheel.
    """
    if problem.kind == "corrupt":
        store.delete(row.sha256)  # put_chunks keeps an existing object: remove the bad one first
    sources: list[tuple[str, Callable[[], AbstractContextManager[Iterable[bytes]]]]] = [
        (url, partial(fetch, url)) for url in row.urls
    ]
    sources += [
        (f"METADATA of the stored {name}", partial(_wheel_metadata, store, name, sha))
        for name, sha in row.wheels
    ]
    errors = []
    for source, open_source in sources:
        try:
            with open_source() as chunks:
                store.put_chunks(chunks, sha256=row.sha256, size=row.size)
        except Exception as exc:  # reported per artifact; the other artifacts are still repaired
            errors.append(f"{source}: {type(exc).__name__}: {exc}")
            continue
        if check_artifact(store, row.sha256, row.size) is None:
            mark_verified(catalog, [row.sha256], at=now())
            return replace(problem, repaired=True)
        errors.append(f"{source}: stored, but the store does not give the bytes back intact")
    return replace(problem, repair_error="; ".join(errors) or "no upstream URL (nor a stored wheel)")


@contextmanager
def _wheel_metadata(store: ArtifactStore, filename: str, sha256: str) -> Iterator[Iterable[bytes]]:
    """Yield the METADATA of a stored wheel as one chunk. Raises ``WheelMetadataError``."""
    with _closing(store.open_chunks(sha256)) as chunks:
        yield [metadata_from_wheel(chunks, filename=filename)]


def _fresh(row: StoredArtifactRow, threshold: datetime) -> bool:
    return row.verified_at is not None and row.verified_at >= threshold


class _closing:
    """Close a chunk iterator (a store's reader) however the loop over it ends."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __enter__(self) -> Iterable[bytes]:
        return self._chunks

    def __exit__(self, *exc_info: object) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
