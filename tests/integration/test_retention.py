"""retain_repo_versions: only the newest N versions remain, each with exactly the content it had."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from support_content import commit, new_package

from mirrorflow.storage.catalog import NotFound
from mirrorflow.storage.content import ContentWriter
from mirrorflow.storage.maintenance import apply_retention
from mirrorflow.storage.models import RepositoryContent


def _commit(writer: ContentWriter, filenames: list[str], *, mirror: bool) -> int:
    version = commit(writer, "foo", [new_package(f) for f in filenames], mirror=mirror)
    assert version is not None
    return version.number


HISTORY = [
    (["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"], False),
    (["c-1-py3-none-any.whl"], False),
    (["a-1-py3-none-any.whl", "c-1-py3-none-any.whl"], True),  # b leaves
    (["b-1-py3-none-any.whl", "d-1-py3-none-any.whl"], True),  # a, c leave; b is back
    (["e-1-py3-none-any.whl"], False),
]


def _contents(writer: ContentWriter, numbers) -> dict[int, list[str]]:
    return {n: [p.filename for p in writer.content_at("foo", n)] for n in numbers}


@pytest.mark.parametrize("retain", [1, 2, 3])
def test_retention_keeps_the_newest_versions_with_their_exact_content(catalog, retain):
    catalog.create_repository("foo")
    writer = ContentWriter(catalog)
    for filenames, mirror in HISTORY:
        _commit(writer, filenames, mirror=mirror)
    before = _contents(writer, range(0, 6))
    catalog.update_repository("foo", retain_repo_versions=retain)

    result = apply_retention(catalog, "foo")

    kept = list(range(6 - retain, 6))
    assert result.oldest_kept == kept[0]
    assert result.deleted_versions == tuple(range(0, 6 - retain))
    assert [v.number for v in catalog.list_versions("foo")] == kept[::-1]
    assert _contents(writer, kept) == {n: before[n] for n in kept}
    with catalog.session() as session:
        stale = session.scalar(
            select(func.count())
            .select_from(RepositoryContent)
            .where(RepositoryContent.version_removed <= kept[0])
        )
        assert stale == 0, "intervals that ended before the oldest kept version are gone"
    assert result.deleted_intervals > 0 or retain == 3
    with pytest.raises(NotFound):
        catalog.get_version("foo", kept[0] - 1)
    with pytest.raises(NotFound, match=f"version 'foo/{kept[0] - 1}'"):
        writer.content_at("foo", kept[0] - 1)
    assert apply_retention(catalog, "foo").deleted_versions == (), "a second run changes nothing"


def test_without_a_limit_every_version_stays(catalog):
    catalog.create_repository("foo")
    writer = ContentWriter(catalog)
    for filenames, mirror in HISTORY:
        _commit(writer, filenames, mirror=mirror)
    assert apply_retention(catalog, "foo").deleted_versions == ()
    assert len(catalog.list_versions("foo")) == 6


def test_a_sync_applies_retention_and_so_does_lowering_the_limit(cli, seed_index):
    def ok(*args):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        return result.json()

    ok("repository", "create", "--name", "foo", "--retain-repo-versions", "2")
    ok("remote", "create", "--name", "bar", "--url", seed_index.url, "--includes", '["shelf-reader"]')
    ok("repository", "sync", "--name", "foo", "--remote", "bar")
    ok("remote", "update", "--name", "bar", "--includes", '["mf-demo-lib"]')
    ok("repository", "sync", "--name", "foo", "--remote", "bar", "--mirror")
    ok("remote", "update", "--name", "bar", "--includes", '["shelf-reader"]')
    ok("repository", "sync", "--name", "foo", "--remote", "bar")
    versions = ok("repository", "version", "list", "--repository", "foo")
    assert [v["number"] for v in versions] == [3, 2], "the sync dropped versions 0 and 1"
    latest = sorted(p["filename"] for p in ok("content", "list", "--repository", "foo"))

    ok("repository", "update", "--name", "foo", "--retain-repo-versions", "1")
    assert [v["number"] for v in ok("repository", "version", "list", "--repository", "foo")] == [3]
    assert sorted(p["filename"] for p in ok("content", "list", "--repository", "foo")) == latest
