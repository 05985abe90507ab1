"""What a CLI sync prints on the terminal: a progress bar, then the JSON result or one error line.

Prefect's logging (``prefect/logging/logging.yml``) sends every flow- and task-run record to two
handlers: ``api``, attached to the ``prefect.flow_runs`` and ``prefect.task_runs`` loggers, which
ships them to the Prefect server (the UI shows them), and ``console``, on the root logger, which
prints them, a failed run's traceback included. ``quiet_prefect_console`` filters the console
handler only, from the start of a CLI sync to the end of its process: the run logs still reach the API, the terminal gets
none of them. Prefect's own INFO lines (the temporary server starting and stopping) are left out
too; warnings and errors from anything else still show. ``--debug`` (or ``MIRRORFLOW_DEBUG=1``)
leaves the console as Prefect configured it.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_prefect_console"]

_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class _NoRunLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name.startswith(_RUN_LOGGERS):
            return False  # in the Prefect UI; the CLI prints its own summary or error line
        return not (name.startswith("prefect") and record.levelno < logging.WARNING)


def _console_handlers() -> list[logging.Handler]:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())


_QUIET = _NoRunLogs()


def quiet_prefect_console() -> None:
    """Keep flow- and task-run logs (and Prefect's INFO lines) off the terminal from now on.

    For the rest of the process, not a scope: the temporary server's "Stopping" line comes at exit.
    Installing it twice is a no-op (one filter object; ``addFilter`` skips a known one).
    """
    for handler in _console_handlers():
        handler.addFilter(_QUIET)
