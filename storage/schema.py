"""Facts of the schema known without importing SQLAlchemy or Alembic: the revision this code
expects, the integer bound, which remote columns hold secrets, and the values the schema
constrains that every layer shares (``Policy``: the catalog's CHECK, the remote's field, the sync,
the server).

Importing Alembic and walking its migration scripts costs about 0.1 s, on every start of every
command. A catalog already at ``HEAD_REVISION`` needs neither: ``Catalog.migrate`` reads the one
row of ``alembic_version`` and runs Alembic only when it differs (a new catalog, or one behind).
``tests/integration/test_migrations.py`` holds ``HEAD_REVISION`` equal to the head of ``storage/migrations``,
so a new migration that forgets to move it fails the suite.
"""

from __future__ import annotations

import enum

__all__ = ["HEAD_REVISION", "MAX_INT", "SECRET_FIELDS", "VERSION_TABLE", "Policy"]

#: The newest revision under ``storage/migrations/versions`` (Alembic's head).
HEAD_REVISION = "0017_closure_page_scope"
#: Alembic's table holding a database's revision.
VERSION_TABLE = "alembic_version"
#: The largest value an integer column holds (PostgreSQL ``integer``): the bound of every count option.
MAX_INT = 2**31 - 1
#: The remote's credential fields: stored encrypted (``storage.catalog``), never printed, never given
#: inline (``flows``): shown as ``hidden_fields`` with ``is_set``, in the seed's order.
SECRET_FIELDS = ("client_key", "proxy_username", "proxy_password", "username", "password")
#: Marks a sealed header value in a remote's ``headers`` (JSON): the ciphertext follows
#: (``storage.secrets``; here so that ``storage.sqlite_reads`` tells one without importing cryptography).
SEALED_PREFIX = "mirrorflow-sealed:"


class Policy(enum.StrEnum):
    """How a repository gets a remote's files (Pulp's names): the one definition of the three values.

    ``immediate`` downloads and stores them while syncing; ``on_demand`` records them and fetches each
    on its first request; ``streamed`` records them and proxies every request without storing.
    """

    IMMEDIATE = "immediate"
    ON_DEMAND = "on_demand"
    STREAMED = "streamed"
