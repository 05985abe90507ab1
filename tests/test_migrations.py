"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import storage
from storage.catalog import Catalog

MIGRATIONS = Path(storage.__file__).parent / "migrations"


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_migrations_form_one_line_of_history():
    heads = ScriptDirectory.from_config(_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"several heads: {heads}"


def test_migrated_schema_matches_the_models(catalog_url):
    catalog = Catalog.from_url(catalog_url)
    catalog.migrate()  # twice: idempotent
    catalog.dispose()
    command.check(_config(catalog_url))  # raises when autogenerate sees any difference
