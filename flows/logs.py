"""Send the steps' stdlib log records (``mirrorflow.tasks.*``, ``mirrorflow.storage.*``) to the Prefect run they belong to.

The steps log with the standard library only (decision code stays free of Prefect), so their
warnings (retries with the status, skipped unsafe files, stale pages) would reach a terminal but
not the run's logs in the Prefect UI. ``route_to_prefect`` attaches Prefect's API log handler to
those loggers, once per process; a record is sent only from inside a flow or task run.
"""

from __future__ import annotations

import logging

__all__ = ["PROGRESS", "ROUTED", "route_to_prefect"]

#: The loggers whose records go to the run's logs.
ROUTED = ("mirrorflow.tasks", "mirrorflow.storage")
#: Progress lines of long downloads (INFO): sent too, unless the logger was configured otherwise.
PROGRESS = "mirrorflow.tasks.progress"


def route_to_prefect() -> None:
    """Attach the run-log handler to ``ROUTED`` (idempotent)."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging.handlers import APILogHandler

    class _RunLogHandler(APILogHandler):
        def emit(self, record: logging.LogRecord) -> None:
            if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
                super().emit(record)

    for name in ROUTED:
        logger = logging.getLogger(name)
        if any(getattr(handler, "_mirrorflow", False) for handler in logger.handlers):
            continue
        handler = _RunLogHandler(level=logging.INFO)
        handler._mirrorflow = True  # type: ignore[attr-defined]
        logger.addHandler(handler)  # the loggers' own level stays: warnings, unless a user asks for more
    progress = logging.getLogger(PROGRESS)
    if progress.level == logging.NOTSET:
        progress.setLevel(logging.INFO)
