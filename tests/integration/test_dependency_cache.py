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

    memory = ClosurePages(catalog)
    pages = {
        (f"p{n}", _digest(n)): RememberedPage(
            f'"{n}"', None, (("1.0", f"p{n}-1.0.tar.gz", ("a>=1",), "cache", ""),)
        )
        for n in range(CHUNK + 3)
    }
    pages[("empty", _digest(-1))] = RememberedPage(None, "Mon, 01 Jan 2024 00:00:00 GMT", ())
    memory.put_many(pages)
    assert memory.get_many([*pages, ("p0", _digest(1))]) == pages  # ("p0", other key): not remembered
    newer = RememberedPage('"new"', None, (("2.0", "p0-2.0.tar.gz", (), "wheel-range", ""),))
    memory.put_many({("p0", _digest(0)): newer})
    assert memory.get_many([("p0", _digest(0))]) == {("p0", _digest(0)): newer}
