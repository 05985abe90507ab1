"""The dependency cache on both catalogs (SQLite and PostgreSQL): bulk, idempotent, checked keys."""

from __future__ import annotations

import hashlib

import pytest

from mirrorflow.storage.dependency_cache import CHUNK, CachedDependencies, DependencyStore, InvalidDigest


def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_put_then_get_many_in_chunks_keeps_lists_empties_and_unknowns(catalog):
    store = DependencyStore(catalog)
    answers = {
        _digest(n): CachedDependencies(tuple(f"dep{i}>={n}" for i in range(n % 3)), "wheel-range")
        for n in range(CHUNK + 7)
    }
    answers[_digest(-1)] = CachedDependencies(
        None, "unknown", "sdist PKG-INFO marks Requires-Dist as Dynamic"
    )
    store.put_many(answers)
    asked = [*answers, _digest(-2)]
    assert store.get_many(asked) == answers  # the absent digest is simply not there
    assert answers[_digest(0)].requires_dist == () == store.get_many([_digest(0)])[_digest(0)].requires_dist


def test_put_is_idempotent_and_keeps_the_first_answer(catalog):
    store = DependencyStore(catalog)
    first = CachedDependencies(("a",), "metadata-file")
    store.put_many({_digest(1): first})
    store.put_many({_digest(1): CachedDependencies(("b",), "wheel-download")})
    assert store.get_many([_digest(1)]) == {_digest(1): first}


def test_a_key_that_is_not_a_sha256_is_refused_before_writing(catalog):
    store = DependencyStore(catalog)
    for bad in ["ABC", "A" * 64, "g" * 64, ""]:
        with pytest.raises(InvalidDigest, match="sha256"):
            store.put_many(
                {_digest(1): CachedDependencies(("a",), "wheel-range"), bad: CachedDependencies((), "x")}
            )
        with pytest.raises(InvalidDigest, match=repr(bad)):
            store.get_many([bad])
    assert store.get_many([_digest(1)]) == {}


# -- the closure's page memory (mirrorflow.storage.closure_pages), on the same catalogs ------------


def test_closure_pages_keep_the_newest_page_per_project_and_key_in_chunks(catalog):
    from mirrorflow.storage.closure_pages import ClosurePages, RememberedPage

    memory, scope = (
        ClosurePages(catalog),
        {"repository_id": catalog.create_repository("r").id, "remote": "up"},
    )
    pages = {
        (f"p{n}", _digest(n)): RememberedPage(
            f'"{n}"', None, (("1.0", f"p{n}-1.0.tar.gz", ("a>=1",), "cache", ""),)
        )
        for n in range(CHUNK + 3)
    }
    pages[("empty", _digest(-1))] = RememberedPage(None, "Mon, 01 Jan 2024 00:00:00 GMT", ())
    memory.put_many(pages, **scope)
    assert memory.get_many([*pages, ("p0", _digest(1))]) == pages  # ("p0", other key): not remembered
    newer = RememberedPage('"new"', None, (("2.0", "p0-2.0.tar.gz", (), "wheel-range", ""),))
    memory.put_many({("p0", _digest(0)): newer}, **scope)
    assert memory.get_many([("p0", _digest(0))]) == {("p0", _digest(0)): newer}


def test_closure_pages_go_with_their_remote_its_url_their_repository_and_a_closure_that_did_not_use_them(
    catalog,
):
    from datetime import UTC, datetime

    from mirrorflow.storage.closure_pages import ClosurePages, RememberedPage

    memory, page = ClosurePages(catalog), RememberedPage('"e"', None, ())
    for remote in ("up", "other"):
        catalog.create_remote(remote, url=f"https://index.example/{remote}/simple/")
    r1, r2 = catalog.create_repository("r1").id, catalog.create_repository("r2").id
    rows = {
        ("a", _digest(1)): (r1, "up"),
        ("b", _digest(2)): (r1, "up"),
        ("c", _digest(3)): (r1, "other"),
        ("d", _digest(4)): (r2, "up"),
        ("e", _digest(5)): (r2, "(inline)"),
    }
    for pair, (repository_id, remote) in rows.items():
        memory.put_many({pair: page}, repository_id=repository_id, remote=remote)

    def left() -> set[str]:
        return {project for project, _ in memory.get_many(rows)}

    started = datetime.now(UTC)  # a closure of r1 from "up" starts: it uses a's page (a 304), not b's
    memory.touch_many([("a", _digest(1))], repository_id=r1, remote="up")
    assert memory.prune(repository_id=r1, remote="up", before=started) == 1
    assert left() == {"a", "c", "d", "e"}, "only b: the scope's rows the closure did not use"
    catalog.update_remote("up", url="https://index.example/up/simple/")
    assert left() == {"a", "c", "d", "e"}, "the same URL: the pages still hold"
    catalog.update_remote("up", url="https://index.example/moved/simple/")
    assert left() == {"c", "e"}, "another index: every repository's rows from that remote go"
    catalog.delete_remote("other")
    assert left() == {"e"}
    catalog.delete_repository("r2")
    assert left() == set(), "with the repository"
