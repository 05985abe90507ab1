"""The resolve stage: project pages -> each project's listed files with their versions, or why not.

``resolve_batch`` fetches the pages of one batch over the shared fetch pool (``mirrorflow.tasks.workers``):
conditionally where the memory holds validators (a 304 leaves the project untouched), and again with
backoff while a page is older than the listing promised (a stale page is left as it was and retried
by the next sync). A project that fails is reported with what to do about it; it does not fail the
batch. What the filter stage then keeps is its decision (``mirrorflow.tasks.filters``).

Errors are the index client's (``mirrorflow.tasks.index_client``), retried per request when transient.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from packaging.utils import canonicalize_name

from mirrorflow.storage.serials import Touched
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.config import SyncConfig
from mirrorflow.tasks.distributions import ProjectPage
from mirrorflow.tasks.filters import Selection
from mirrorflow.tasks.index_client import ConditionalPage, ProjectNotFound
from mirrorflow.tasks.listing import Wanted, is_stale, stale_delays
from mirrorflow.tasks.report import TRANSIENT, advice_for, describe
from mirrorflow.tasks.retrying import call_with_retries
from mirrorflow.tasks.workers import pulled, shared_pool

__all__ = ["ResolvedBatch", "ResolvedProject", "fetch_page", "resolve_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResolvedProject:
    """One project of a batch after the resolve stage (and, with ``selection``, the filter stage).

    Exactly one outcome: ``page`` (fetched; ``touched`` says how the memory records it), ``not_found``,
    ``not_modified`` (a 304), ``touched`` alone (a stale page, left as it was) or ``failure``.
    """

    name: str
    page: ProjectPage | None = None
    touched: Touched | None = None
    not_found: bool = False
    not_modified: bool = False
    failure: str | None = None
    advice: str | None = None
    #: Set by the filter stage: the page's files kept, and each other one with its reason.
    selection: Selection | None = None


class ResolvedBatch:
    """The projects of one batch, in the batch's order: what one stage hands the next.

    A plain class on purpose: Prefect walks every dataclass and collection in a task's arguments
    looking for futures, and a batch holds every file of every page. This one it passes as it is.
    """

    __slots__ = ("projects",)

    def __init__(self, projects: Sequence[ResolvedProject]) -> None:
        self.projects = tuple(projects)

    def __len__(self) -> int:
        return len(self.projects)

    def __repr__(self) -> str:
        return f"ResolvedBatch({len(self.projects)} project(s))"

    def __reduce__(self) -> tuple[type[ResolvedBatch], tuple[tuple[ResolvedProject, ...]]]:
        return (ResolvedBatch, (self.projects,))


def resolve_batch(batch: Sequence[Wanted], config: SyncConfig, services: SyncServices) -> ResolvedBatch:
    """Fetch the pages of ``batch`` (the listing stage's ``Wanted`` entries) over the shared pool."""
    pool, pacer = shared_pool(config.concurrency)
    return ResolvedBatch(
        pulled(
            pool, config.concurrency, lambda item: resolve_project(item, config, services), batch, pacer=pacer
        )
    )


def resolve_project(item: Wanted, config: SyncConfig, services: SyncServices) -> ResolvedProject:
    """Fetch one project's page and say what became of it (never raises for a project's own failure)."""
    name = item.name
    try:
        answer = fetch_page(item, config, services)
    except ProjectNotFound:
        return ResolvedProject(name, touched=Touched(name, "gone"), not_found=True)
    except Exception as exc:  # reported per project; the failure_policy decides for the sync (tasks.outcome)
        return ResolvedProject(name, failure=describe(exc), advice=advice_for(exc))
    page = answer.page
    if page is None:
        return ResolvedProject(name, not_modified=True)  # 304: untouched, keeps its content and its memory
    if is_stale(page.last_serial, item.expected_serial):
        log.warning(
            "%s: page still older than the listing (serial %s < %s) after %d tries: left as it was, "
            "the next sync retries it",
            name,
            page.last_serial,
            item.expected_serial,
            config.attempts,
        )
        return ResolvedProject(name, touched=Touched(name, "stale"))
    if page.name != canonicalize_name(name):
        # A page that names another project (or garbage): file it under the project we asked for.
        page = replace(page, name=canonicalize_name(name), display_name=name)
    serial = page.last_serial if page.last_serial is not None else item.expected_serial
    return ResolvedProject(
        name, page=page, touched=Touched(name, "fetched", serial, answer.etag, answer.last_modified)
    )


def fetch_page(item: Wanted, config: SyncConfig, services: SyncServices) -> ConditionalPage:
    """Fetch a page (conditionally when validators are known), refetching it while it is stale.

    Returns the last answer: a stale page when the retries ran out (the caller checks). Raises the
    index client's errors (``ProjectNotFound``, and the rest once the retries ran out).
    """
    delays = stale_delays(config.attempts, config.stale_backoff)
    tried = 0
    while True:
        tried += 1
        answer = call_with_retries(
            lambda: services.index.get_project_if_changed(
                item.name, etag=item.etag, last_modified=item.last_modified
            ),
            attempts=config.attempts,
            transient=TRANSIENT,
            connection_backoff=config.connection_backoff,
        )
        page = answer.page
        if page is None or not is_stale(page.last_serial, item.expected_serial) or not delays:
            return answer
        wait = delays.pop(0)
        log.warning(
            "%s: page older than the listing (serial %s < %s): retrying in %.1f s (try %d of %d)",
            item.name,
            page.last_serial,
            item.expected_serial,
            wait,
            tried,
            config.attempts,
        )
        time.sleep(wait)
