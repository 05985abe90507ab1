"""Where mirrorflow keeps its embedded state, read from the environment without pydantic-settings.

``mirrorflow.flows.settings.Settings`` reads every setting, typed and checked; importing pydantic-settings for
it costs about 0.1 s, more than a whole listing command may take (``benchmarks/cli_startup.py``).
The listing commands need one fact, the embedded SQLite catalog's file, and read it here, from the
same two settings and with the same rules (``tests/integration/test_fast_commands.py`` holds both to agree).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_home", "sqlite_catalog_file"]

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
