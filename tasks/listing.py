"""The listing stage: the listing and the serial memory -> the projects a sync fetches.

``list_projects`` reads the listing (unless includes name the projects) and the serial memory once,
decides with ``plan_projects`` (pure) and records the projects gone, so that the commit forgets them.
The decision's three modes:

- ``full``: the first sync, or the filter fingerprint changed (the serials no longer describe
  what was filtered): fetch every wanted project unconditionally; the commit's scope is ``all``.
- ``serial``: the listing gives every wanted project's serial: fetch only projects whose serial
  differs from the remembered one, or that are new; the commit's scope is ``touched``.
- ``conditional``: some serial is missing (an HTML-only index, a proxy, or an includes list that
  needs no listing): fetch every wanted project with If-None-Match / If-Modified-Since where a
  validator is remembered; a 304 leaves the project untouched. Scope ``touched``.

In every mode, remembered projects no longer wanted (gone from the listing, or now filtered out)
are ``gone``: forgotten, and their content removed in mirror mode. Errors are the index client's
(``mirrorflow.tasks.index_client``), retried per request when transient (``mirrorflow.tasks.report.TRANSIENT``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from mirrorflow.storage.project_statuses import latest_projects
from mirrorflow.storage.serials import Touched
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import Scope, SyncConfig, SyncMode
from mirrorflow.tasks.filters import included_project_names, wanted_projects
from mirrorflow.tasks.project_status import gone_projects
from mirrorflow.tasks.report import TRANSIENT
from mirrorflow.tasks.retrying import call_with_retries

T = TypeVar("T")

__all__ = [
    "FINGERPRINT_FIELDS",
    "Wanted",
    "Work",
    "batched",
    "filter_fingerprint",
    "is_stale",
    "list_projects",
    "plan_projects",
    "stale_delays",
]


def list_projects(config: SyncConfig, services: SyncServices) -> Work:
    """Read the listing (unless includes name the projects) and the memory; decide what to fetch;
    mark the projects gone from the listing (the commit forgets them, and removes them in mirror mode).

    Raises the index client's errors when the listing cannot be read.
    """
    spec = config.spec
    if spec.includes:
        wanted: list[tuple[str, int | None]] = [(n, None) for n in included_project_names(spec)]
        has_serials = False
        gone_upstream: tuple[str, ...] = ()  # no listing: the resolve stage's 404s tell (tasks.fetch)
    else:
        listing = call_with_retries(
            services.index.get_listing,
            attempts=config.attempts,
            transient=TRANSIENT,
            connection_backoff=config.connection_backoff,
        )
        serial_of = {p.name: p.last_serial for p in listing.projects}
        wanted = [(n, serial_of[n]) for n in wanted_projects(serial_of, spec)]
        has_serials = True
        gone_upstream = gone_projects(
            latest_projects(services.writer.catalog, config.repository_id), serial_of
        )
    memory = services.memory
    work = plan_projects(
        wanted,
        memory.remembered(config.repository_id, config.remote),
        accepted=config.accepted_fingerprints,
        remembered_fingerprint=memory.fingerprint(config.repository_id, config.remote),
        listing_has_serials=has_serials,
    )
    if work.gone:
        memory.touch(config.sync_id, config.repository_id, (Touched(n, "gone") for n in work.gone))
    return replace(work, gone_upstream=gone_upstream) if gone_upstream else work


#: The remote fields that decide what a sync selects: a change to any forces a full re-evaluation.
FINGERPRINT_FIELDS = (
    "url",
    "policy",
    "includes",
    "excludes",
    "prereleases",
    "package_types",
    "exclude_platforms",
    "keep_latest_packages",
    # mirrorflow's own filters, flat in ``RemoteFields`` (stored together in the ``extra_filters`` column);
    # block_advisories and keep_quarantined are folded in by ``flows.sync_config``, include_dependencies
    # through the includes the closure adds.
    "exclude_newer_than",
    "missing_upload_time",
    "python_versions",
    "skip_yanked",
)


@dataclass(frozen=True, slots=True)
class Wanted:
    """One project page to fetch: the serial the listing promised, and validators for a 304."""

    name: str
    expected_serial: int | None = None
    etag: str | None = None
    last_modified: str | None = None

    def __str__(self) -> str:  # task run names show the project
        return self.name


@dataclass(frozen=True, slots=True)
class Work:
    """A sync's plan. ``fetch`` is sorted by name; ``unchanged`` counts the projects skipped."""

    mode: SyncMode
    reason: str
    fetch: tuple[Wanted, ...]
    gone: tuple[str, ...]
    unchanged: int
    #: Takedowns: projects the latest version holds that the upstream's listing no longer has.
    gone_upstream: tuple[str, ...] = ()

    @property
    def scope(self) -> Scope:
        """The commit's scope (see ``mirrorflow.storage.content.ContentWriter.commit_version``)."""
        return Scope.ALL if self.mode is SyncMode.FULL else Scope.TOUCHED


def filter_fingerprint(fields: Mapping[str, object], *, mirror: bool) -> str:
    """Return a sha256 of the ``FINGERPRINT_FIELDS`` of a remote (order of list values ignored).

    The sync mode is part of it: an additive sync leaves behind what a mirror sync would remove,
    so a mirror sync after additive ones must re-evaluate everything.

    >>> filter_fingerprint({"url": "u", "includes": ["b", "a"]}, mirror=True) == filter_fingerprint(
    ...     {"includes": ["a", "b"], "url": "u", "name": "other"}, mirror=True)
    True
    """
    chosen = {key: _canonical(fields.get(key)) for key in FINGERPRINT_FIELDS}
    chosen["(mirror)"] = mirror
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: object) -> object:
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(
            (_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str)
        )
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def plan_projects(
    wanted: Iterable[tuple[str, int | None]],
    remembered: Mapping[str, tuple[int | None, str | None, str | None]],
    *,
    accepted: Collection[str],
    remembered_fingerprint: str | None,
    listing_has_serials: bool,
) -> Work:
    """Decide what to fetch.

    ``wanted`` holds ``(normalized name, listing serial or None)`` of every project the filters
    want; ``remembered`` maps names to ``(serial, etag, last_modified)``. ``listing_has_serials``
    is False when there was no listing (includes) or it was HTML without serials.
    ``accepted`` holds the fingerprints under which the memory is still valid: the current one, and
    for an additive sync also the mirror one of the same filters (a mirror sync leaves nothing an
    additive one would keep).
    """
    wanted_serials = dict(wanted)
    gone = tuple(sorted(name for name in remembered if name not in wanted_serials))
    if remembered_fingerprint not in accepted:
        reason = "first sync" if remembered_fingerprint is None else "filters changed"
        fetch = tuple(Wanted(name, serial) for name, serial in sorted(wanted_serials.items()))
        return Work(SyncMode.FULL, reason, fetch, gone, 0)
    serials_known = listing_has_serials and all(s is not None for s in wanted_serials.values())
    if not serials_known:
        fetch = tuple(
            Wanted(name, serial, *remembered.get(name, (None, None, None))[1:])
            for name, serial in sorted(wanted_serials.items())
        )
        return Work(SyncMode.CONDITIONAL, "the index gives no serials", fetch, gone, 0)
    changed = []
    for name, serial in sorted(wanted_serials.items()):
        previous = remembered.get(name)
        if previous is None or previous[0] is None or previous[0] != serial:
            changed.append(Wanted(name, serial))
    unchanged = len(wanted_serials) - len(changed)
    return Work(SyncMode.SERIAL, "serials compared", tuple(changed), gone, unchanged)


def is_stale(page_serial: int | None, expected_serial: int | None) -> bool:
    """True when a page is older than the listing promised (a CDN or mirror lagging behind).

    >>> is_stale(5, 7), is_stale(7, 7), is_stale(None, 7), is_stale(5, None)
    (True, False, False, False)
    """
    return page_serial is not None and expected_serial is not None and page_serial < expected_serial


def stale_delays(attempts: int, base: float) -> list[float]:
    """The waits before each retry of a stale page: exponential, ``attempts - 1`` of them.

    >>> stale_delays(4, 0.5)
    [0.5, 1.0, 2.0]
    """
    return [base * 2**i for i in range(max(attempts - 1, 0))]


def batched(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Split ``items`` into consecutive batches of at most ``size``.

    >>> batched([1, 2, 3], 2)
    [[1, 2], [3]]
    """
    if size < 1:
        raise ValueError(f"batch size {size!r} is not a positive integer")
    return [items[i : i + size] for i in range(0, len(items), size)]
