"""Where mirrorflow keeps its embedded state, read from the environment without pydantic-settings.

``mirrorflow.flows.settings.Settings`` reads every setting, typed and checked; importing pydantic-settings for
it costs about 0.1 s, more than a whole listing command may take (``benchmarks/cli_startup.py``).
The listing commands need one fact, the embedded SQLite catalog's file, and read it here, from the
same two settings and with the same rules (``tests/integration/test_fast_commands.py`` holds both to agree).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

__all__ = ["default_home", "home_of", "keep_prefect_results_in_home", "sqlite_catalog_file"]

#: The variables by which a user chooses where Prefect keeps results (its home holds them by default).
_RESULTS_CHOSEN = ("PREFECT_RESULTS_LOCAL_STORAGE_PATH", "PREFECT_LOCAL_STORAGE_PATH", "PREFECT_HOME")

_SQLITE_FILE_URL = "sqlite:///"


def default_home(*, environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/mirrorflow`` or ``~/.local/share/mirrorflow``."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mirrorflow"


def sqlite_catalog_file(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The file of the SQLite catalog the settings name, or None when it is not a plain file URL
    (a PostgreSQL URL, an in-memory database, query parameters): those go through ``Settings``.

    As pydantic-settings reads them: the ``MIRRORFLOW_`` names in any case, an empty
    ``MIRRORFLOW_DATABASE_URL`` meaning the default.
    """
    values = {key.lower(): value for key, value in environ.items()}
    url = values.get("mirrorflow_database_url")
    if url:
        path = url.removeprefix(_SQLITE_FILE_URL)
        return Path(path) if url.startswith(_SQLITE_FILE_URL) and path and "?" not in path else None
    home = values.get("mirrorflow_home")
    return (Path(home) if home is not None else default_home(environ=environ)) / "catalog.db"


def home_of(environ: Mapping[str, str] = os.environ) -> Path:
    """``MIRRORFLOW_HOME`` (or the default), absolute: another process may run elsewhere."""
    values = {key.lower(): value for key, value in environ.items()}
    home = values.get("mirrorflow_home")
    return (Path(home) if home is not None else default_home(environ=environ)).absolute()


def keep_prefect_results_in_home(environ: MutableMapping[str, str] = os.environ) -> None:
    """Keep Prefect's locally persisted results (a failed run's, for one) in ``<home>/prefect/storage``,
    beside the local server's database, rather than in ``~/.prefect/storage`` outside the home; unless
    the user chose where they go (``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, ``PREFECT_LOCAL_STORAGE_PATH``,
    or ``PREFECT_HOME``, which holds them by default). Every entry point calls it before Prefect is
    imported; what it starts (the warm sync process, served runs) inherits it.

    >>> env = {"MIRRORFLOW_HOME": "/h"}
    >>> keep_prefect_results_in_home(env); env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]
    '/h/prefect/storage'
    >>> env = {"MIRRORFLOW_HOME": "/h", "PREFECT_HOME": "/p"}
    >>> keep_prefect_results_in_home(env); "PREFECT_RESULTS_LOCAL_STORAGE_PATH" in env
    False
    """
    if not any(environ.get(name) for name in _RESULTS_CHOSEN):
        environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(home_of(environ) / "prefect" / "storage")
