"""Alembic environment: runs migrations on the connection the catalog hands over."""

from __future__ import annotations

from alembic import context

import mirrorflow.storage.advisories  # noqa: F401  (models defined beside their logic: put them in Base.metadata)
import mirrorflow.storage.blocklists  # noqa: F401
import mirrorflow.storage.closure_pages  # noqa: F401
import mirrorflow.storage.dependency_cache  # noqa: F401
import mirrorflow.storage.locks  # noqa: F401
import mirrorflow.storage.models_serials  # noqa: F401
import mirrorflow.storage.project_statuses  # noqa: F401
import mirrorflow.storage.provenance  # noqa: F401
import mirrorflow.storage.schedules  # noqa: F401
from mirrorflow.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
