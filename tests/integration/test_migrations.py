"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from mirrorflow import storage
from mirrorflow.storage.catalog import Catalog
from mirrorflow.storage.content import package_uuid
from mirrorflow.storage.schema import HEAD_REVISION

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


def test_0007_gives_existing_packages_their_derived_uuid_and_rows_empty_labels(catalog_url):
    config = _config(catalog_url)
    command.upgrade(config, "0006_touch")
    engine = create_engine(catalog_url)
    sha = "a" * 64
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO packages (name, normalized_name, version, filename, packagetype, python_version,"
                " sha256, yanked, has_metadata, url, created) VALUES ('Django', 'django', '2.0',"
                " 'Django-2.0.tar.gz', 'sdist', 'source', :sha, false, false, 'http://x/', :now)"
            ),
            {"sha": sha, "now": datetime.now(UTC)},
        )
        connection.execute(
            text("INSERT INTO remotes (uuid, name, url, created, last_updated, includes, excludes, prereleases,"
                 " package_types, exclude_platforms, keep_latest_packages, policy, tls_validation, extra_filters)"
                 " VALUES ('u', 'bar', 'http://x/', :now, :now, '[]', '[]', true, '[]', '[]', 0, 'on_demand',"
                 " true, '{}')"),
            {"now": datetime.now(UTC)},
        )  # fmt: skip
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT uuid FROM packages")).scalar_one() == package_uuid(
            "Django-2.0.tar.gz", sha
        )
        labels = connection.execute(text("SELECT labels FROM remotes")).scalar_one()
        assert (json.loads(labels) if isinstance(labels, str) else labels) == {}
    engine.dispose()


def test_the_head_revision_known_at_build_time_is_alembics_head():
    heads = ScriptDirectory.from_config(_config("sqlite://")).get_heads()
    assert heads == [HEAD_REVISION], (
        f"mirrorflow.storage.schema.HEAD_REVISION is {HEAD_REVISION!r}; move it to {heads}"
    )


def test_a_catalog_at_the_head_opens_without_alembic_and_one_behind_is_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog.from_url(url).dispose()  # a new catalog: migrated to the head
    probe = (
        "import sys; from mirrorflow.storage.catalog import Catalog; c = Catalog.from_url(sys.argv[1]); "
        "print(c.schema_revision(), 'alembic' in sys.modules)"
    )
    opened = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True)
    assert opened.stdout.split() == [HEAD_REVISION, "False"]

    command.downgrade(_config(url), "-1")
    behind = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True)
    assert behind.stdout.split() == [HEAD_REVISION, "True"]
