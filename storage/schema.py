"""The schema revision this code expects, known without importing Alembic.

Importing Alembic and walking its migration scripts costs about 0.1 s, on every start of every
command. A catalog already at ``HEAD_REVISION`` needs neither: ``Catalog.migrate`` reads the one
row of ``alembic_version`` and runs Alembic only when it differs (a new catalog, or one behind).
``tests/test_migrations.py`` holds ``HEAD_REVISION`` equal to the head of ``storage/migrations``,
so a new migration that forgets to move it fails the suite.
"""

from __future__ import annotations

__all__ = ["HEAD_REVISION", "MAX_INT", "VERSION_TABLE"]

#: The newest revision under ``storage/migrations/versions`` (Alembic's head).
HEAD_REVISION = "0008_schedule_paused"
#: Alembic's table holding a database's revision.
VERSION_TABLE = "alembic_version"
#: The largest value an integer column holds (PostgreSQL ``integer``): the bound of every count option.
MAX_INT = 2**31 - 1
