"""Catalog fixtures: SQLite in a temp dir, and a real PostgreSQL database per test session.

PostgreSQL is found through ``MIRRORFLOW_TEST_POSTGRES_URL`` (default: the local server,
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). A throwaway database is created for the
session and dropped at its end. Tests marked ``postgres`` fail, not skip, when it is unreachable
and ``CI`` is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mirrorflow.storage.catalog import Catalog

__all__ = ["postgres_url", "catalog_url", "catalog_url_postgres", "catalog", "sqlite_url"]

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped afterwards."""
    admin_url = make_url(os.environ.get("MIRRORFLOW_TEST_POSTGRES_URL", DEFAULT_PG))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"mirrorflow_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unreachable at {admin_url.render_as_string()}: {exc}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def catalog_url_postgres(postgres_url) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path) -> str:
    """A catalog URL per backend; the PostgreSQL one is emptied before each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("catalog_url_postgres")


@pytest.fixture
def catalog(catalog_url) -> Iterator[Catalog]:
    cat = Catalog.from_url(catalog_url)
    yield cat
    cat.dispose()
