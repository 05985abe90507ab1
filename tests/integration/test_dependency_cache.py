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
