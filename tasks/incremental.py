"""The incremental half of a sync's I/O shell: what to fetch, what is gone, and fetching a page right.

``tasks.planning`` decides (pure); this module feeds it and acts on its answer:

- ``list_projects`` / ``plan_work`` read the listing (unless includes name the projects) and the
  serial memory once, and return the plan (``tasks.planning.Work``);
- ``record_gone`` marks the projects that left the listing, so that the commit forgets them;
- ``fetch_page`` fetches one planned page: conditionally where validators are remembered, and
  again with backoff while it is older than the listing promised (a stale page).

Split out of ``tasks.batch``, which runs the batches. Errors are the index client's (``tasks.index_client``), retried per
request when transient (``tasks.retrying``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName

from storage.artifacts import StoreUnavailable
from storage.serials import Touched
from tasks.filters import FilterSpec, included_project_names, wanted_projects
from tasks.index_client import ConditionalPage, IndexClient, TransientError
from tasks.planning import Wanted, Work, is_stale, plan_projects, stale_delays
from tasks.retrying import call_with_retries

if TYPE_CHECKING:  # tasks.batch imports this module: the types only, no cycle at run time
    from tasks.batch import SyncPlan, SyncServices

__all__ = ["TRANSIENT", "fetch_page", "list_projects", "plan_work", "record_gone"]

log = logging.getLogger(__name__)

#: The errors worth another attempt (the same set as ``tasks.batch``'s).
#: The errors worth a retry with backoff, wherever a sync calls the index or the store (one list).
TRANSIENT = (TransientError, StoreUnavailable)


def list_projects(spec: FilterSpec, index: IndexClient, *, attempts: int) -> list[NormalizedName]:
    """Return the projects to sync: the includes' names, or the whole listing minus name-only excludes."""
    if spec.includes:
        return included_project_names(spec)
    listing = call_with_retries(index.get_listing, attempts=attempts, transient=TRANSIENT)
    return wanted_projects((p.name for p in listing.projects), spec)


def plan_work(plan: SyncPlan, services: SyncServices, *, accepted: Collection[str]) -> Work:
    """Read the listing (unless includes name the projects) and the memory; decide what to fetch.

    ``accepted``: the filter fingerprints the memory may carry (``tasks.planning.plan_projects``).
    Raises the index client's errors when the listing cannot be read.
    """
    spec = plan.spec
    if spec.includes:
        wanted: list[tuple[str, int | None]] = [(n, None) for n in included_project_names(spec)]
        has_serials = False
    else:
        listing = call_with_retries(services.index.get_listing, attempts=plan.attempts, transient=TRANSIENT)
        serial_of = {p.name: p.last_serial for p in listing.projects}
        wanted = [(n, serial_of[n]) for n in wanted_projects(serial_of, spec)]
        has_serials = True
    memory = services.memory
    remembered = memory.remembered(plan.repository_id, plan.remote)
    previous = memory.fingerprint(plan.repository_id, plan.remote)
    return plan_projects(
        wanted,
        remembered,
        accepted=accepted,
        remembered_fingerprint=previous,
        listing_has_serials=has_serials,
    )


def record_gone(names: Sequence[str], plan: SyncPlan, services: SyncServices) -> None:
    """Mark projects gone from the listing: the commit forgets them (and removes them in mirror mode)."""
    if names:
        services.memory.touch(plan.sync_id, plan.repository_id, (Touched(n, "gone") for n in names))


def fetch_page(item: Wanted, plan: SyncPlan, services: SyncServices) -> ConditionalPage:
    """Fetch a page (conditionally when validators are known), refetching it while it is stale.

    Returns the last answer: a stale page when the retries ran out (the caller checks). Raises the
    index client's errors (``ProjectNotFound``, and the rest once the retries ran out).
    """
    delays = stale_delays(plan.attempts, plan.stale_backoff)
    while True:
        answer = call_with_retries(
            lambda: services.index.get_project_if_changed(
                item.name, etag=item.etag, last_modified=item.last_modified
            ),
            attempts=plan.attempts,
            transient=TRANSIENT,
        )
        page = answer.page
        if page is None or not is_stale(page.last_serial, item.expected_serial) or not delays:
            return answer
        log.info(
            "page of %r is older than the listing (serial %s < %s): retrying",
            item.name,
            page.last_serial,
            item.expected_serial,
        )
        time.sleep(delays.pop(0))
