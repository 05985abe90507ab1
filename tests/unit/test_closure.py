"""Tests for mirrorflow.tasks.closure: target environments, markers, extras, the fixed point, chains, the report."""

from __future__ import annotations

from datetime import date

import pytest
from packaging.markers import Marker
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirrorflow.tasks.closure import (
    Closure,
    ProjectDependencies,
    ReleaseDependencies,
    dependencies_in,
    marker_possible,
    supported_pythons,
    target_environments,
)
from mirrorflow.tasks.filter_spec import FilterSpec

TODAY = date(2026, 12, 3)
LINUX_312 = target_environments([Version("3.12")], ["windows", "macos", "freebsd"], today=TODAY)
ALL_312 = target_environments([Version("3.12")], [], today=TODAY)


# --- environments and markers ---------------------------------------------------------------------


def test_supported_pythons_follow_the_end_of_life_table() -> None:
    assert [str(v) for v in supported_pythons(date(2025, 10, 31))][0] == "3.9"
    assert [str(v) for v in supported_pythons(date(2025, 11, 1))][0] == "3.10"
    assert [str(v) for v in supported_pythons(TODAY)] == ["3.11", "3.12", "3.13", "3.14", "3.15"]


def test_target_environments_cross_pythons_platforms_and_machines() -> None:
    envs = target_environments([Version("3.11"), Version("3.12.4")], ["windows"], today=TODAY)
    # 3.11: two full versions (3.11.0, 3.11.99); 3.12.4: one; 3 platforms x 2 machines.
    assert len(envs) == (2 + 1) * 3 * 2
    assert {e["sys_platform"] for e in envs} == {"darwin", "linux", "freebsd14"}
    assert {e["platform_machine"] for e in envs} == {"x86_64", "arm64", "aarch64", "amd64"}
    assert {e["python_full_version"] for e in envs} == {"3.11.0", "3.11.99", "3.12.4"}
    assert {e["implementation_name"] for e in envs} == {"cpython"}
    assert len(target_environments([], [], today=TODAY)) == 5 * 4 * 2 * 2


@pytest.mark.parametrize(
    ("marker", "envs", "extras", "possible"),
    [
        pytest.param('sys_platform == "win32"', LINUX_312, (), False, id="windows-only-on-linux"),
        pytest.param('sys_platform == "win32"', ALL_312, (), True, id="windows-only-with-windows"),
        pytest.param('platform_system == "Windows"', ALL_312, (), True, id="platform-system"),
        pytest.param('os_name == "nt"', LINUX_312, (), False, id="os-name"),
        pytest.param('python_version < "3.9"', ALL_312, (), False, id="old-python"),
        pytest.param('python_version >= "3.12"', LINUX_312, (), True, id="new-python"),
        pytest.param('python_full_version >= "3.12.1"', LINUX_312, (), True, id="later-patch-counts"),
        pytest.param('python_full_version < "3.12.0"', LINUX_312, (), False, id="earlier-full-version"),
        pytest.param('platform_machine == "aarch64"', LINUX_312, (), True, id="arm-linux"),
        pytest.param('platform_machine == "ARM64"', LINUX_312, (), False, id="arm-windows-only"),
        pytest.param('implementation_name == "pypy"', ALL_312, (), False, id="pypy"),
        pytest.param('extra == "socks"', ALL_312, (), False, id="extra-not-asked"),
        pytest.param('extra == "socks"', ALL_312, ("socks",), True, id="extra-asked"),
        pytest.param(
            'extra == "socks" and sys_platform == "win32"', LINUX_312, ("socks",), False, id="extra-and"
        ),
        pytest.param(None, LINUX_312, (), True, id="no-marker"),
    ],
)
def test_marker_possible(
    marker: str | None, envs: tuple[dict[str, str], ...], extras: tuple[str, ...], possible: bool
) -> None:
    assert marker_possible(None if marker is None else Marker(marker), envs, extras) is possible


def test_dependencies_in_drops_markers_and_reports_bad_lines() -> None:
    reqs, bad = dependencies_in(
        ["Foo_Bar[x]>=1; python_version >= '3'", "not a requirement!", "pkg @ https://index.example/p.whl"],
        LINUX_312,
        (),
    )
    assert [str(r) for r in reqs] == ["Foo_Bar[x]>=1"]
    assert bad == ["not a requirement!", "pkg @ https://index.example/p.whl"]


# --- the fixed point --------------------------------------------------------------------------------

# A tiny index: project -> version -> Requires-Dist (None: unknown).
INDEX: dict[str, dict[str, tuple[str, ...] | None]] = {
    "django": {
        "5.1": ("asgiref<4,>=3.7", "sqlparse>=0.3.1", 'tzdata; sys_platform == "win32"'),
        "5.2": (
            "asgiref>=3.8.1",
            "sqlparse>=0.3.1",
            'tzdata; sys_platform == "win32"',
            'argon2-cffi>=19.1; extra == "argon2"',
        ),
    },
    "asgiref": {"3.7.0": (), "3.8.1": ('typing_extensions>=4; python_version < "3.11"',)},
    "sqlparse": {"0.5.0": ()},
    "tzdata": {"2024.1": ()},
    "argon2-cffi": {"23.1": ("argon2-cffi-bindings",)},
    "argon2-cffi-bindings": {"21.2": ("cffi>=1.0.1",)},
    "cffi": {"1.17": ("pycparser",)},
    "pycparser": {"2.22": ()},
    "a": {"1.0": ("b>=1",)},
    "b": {"1.0": ("a",), "2.0": ("a", "c>=5")},
    "c": {"1.0": ()},
    "sd": {"1.0": None},
    "typing-extensions": {"4.12": ()},
    "m2": {"1.0": ("ghost2>=1", "sd")},
    "ghost2": {"1.0": ()},
}


def evaluate(closure: Closure, name: NormalizedName) -> ProjectDependencies:
    """Evaluate one project under the closure's spec, as the flow does: the included versions of INDEX."""
    if name not in INDEX:
        return ProjectDependencies(name, found=False)
    spec = closure.spec()
    includes = [r for r in spec.includes if canonicalize_name(r.name) == name]
    excludes = [r for r in spec.excludes if canonicalize_name(r.name) == name]
    releases = []
    for text, requires in INDEX[name].items():
        version = Version(text)
        if not any(r.specifier.contains(version, prereleases=True) for r in includes):
            continue
        if any(r.specifier.contains(version, prereleases=True) for r in excludes):
            continue
        source = "metadata-file" if requires is not None else "unknown"
        releases.append(
            ReleaseDependencies(
                version,
                f"{name}-{text}.whl",
                requires,
                source,
                "" if requires is not None else "sdist with dynamic Requires-Dist",
            )
        )
    return ProjectDependencies(name, found=True, releases=tuple(releases))


def close(includes: list[str], **settings: object) -> Closure:
    closure = Closure.start(FilterSpec.build(includes=includes, **settings), today=TODAY)  # type: ignore[arg-type]
    for _ in range(50):
        names = closure.start_round()
        if not names:
            return closure
        for name in names:
            closure.record(evaluate(closure, name))
    raise AssertionError("no fixed point in 50 rounds")


def test_django_on_linux_brings_asgiref_and_sqlparse_not_tzdata() -> None:
    closure = close(["django"], python_versions=["3.12"], exclude_platforms=["windows", "macos"])
    report = closure.report()
    assert dict(report.added) == {
        "asgiref": "asgiref<4,>=3.7 <- django 5.1",
        "sqlparse": "sqlparse>=0.3.1 <- django 5.1",
    }
    assert closure.implicit_includes() == ["asgiref<4,>=3.7", "asgiref>=3.8.1", "sqlparse>=0.3.1"]
    assert report.complete


def test_windows_brings_tzdata_and_an_old_python_brings_typing_extensions() -> None:
    closure = close(["django"], python_versions=["3.10", "3.12"])
    assert {p for p, _ in closure.report().added} == {"asgiref", "sqlparse", "tzdata", "typing-extensions"}
    chain = dict(closure.report().added)["typing-extensions"]
    assert chain == "typing-extensions>=4 <- asgiref 3.8.1 <- asgiref<4,>=3.7 <- django 5.1"


def test_extras_propagate_only_when_asked_and_transitively() -> None:
    closure = close(["django[argon2]>=5.2"], python_versions=["3.12"], exclude_platforms=["windows"])
    added = dict(closure.report().added)
    assert set(added) == {"asgiref", "sqlparse", "argon2-cffi", "argon2-cffi-bindings", "cffi", "pycparser"}
    assert added["pycparser"].startswith("pycparser <- cffi 1.17 <- cffi>=1.0.1 <- argon2-cffi-bindings 21.2")
    assert added["pycparser"].endswith("<- django 5.2")


def test_a_cycle_ends_and_a_widened_range_is_evaluated_again() -> None:
    closure = close(["a"])
    spec = closure.spec()
    assert sorted(str(r) for r in spec.includes) == ["a", "b>=1", "c>=5"]
    report = closure.report()
    assert dict(report.added).keys() == {"b", "c"}
    # c>=5 is asked for by b 2.0 and no release satisfies it.
    assert report.unsatisfied == (
        ("c>=5 <- b 2.0 <- b>=1 <- a 1.0", "no release the filters keep satisfies it"),
    )
    assert not report.complete


def test_missing_and_unknown_dependencies_are_reported() -> None:
    INDEX["m"] = {"1.0": ("ghost>=1", "sd")}
    try:
        report = close(["m"]).report()
    finally:
        del INDEX["m"]
    assert report.unsatisfied == (("ghost>=1 <- m 1.0", "project 'ghost' is not on the index"),)
    assert report.unknown == (("sd 1.0", "sd-1.0.whl", "sdist with dynamic Requires-Dist"),)


@pytest.mark.parametrize(
    ("excludes", "excluded"),
    [
        pytest.param(["sqlparse"], ("sqlparse>=0.3.1 <- django 5.1", "sqlparse"), id="name-exclude-wins"),
        pytest.param(
            ["sqlparse<1"], ("sqlparse>=0.3.1 <- django 5.1", "sqlparse<1"), id="version-exclude-wins"
        ),
    ],
)
def test_an_explicit_exclude_wins_and_is_reported(excludes: list[str], excluded: tuple[str, str]) -> None:
    closure = close(["django"], python_versions=["3.12"], exclude_platforms=["windows"], excludes=excludes)
    report = closure.report()
    assert excluded in report.excluded
    assert "sqlparse" not in dict(report.added) or excludes != ["sqlparse"]
    assert "sqlparse" not in closure.pending()
    assert not report.complete
    assert "closure incomplete" in "\n".join(report.lines())


def test_the_report_as_dict_is_plain_data() -> None:
    data = (
        close(["django"], python_versions=["3.12"], exclude_platforms=["windows", "macos"]).report().as_dict()
    )
    assert data["complete"] is True
    assert data["added"] == [
        {"project": "asgiref", "chain": "asgiref<4,>=3.7 <- django 5.1"},
        {"project": "sqlparse", "chain": "sqlparse>=0.3.1 <- django 5.1"},
    ]
    assert str(data["environments"]).startswith("CPython 3.12 on linux, freebsd")


def test_the_report_reaches_the_artifact_table_and_the_summary() -> None:
    from mirrorflow.flows.report import report_rows, summary_markdown

    summary = {"closure": close(["m2"], excludes=["sd"]).report().as_dict()}
    rows = {row["metric"]: row["value"] for row in report_rows(summary, None)}
    assert rows["closure added: ghost2"] == "ghost2>=1 <- m2 1.0"
    assert rows["excluded dependency (closure incomplete)"] == "sd <- m2 1.0"
    markdown = summary_markdown("foo", 2, 1, summary, {"added": 1})
    assert "## Dependency closure" in markdown
    assert "- excluded, closure incomplete: sd <- m2 1.0 (exclude 'sd')" in markdown


# -- the page memory's key (mirrorflow.tasks.dependencies.closure_page_key) -------------------------


def _key(project: str = "asgiref", *, includes=("django", "asgiref>=3.7"), now_hour=1, age=None, index="a"):
    from datetime import UTC, datetime

    from support_sync import sync_config

    from mirrorflow.tasks.config import HttpSpec
    from mirrorflow.tasks.dependencies import closure_page_key

    config = sync_config(
        mirror=True,
        spec=FilterSpec.build(includes=list(includes), min_upload_age=age),
        now=datetime(2026, 12, 3, now_hour, tzinfo=UTC),
        http=HttpSpec(index_url=f"https://index.example/{index}/", concurrency=1, max_page_bytes=1),
    )
    return closure_page_key(project, config)


@pytest.mark.parametrize(
    ("other", "same"),
    [
        pytest.param({"includes": ("django>=5", "asgiref>=3.7")}, True, id="another-projects-include"),
        pytest.param({"now_hour": 2}, True, id="a-later-sync"),
        pytest.param({"includes": ("django", "asgiref>=3.7", "asgiref>=3.8")}, False, id="a-wider-include"),
        pytest.param({"index": "b"}, False, id="another-index"),
        pytest.param({"project": "django"}, False, id="another-project"),
    ],
)
def test_the_page_key_holds_what_the_projects_outcome_depends_on(other, same) -> None:
    assert (_key(**other) == _key()) is same


def test_with_an_upload_age_quarantine_the_page_key_moves_with_the_clock() -> None:
    assert _key(age="7d", now_hour=2) != _key(age="7d") != _key()
