"""Choosing the sync flow's task runner: a bounded thread pool (default) or a Dask cluster.

Read once, at the entry point, from ``MIRRORFLOW_TASK_RUNNER`` (``threads`` or ``dask``),
``MIRRORFLOW_DASK_ADDRESS`` (a scheduler such as ``tcp://10.0.0.5:8786``; unset: a local
cluster of ``MIRRORFLOW_DASK_WORKERS`` processes) and ``MIRRORFLOW_TASK_WORKERS`` (threads).
Dask needs the optional extra: ``pip install 'mirrorflow[dask]'``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mirrorflow.storage.errors import MirrorflowError

__all__ = ["RunnerSettings", "TaskRunnerUnavailable", "task_runner_for"]


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIRRORFLOW_", extra="ignore")

    task_runner: Literal["threads", "dask"] = Field(default="threads", description="threads or dask.")
    task_workers: int = Field(default=4, ge=1, le=64, description="Threads of the thread-pool runner.")
    dask_address: str | None = Field(default=None, description="Dask scheduler; unset: a local cluster.")
    dask_workers: int = Field(default=2, ge=1, le=256, description="Processes of the local Dask cluster.")


class TaskRunnerUnavailable(MirrorflowError, ValueError):
    """The task runner the settings name cannot be built here (its package is not installed)."""


def task_runner_for(settings: RunnerSettings) -> Any:
    """The task runner the settings name (a ``prefect.task_runners.TaskRunner``)."""
    if settings.task_runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=settings.task_workers)
    try:
        from prefect_dask.task_runners import DaskTaskRunner
    except ImportError:
        raise TaskRunnerUnavailable(
            "task_runner: 'dask' needs prefect-dask; install it with pip install 'mirrorflow[dask]'"
        ) from None
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 2, "processes": True},
    )
