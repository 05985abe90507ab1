"""The driver-level bulk writes (``mirrorflow.storage.bulk``) against SQLite and PostgreSQL: rows read back
through the ORM equal what was written, ids come back for new and existing rows, and chunking
keeps every statement under the parameter limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mirrorflow.storage.bulk import MAX_PARAMETERS, BulkWriter
from mirrorflow.storage.content import ContentWriter, NewPackage
from mirrorflow.storage.models import Package, SyncStaging


def _package(i: int, *, yanked: bool = False, upload: datetime | None = None) -> NewPackage:
    return NewPackage(
        name="Demo-Pkg",
        normalized_name="demo-pkg",
        version=f"1.{i}",
        filename=f"demo_pkg-1.{i}-py3-none-any.whl",
        packagetype="bdist_wheel",
        python_version="py3",
        requires_python=">=3.8" if i % 2 else None,
        sha256=f"{i:064x}",
        size=100 + i,
        upload_time=upload,
        yanked=yanked,
        yanked_reason="broken" if yanked else None,
        metadata_sha256=None,
        has_metadata=bool(i % 3),
        url=f"https://index.example/files/demo_pkg-1.{i}-py3-none-any.whl",
    )


def test_rows_read_back_through_the_orm_as_written(catalog):
    upload = datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    written = [_package(1, upload=upload), _package(2), _package(3, yanked=True)]
    ids = ContentWriter(catalog).upsert_packages(written)
    assert set(ids) == {(p.filename, p.sha256) for p in written}
    with catalog.session() as session:
        rows = {row.filename: row for row in session.scalars(select(Package))}
        for package in written:
            row = rows[package.filename]
            assert row.id == ids[(package.filename, package.sha256)]
            for name in ("name", "normalized_name", "version", "packagetype", "python_version"):
                assert getattr(row, name) == getattr(package, name)
            assert (row.requires_python, row.size, row.yanked, row.yanked_reason, row.has_metadata) == (
                package.requires_python,
                package.size,
                package.yanked,
                package.yanked_reason,
                package.has_metadata,
            )
            # compare naive UTC: SQLite hands back naive datetimes, as SQLAlchemy stored them
            got = row.upload_time
            want = package.upload_time
            assert (got and got.replace(tzinfo=None)) == (want and want.replace(tzinfo=None))
            assert row.created is not None and row.touched_at is None


def test_upsert_returns_existing_ids_and_refreshes_the_yank(catalog):
    writer = ContentWriter(catalog)
    first = writer.upsert_packages([_package(1), _package(2)])
    again = writer.upsert_packages([_package(2, yanked=True), _package(3), _package(2, yanked=True)])
    key2 = (_package(2).filename, _package(2).sha256)
    assert again[key2] == first[key2]
    assert len(again) == 2
    with catalog.session() as session:
        row = session.scalar(select(Package).where(Package.id == first[key2]))
        assert row is not None and row.yanked and row.yanked_reason == "broken"
        assert row.touched_at is not None  # reused by a sync: cleanup's clock restarts


def test_chunks_stay_under_the_parameter_limit(catalog):
    writer = ContentWriter(catalog)
    rows_per_statement = MAX_PARAMETERS // 16
    packages = [_package(i) for i in range(rows_per_statement + 7)]
    ids = writer.upsert_packages(packages)
    assert len(ids) == len(packages) and len(set(ids.values())) == len(packages)
    repository = catalog.create_repository("bulk")
    writer.stage("sync-1", repository.id, ids.values())
    writer.stage("sync-1", repository.id, ids.values())  # idempotent
    with catalog.session() as session:
        staged = session.scalars(select(SyncStaging.package_id).where(SyncStaging.sync_id == "sync-1")).all()
    assert sorted(staged) == sorted(ids.values())


def test_unknown_columns_are_refused(catalog):
    with pytest.raises(ValueError, match="no column"):
        BulkWriter(Package.__table__, ("filename", "nope"), catalog.engine.dialect)


@pytest.mark.parametrize("total", [0, 1, 7, 255, 256, 257, 600, 5000])
def test_upserts_use_a_few_statement_lengths(total):
    from mirrorflow.storage.bulk import UPSERT_ROWS, _chunk_lengths

    lengths = _chunk_lengths(total, UPSERT_ROWS)
    assert sum(lengths) == total
    # full statements, then distinct powers of two: at most nine statement texts for any batch
    assert all(length == UPSERT_ROWS or length & (length - 1) == 0 for length in lengths)
    assert len([n for n in lengths if n != UPSERT_ROWS]) == len({n for n in lengths if n != UPSERT_ROWS})


@pytest.mark.postgres
def test_a_large_commit_refreshes_the_planner_statistics(catalog_url_postgres, monkeypatch):
    """After a commit of many rows, the next commit's planner must not see an empty table."""
    from sqlalchemy import text

    import mirrorflow.storage.content
    from mirrorflow.storage.catalog import Catalog

    monkeypatch.setattr(mirrorflow.storage.content, "ANALYZE_AFTER_ROWS", 5)
    catalog = Catalog.from_url(catalog_url_postgres)
    try:
        writer = ContentWriter(catalog)
        repository = catalog.create_repository("big")
        ids = writer.upsert_packages([_package(i) for i in range(6)])
        writer.stage("sync-a", repository.id, ids.values())
        assert writer.commit_version(repository="big", sync_id="sync-a", mirror=False) is not None
        with catalog.engine.connect() as connection:
            analyzed = connection.execute(
                text("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
            ).scalars()
            assert {"repository_content", "packages"} <= set(analyzed)
    finally:
        catalog.dispose()
