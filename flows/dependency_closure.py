"""The dependency closure's rounds, inside a sync (``include_dependencies``; ``docs/closure.md``).

``close_dependencies`` runs before the sync's stages: each round maps ``dependencies-batch`` over
the closure's pending projects (``mirrorflow.tasks.stages``), a bounded window of batches at a time,
and feeds the small results to the pure ``Closure`` (``mirrorflow.tasks.closure``). At the fixed
point, the remote's includes gain the implicit ones (``with_implicit_includes``) and the sync runs
as usual: every filter, the serial memory, the commit. The implicit includes are part of the filter
fingerprint, so a closure that changed makes the next sync re-evaluate every project; one that did
not lets the sync stay incremental, and the metadata of a file already read comes from the cache
(by sha256).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prefect.futures import PrefectFuture

from mirrorflow.flows.remote_spec import RemoteFields
from mirrorflow.storage.closure_pages import ClosurePages
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.clients import SyncServices
from mirrorflow.tasks.closure import Closure, ProjectDependencies
from mirrorflow.tasks.config import SyncConfig
from mirrorflow.tasks.dist_metadata import DependencyReader
from mirrorflow.tasks.listing import batched
from mirrorflow.tasks.stages import dependencies_batch_task

__all__ = ["MAX_ROUNDS", "ClosureTooDeep", "close_dependencies", "with_implicit_includes"]

#: More rounds than any real dependency chain is long: a bug or a hostile index, not a closure.
MAX_ROUNDS = 100


class ClosureTooDeep(MirrorflowError, RuntimeError):
    def __init__(self, rounds: int) -> None:
        super().__init__(f"the dependency closure did not settle in {rounds} rounds; nothing was synced")


def close_dependencies(
    config: SyncConfig, services: SyncServices, reader: DependencyReader, *, task_workers: int, logger: Any
) -> Closure:
    """Run the closure's rounds to the fixed point; return it (``.implicit_includes()``, ``.report()``).

    Raises ``ClosureTooDeep`` after ``MAX_ROUNDS`` rounds; the errors of a batch's task otherwise.
    A closure that settles with every page read prunes the page memory of this repository and remote
    (``mirrorflow.storage.closure_pages``): the rows it did not use are of projects no longer needed.
    """
    started = datetime.now(UTC)
    complete = True
    closure = Closure.start(config.spec, today=config.now.date())
    logger.info("dependency closure for %s", closure.described)
    while names := closure.start_round():
        if closure.rounds > MAX_ROUNDS:
            raise ClosureTooDeep(MAX_ROUNDS)
        round_config = replace(config, spec=closure.spec())
        outcomes = _run_round(names, round_config, services, reader, task_workers)
        for outcome in sorted(outcomes, key=lambda o: o.project):  # sorted: the same chains every run
            closure.record(outcome)
            complete = complete and outcome.failure is None
        logger.info(
            "dependency closure round %d: %d project(s) evaluated, %d implicit include(s) so far",
            closure.rounds,
            len(names),
            len(closure.implicit_includes()),
        )
    if complete:
        memory = ClosurePages(services.writer.catalog)
        pruned = memory.prune(repository_id=config.repository_id, remote=config.remote, before=started)
        if pruned:
            logger.info("dependency closure: %d remembered page(s) no longer used, forgotten", pruned)
    return closure


def _run_round(
    names: Sequence[str],
    config: SyncConfig,
    services: SyncServices,
    reader: DependencyReader,
    task_workers: int,
) -> list[ProjectDependencies]:
    """Map ``dependencies-batch`` over ``names``, at most twice the task workers' batches in flight."""
    window: deque[PrefectFuture[tuple[ProjectDependencies, ...]]] = deque()
    outcomes: list[ProjectDependencies] = []
    for batch in batched(names, config.batch_size):
        if len(window) >= 2 * task_workers:
            outcomes.extend(window.popleft().result())
        window.append(dependencies_batch_task.submit(batch, config, services, reader, first=batch[0]))
    while window:
        outcomes.extend(window.popleft().result())
    return outcomes


def with_implicit_includes(fields: RemoteFields, closure: Closure) -> RemoteFields:
    """The remote's fields with the closure's implicit includes OR-ed to its own (sorted, deduplicated)."""
    includes = list(dict.fromkeys([*fields.includes, *closure.implicit_includes()]))
    return fields.model_copy(update={"includes": includes})
