"""The pure half of the metadata source: which core metadata states dependencies, and what they are."""

from __future__ import annotations

import pytest

from mirrorflow.tasks.requires_dist import (
    DependencySource,
    dependencies_from_metadata,
    dependencies_from_pkg_info,
)


def _metadata(version: str, *lines: str) -> bytes:
    return "\n".join(
        [f"Metadata-Version: {version}", "Name: demo", "Version: 1.0", *lines, "", "body"]
    ).encode()


@pytest.mark.parametrize(
    ("data", "requires", "reason_part"),
    [
        pytest.param(_metadata("2.1"), (), "", id="wheel-no-deps-is-empty-not-unknown"),
        pytest.param(
            _metadata("2.1", "Requires-Dist: b>=1", "Requires-Dist: c[x]; python_version < '3.12'"),
            ("b>=1", "c[x]; python_version < '3.12'"),
            "",
            id="wheel-deps-in-order",
        ),
        pytest.param(
            _metadata("2.4", "Dynamic: Requires-Dist", "Requires-Dist: b"),
            ("b",),
            "",
            id="wheel-dynamic-is-ignored-wheels-are-static",
        ),
        pytest.param(
            _metadata("2.1", "Requires-Dist: b>=1", "Requires-Dist: c >>> 2", "Requires-Dist: d"),
            ("b>=1", "d"),
            "'c >>> 2'",
            id="invalid-requirement-left-out-and-named",
        ),
        pytest.param(b"not metadata at all", None, "no Name or Version", id="garbage-unknown"),
        pytest.param(b"", None, "no Name or Version", id="empty-unknown"),
    ],
)
def test_wheel_metadata(data, requires, reason_part):
    deps = dependencies_from_metadata(data, source=DependencySource.WHEEL_RANGE)
    assert deps.requires_dist == requires
    assert reason_part in deps.reason
    assert deps.source == ("wheel-range" if requires is not None else "unknown")


@pytest.mark.parametrize(
    ("data", "requires", "reason_part"),
    [
        pytest.param(_metadata("2.2", "Requires-Dist: b"), ("b",), "", id="2.2-static-known"),
        pytest.param(_metadata("2.2"), (), "", id="2.2-static-none-is-empty"),
        pytest.param(
            _metadata("2.4", "Dynamic: Summary", "Requires-Dist: b"), ("b",), "", id="other-dynamic-ok"
        ),
        pytest.param(
            _metadata("2.3", "Dynamic: requires-dist", "Requires-Dist: b"),
            None,
            "Dynamic",
            id="dynamic-requires-dist-any-case-unknown",
        ),
        pytest.param(_metadata("2.1", "Requires-Dist: b"), None, "'2.1' (before 2.2)", id="2.1-unknown"),
        pytest.param(_metadata("1.0"), None, "before 2.2", id="1.0-unknown"),
        pytest.param(_metadata("two"), None, "invalid Metadata-Version 'two'", id="bad-version-unknown"),
    ],
)
def test_sdist_pkg_info(data, requires, reason_part):
    deps = dependencies_from_pkg_info(data)
    assert deps.requires_dist == requires
    assert reason_part in deps.reason
    assert deps.source == ("sdist-pkg-info" if requires is not None else "unknown")
    assert "\n" not in deps.reason
