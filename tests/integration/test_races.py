"""Two syncs of one repository committing at once, with any outer guard bypassed.

The Prefect side serialises syncs of a repository; these tests prove that the database keeps its
invariants without that guard: version numbers stay unique and no staged package is lost. The
commits are started together (a barrier inside ``commit_version``) from two threads.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.selectable import Select

from mirrorflow.storage.content import ContentWriter, NewPackage


def _package(i: int) -> NewPackage:
    return NewPackage(
        name="demo", normalized_name="demo", version=f"1.{i}", filename=f"demo-1.{i}.tar.gz",
        packagetype="sdist", python_version="source", requires_python=None,
        sha256=hashlib.sha256(str(i).encode()).hexdigest(), size=1, upload_time=None, yanked=False,
        yanked_reason=None, metadata_sha256=None, has_metadata=False, url=f"https://index.example/{i}",
    )  # fmt: skip


def _stage(writer: ContentWriter, repository_id: int, sync_id: str, numbers: range) -> set[int]:
    ids = writer.upsert_packages([_package(i) for i in numbers])
    writer.stage(sync_id, repository_id, ids.values())
    return set(ids.values())


def _start_together(monkeypatch, *, lock: bool) -> None:
    """Make both commits build their repository query at the same moment (optionally without FOR UPDATE)."""
    barrier = threading.Barrier(2, timeout=30)
    original = Select.with_for_update

    def together(self, *args, **kwargs):
        barrier.wait()
        return original(self, *args, **kwargs) if lock else self

    monkeypatch.setattr(Select, "with_for_update", together)


def _commit(writer: ContentWriter, sync_id: str):
    return writer.commit_version(repository="foo", sync_id=sync_id, mirror=False)


def test_concurrent_commits_get_unique_numbers_and_lose_nothing(catalog, monkeypatch):
    writer = ContentWriter(catalog)
    repo = catalog.create_repository("foo")
    expected: set[int] = set()
    for round_ in range(3):
        a = _stage(writer, repo.id, f"a{round_}", range(10 * round_, 10 * round_ + 3))
        b = _stage(writer, repo.id, f"b{round_}", range(10 * round_ + 5, 10 * round_ + 8))
        expected |= a | b
        _start_together(monkeypatch, lock=True)
        with ThreadPoolExecutor(2) as pool:
            views = list(pool.map(lambda s: _commit(writer, s), [f"a{round_}", f"b{round_}"]))
        assert sorted(v.number for v in views) == [2 * round_ + 1, 2 * round_ + 2]
        assert {p.id for p in writer.content_at("foo")} == expected, "every staged package is present"
    numbers = [v.number for v in catalog.list_versions("foo")]
    assert numbers == list(range(6, -1, -1)), "unique and gapless"
    assert catalog.list_versions("foo")[0].present == len(expected) == 18


@pytest.mark.postgres
def test_without_the_row_lock_the_schema_refuses_a_duplicate_number_and_the_loser_can_retry(
    catalog_url_postgres, monkeypatch
):
    from mirrorflow.storage.catalog import Catalog

    catalog = Catalog.from_url(catalog_url_postgres)
    try:
        writer = ContentWriter(catalog)
        repo = catalog.create_repository("foo")
        a = _stage(writer, repo.id, "a", range(0, 3))
        b = _stage(writer, repo.id, "b", range(5, 8))
        _start_together(monkeypatch, lock=False)
        read = threading.Barrier(2, timeout=30)

        @event.listens_for(catalog.engine, "after_cursor_execute")
        def _both_have_read(conn, cursor, statement, *args) -> None:
            if statement.startswith("SELECT repositories.id") and "FOR UPDATE" not in statement:
                read.wait()  # both read latest_version 0 before either writes: both aim for 1

        def attempt(sync_id: str):
            try:
                return _commit(writer, sync_id)
            except IntegrityError as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            outcomes = dict(zip("ab", pool.map(attempt, ["a", "b"]), strict=True))
        event.remove(catalog.engine, "after_cursor_execute", _both_have_read)
        losers = [s for s, o in outcomes.items() if isinstance(o, IntegrityError)]
        assert len(losers) == 1, f"exactly one commit lost the race: {outcomes}"
        assert "uq_version_number" in str(outcomes[losers[0]])
        assert [v.number for v in catalog.list_versions("foo")] == [1, 0]
        monkeypatch.undo()
        retried = _commit(writer, losers[0])  # its staging rows survived the rolled-back commit
        assert retried is not None and retried.number == 2
        assert {p.id for p in writer.content_at("foo")} == a | b
        assert writer.content_at("foo", 1) and len(writer.content_at("foo", 1)) == 3
    finally:
        catalog.dispose()
