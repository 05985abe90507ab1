"""Tests for mirrorflow.tasks.filters (and mirrorflow.tasks.platforms): settings validation, every rule, their order, the seeds."""

from __future__ import annotations

import doctest
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

import mirrorflow.tasks.blocklist
import mirrorflow.tasks.filenames
import mirrorflow.tasks.filter_spec
import mirrorflow.tasks.filters
import mirrorflow.tasks.index_url
import mirrorflow.tasks.outcome
import mirrorflow.tasks.platforms
import mirrorflow.tasks.simple
from mirrorflow.tasks.advisories import Advisories, Advisory, AdvisoryBlock, Affected
from mirrorflow.tasks.blocklist import Blocklist
from mirrorflow.tasks.distributions import DistFile
from mirrorflow.tasks.filters import (
    FilterSpec,
    InvalidFilter,
    Selection,
    SkipReason,
    included_project_names,
    parse_age,
    select_files,
    validate_requirements,
    wanted_projects,
    withhold_quarantined,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def dist(filename: str, **fields: Any) -> DistFile:
    return DistFile(filename=filename, url=f"https://index.example/files/{filename}", sha256=None, **fields)


def outcome(selection: Selection) -> dict[str, str]:
    """Map each filename to "kept" or its skip reason."""
    result = {c.file.filename: "kept" for c in selection.kept}
    result.update({s.file.filename: s.reason.value for s in selection.skipped})
    return result


def decide(files: list[DistFile] | list[str], project: str = "foo", **settings: Any) -> dict[str, str]:
    dists = [dist(f) if isinstance(f, str) else f for f in files]
    return outcome(select_files(NormalizedName(project), dists, FilterSpec.build(**settings), now=NOW))


# --- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        pytest.param(
            {"includes": ["django>>2"]},
            "includes",
            "includes: 'django>>2' is not a valid PEP 508 requirement: ",
            id="includes-invalid-pep508",
        ),
        pytest.param(
            {"excludes": ["foo=="]}, "excludes", "excludes: 'foo==' is not a valid PEP 508", id="excl"
        ),
        pytest.param({"includes": "django"}, "includes", "not one string", id="includes-bare-string"),
        pytest.param({"includes": [3]}, "includes", "includes: 3 is not a string", id="includes-not-str"),
        pytest.param(
            {"includes": ['foo; python_version > "3"']},
            "includes",
            "environment marker",
            id="includes-marker",
        ),
        pytest.param(
            {"excludes": ["foo @ https://index.example/foo-1.0.tar.gz"]},
            "excludes",
            "URL requirement",
            id="excludes-url",
        ),
        pytest.param(
            {"prereleases": "no"}, "prereleases", "'no' must be true or false", id="prereleases-str"
        ),
        pytest.param({"skip_yanked": 1}, "skip_yanked", "must be true or false", id="skip-yanked-int"),
        pytest.param(
            {"package_types": ["wheel"]}, "package_types", "'wheel' is not one of", id="type-unknown"
        ),
        pytest.param({"package_types": "sdist"}, "package_types", "not one string", id="type-bare-string"),
        pytest.param(
            {"exclude_platforms": ["win"]}, "exclude_platforms", "'win' is not one of", id="platform"
        ),
        pytest.param({"keep_latest_packages": -1}, "keep_latest_packages", "0 or more", id="keep-negative"),
        pytest.param({"keep_latest_packages": True}, "keep_latest_packages", "0 or more", id="keep-bool"),
        pytest.param({"keep_latest_packages": "5"}, "keep_latest_packages", "0 or more", id="keep-str"),
        pytest.param({"min_upload_age": "7 days"}, "min_upload_age", "is not an age", id="age-words"),
        pytest.param({"min_upload_age": 7}, "min_upload_age", "7 is not a string", id="age-int"),
        pytest.param({"min_upload_age": timedelta(days=-1)}, "min_upload_age", "negative", id="age-negative"),
        pytest.param(
            {"missing_upload_time": "keep"}, "missing_upload_time", "is not one of", id="missing-bad"
        ),
        pytest.param({"python_versions": ["3"]}, "python_versions", "'3' is not a Python", id="python-major"),
        pytest.param({"python_versions": ["three"]}, "python_versions", "not a Python", id="python-words"),
        pytest.param({"python_versions": ["3.13rc1"]}, "python_versions", "not a Python", id="python-pre"),
        pytest.param({"python_versions": ["1!3.12"]}, "python_versions", "not a Python", id="python-epoch"),
        pytest.param({"python_versions": ["3.12+x"]}, "python_versions", "not a Python", id="python-local"),
        pytest.param(
            {"python_versions": [3.10]}, "python_versions", "3.1 is not a string", id="python-float"
        ),
    ],
)
def test_build_rejects(settings: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        FilterSpec.build(**settings)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_build_defaults_and_normalized_values() -> None:
    spec = FilterSpec.build(
        includes=["Django[bcrypt]>=2"],
        package_types=("sdist",),
        exclude_platforms=["windows", "windows"],
        min_upload_age="2w",
        python_versions=["3.12", "3.11.4"],
    )
    assert (spec.includes[0].name, spec.includes[0].extras) == ("Django", {"bcrypt"})
    assert spec.package_types == frozenset({"sdist"})
    assert spec.exclude_platforms == frozenset({"windows"})
    assert spec.min_upload_age == timedelta(weeks=2)
    assert spec.python_versions == (Version("3.12"), Version("3.11.4"))
    default = FilterSpec.build()
    assert (default.prereleases, default.skip_yanked, default.keep_latest_packages) == (True, False, 0)
    assert (default.min_upload_age, default.missing_upload_time) == (None, "take")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("7d", timedelta(days=7), id="days"),
        pytest.param("12h", timedelta(hours=12), id="hours"),
        pytest.param("30m", timedelta(minutes=30), id="minutes"),
        pytest.param("2w", timedelta(weeks=2), id="weeks"),
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param(" 0d ", timedelta(0), id="zero-with-spaces"),
    ],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("d", id="no-number"),
        pytest.param("7", id="no-unit"),
        pytest.param("7y", id="unknown-unit"),
        pytest.param("7D", id="upper-case"),
        pytest.param("-7d", id="negative"),
        pytest.param("1.5h", id="fraction"),
        pytest.param("²d", id="superscript-digit"),
        pytest.param("99999999999999999999w", id="overflow"),
    ],
)
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_age(text)
    assert caught.value.field == "min_upload_age"
    assert repr(text) in str(caught.value)


def test_validate_requirements_keeps_order_and_extras() -> None:
    requirements = validate_requirements("includes", ["B>=1", "a[x]"])
    assert [(r.name, r.extras) for r in requirements] == [("B", set()), ("a", {"x"})]


# --- projects -----------------------------------------------------------------------------------------

LISTING = [
    NormalizedName(n) for n in ("django", "pip-tools", "scipy", "shelf-reader", "requests", "foo", "foo-bar")
]


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [
        pytest.param({}, sorted(LISTING), id="whole-index"),
        pytest.param(
            {"excludes": ["SciPy", "requests>2"]}, sorted(set(LISTING) - {"scipy"}), id="name-only-ex"
        ),
        pytest.param(
            {"includes": ["django~=2.0,!=2.0.1", "pip-tools>=1.12,<=2.0", "scipy", "shelf-reader"]},
            ["django", "pip-tools", "scipy", "shelf-reader"],
            id="seed-includes",
        ),
        pytest.param(
            {"includes": ["django", "scipy"], "excludes": ["django~=1.0", "scipy"]},
            ["django"],
            id="seed-include-exclude",
        ),
        pytest.param({"includes": ["foo"]}, ["foo"], id="prefix-not-confused"),
        pytest.param({"includes": ["Foo_Bar"]}, ["foo-bar"], id="normalized-include"),
        pytest.param({"includes": ["not-listed"]}, [], id="include-not-listed"),
    ],
)
def test_wanted_projects(settings: dict[str, Any], wanted: list[str]) -> None:
    assert wanted_projects(LISTING + LISTING[:2], FilterSpec.build(**settings)) == wanted


def test_included_project_names() -> None:
    spec = FilterSpec.build(includes=["Django<2", "django>3", "Foo_Bar.baz", "scipy"], excludes=["scipy"])
    assert included_project_names(spec) == ["django", "foo-bar-baz", "scipy"]
    assert included_project_names(FilterSpec.build()) == []


# --- files: one rule at a time ----------------------------------------------------------------------

OLD = NOW - timedelta(days=30)


@pytest.mark.parametrize(
    ("files", "settings", "expected"),
    [
        # invalid filenames and wrong projects
        pytest.param(
            ["foo-1.x.tar.gz", "../foo-1.0.tar.gz", "foo-1.0.txt", "foo-1.0.tar.gz"],
            {},
            {
                "foo-1.x.tar.gz": "invalid-filename",
                "../foo-1.0.tar.gz": "invalid-filename",
                "foo-1.0.txt": "invalid-filename",
                "foo-1.0.tar.gz": "kept",
            },
            id="invalid-filenames-dropped-never-crash",
        ),
        pytest.param(
            [
                "foo_bar-1.0.tar.gz",
                "foo_bar-1.0-py3-none-any.whl",
                "foo-1.0.tar.gz",
                "foobar-1.0.tar.gz",
                "foo-bar-1.0-py3-none-any.whl",
            ],
            {},
            {
                "foo_bar-1.0.tar.gz": "wrong-project",
                "foo_bar-1.0-py3-none-any.whl": "wrong-project",
                "foo-1.0.tar.gz": "kept",
                "foobar-1.0.tar.gz": "wrong-project",
                "foo-bar-1.0-py3-none-any.whl": "invalid-filename",
            },
            id="prefix-project-foo-page",
        ),
        pytest.param(
            ["foo_bar-1.0.tar.gz", "foo-1.0.tar.gz"],
            {"project": "foo-bar"},
            {"foo_bar-1.0.tar.gz": "kept", "foo-1.0.tar.gz": "wrong-project"},
            id="prefix-project-foo-bar-page",
        ),
        pytest.param(
            ["Foo_Bar.baz-1.0.tar.gz", "foo.bar_baz-1.0-py3-none-any.whl", "FOO-BAR-BAZ-2.0.zip"],
            {"project": "foo-bar-baz", "includes": ["Foo_Bar.baz"]},
            {
                "Foo_Bar.baz-1.0.tar.gz": "kept",
                "foo.bar_baz-1.0-py3-none-any.whl": "kept",
                "FOO-BAR-BAZ-2.0.zip": "kept",
            },
            id="names-normalized",
        ),
        # includes
        pytest.param(
            ["foo-1.0.tar.gz"],
            {"includes": ["bar"]},
            {"foo-1.0.tar.gz": "not-included"},
            id="include-other",
        ),
        pytest.param(
            ["foo-1.0.tar.gz"],
            {"includes": ["foo-bar", "fo"]},
            {"foo-1.0.tar.gz": "not-included"},
            id="include-prefix-names-do-not-match",
        ),
        pytest.param(
            [
                "foo-0.9.tar.gz",
                "foo-1.0.tar.gz",
                "foo-1.5rc1.tar.gz",
                "foo-2.0.dev1.tar.gz",
                "foo-2.0.tar.gz",
            ],
            {"includes": ["foo>=1.0,<2"]},
            {
                "foo-0.9.tar.gz": "not-included",
                "foo-1.0.tar.gz": "kept",
                "foo-1.5rc1.tar.gz": "kept",
                "foo-2.0.dev1.tar.gz": "not-included",
                "foo-2.0.tar.gz": "not-included",
            },
            id="include-range-takes-prereleases-inside-but-not-before-exclusive-bound",
        ),
        pytest.param(
            ["foo-0.5.tar.gz", "foo-1.5.tar.gz", "foo-2.5.tar.gz"],
            {"includes": ["foo<1", "FOO>=2"]},
            {"foo-0.5.tar.gz": "kept", "foo-1.5.tar.gz": "not-included", "foo-2.5.tar.gz": "kept"},
            id="includes-or-ed",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-1.0+local.tar.gz", "foo-1.0.post1.tar.gz", "foo-1.0.0.zip"],
            {"includes": ["foo==1.0"]},
            {
                "foo-1.0.tar.gz": "kept",
                "foo-1.0+local.tar.gz": "kept",
                "foo-1.0.post1.tar.gz": "not-included",
                "foo-1.0.0.zip": "kept",
            },
            id="include-local-version-matches",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-1!1.0.tar.gz"],
            {"includes": ["foo<2"]},
            {"foo-1.0.tar.gz": "kept", "foo-1!1.0.tar.gz": "not-included"},
            id="include-epoch-sorts-above",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-1.0[x].tar.gz"],
            {"includes": ["foo[extra]"]},
            {"foo-1.0.tar.gz": "kept", "foo-1.0[x].tar.gz": "invalid-filename"},
            id="include-extras-ignored",
        ),
        # excludes
        pytest.param(
            ["foo-0.9.tar.gz", "foo-1.0.tar.gz", "foo-1.5b1.tar.gz", "foo-2.0.tar.gz"],
            {"excludes": ["foo~=1.0"]},
            {
                "foo-0.9.tar.gz": "kept",
                "foo-1.0.tar.gz": "excluded",
                "foo-1.5b1.tar.gz": "excluded",
                "foo-2.0.tar.gz": "kept",
            },
            id="exclude-range-drops-matching-versions",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-2.0-py3-none-any.whl"],
            {"excludes": ["FOO"]},
            {"foo-1.0.tar.gz": "excluded", "foo-2.0-py3-none-any.whl": "excluded"},
            id="exclude-name-drops-all",
        ),
        pytest.param(
            ["foo-1.0.tar.gz"],
            {"excludes": ["foo-bar", "fo"]},
            {"foo-1.0.tar.gz": "kept"},
            id="exclude-prefix-names-do-not-match",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-1.0+local.tar.gz", "foo-1.0.post1.tar.gz"],
            {"excludes": ["foo==1.0"]},
            {
                "foo-1.0.tar.gz": "excluded",
                "foo-1.0+local.tar.gz": "excluded",
                "foo-1.0.post1.tar.gz": "kept",
            },
            id="exclude-local-version",
        ),
        # prereleases
        pytest.param(
            [
                "foo-1.0c1.tar.gz",
                "foo-1.0a1.tar.gz",
                "foo-1.0b2.post1.tar.gz",
                "foo-1.0.dev1.tar.gz",
                "foo-1.0.post1.dev2.tar.gz",
                "foo-1!2.0rc1.tar.gz",
                "foo-1.0.tar.gz",
                "foo-1.0.post1.tar.gz",
                "foo-1.0+local.tar.gz",
            ],
            {"prereleases": False},
            {
                "foo-1.0c1.tar.gz": "prerelease",
                "foo-1.0a1.tar.gz": "prerelease",
                "foo-1.0b2.post1.tar.gz": "prerelease",
                "foo-1.0.dev1.tar.gz": "prerelease",
                "foo-1.0.post1.dev2.tar.gz": "prerelease",
                "foo-1!2.0rc1.tar.gz": "prerelease",
                "foo-1.0.tar.gz": "kept",
                "foo-1.0.post1.tar.gz": "kept",
                "foo-1.0+local.tar.gz": "kept",
            },
            id="prereleases-off",
        ),
        pytest.param(["foo-1.0c1.tar.gz"], {}, {"foo-1.0c1.tar.gz": "kept"}, id="prereleases-on-by-default"),
        # package types
        pytest.param(
            [
                "foo-1.0.tar.gz",
                "foo-1.0-py3-none-any.whl",
                "foo-1.0-py2.7.egg",
                "foo-1.0.win32.exe",
                "foo-1.0.linux-x86_64.tar.gz",
            ],
            {"package_types": ["sdist", "bdist_egg"]},
            {
                "foo-1.0.tar.gz": "kept",
                "foo-1.0-py3-none-any.whl": "package-type",
                "foo-1.0-py2.7.egg": "kept",
                "foo-1.0.win32.exe": "package-type",
                "foo-1.0.linux-x86_64.tar.gz": "package-type",
            },
            id="package-types-from-filename",
        ),
        pytest.param(
            [dist("foo-1.0.tar.gz", packagetype="bdist_dumb"), dist("foo-1.0.zip", packagetype="sdist")],
            {"package_types": ["sdist"]},
            {"foo-1.0.tar.gz": "package-type", "foo-1.0.zip": "kept"},
            id="package-type-from-index-wins",
        ),
        # yanked
        pytest.param(
            [dist("foo-1.0.tar.gz", yanked=True, yanked_reason="broken"), dist("foo-1.1.tar.gz")],
            {},
            {"foo-1.0.tar.gz": "kept", "foo-1.1.tar.gz": "kept"},
            id="yanked-kept-by-default",
        ),
        pytest.param(
            [dist("foo-1.0.tar.gz", yanked=True), dist("foo-1.1.tar.gz")],
            {"skip_yanked": True},
            {"foo-1.0.tar.gz": "yanked", "foo-1.1.tar.gz": "kept"},
            id="yanked-skipped",
        ),
        # upload age
        pytest.param(
            [
                dist("foo-1.0.tar.gz", upload_time=NOW - timedelta(days=1)),
                dist("foo-1.1.tar.gz", upload_time=NOW - timedelta(days=8)),
                dist("foo-1.2.tar.gz", upload_time=NOW - timedelta(days=7)),
                dist("foo-1.3.tar.gz", upload_time=(NOW - timedelta(days=6)).replace(tzinfo=None)),
                dist("foo-1.4.tar.gz"),
            ],
            {"min_upload_age": "7d"},
            {
                "foo-1.0.tar.gz": "too-new",
                "foo-1.1.tar.gz": "kept",
                "foo-1.2.tar.gz": "kept",
                "foo-1.3.tar.gz": "too-new",
                "foo-1.4.tar.gz": "kept",
            },
            id="too-new-missing-time-taken",
        ),
        pytest.param(
            [dist("foo-1.4.tar.gz"), dist("foo-1.5.tar.gz", upload_time=OLD)],
            {"min_upload_age": timedelta(hours=1), "missing_upload_time": "skip"},
            {"foo-1.4.tar.gz": "too-new", "foo-1.5.tar.gz": "kept"},
            id="missing-time-skipped",
        ),
        pytest.param(
            [dist("foo-1.4.tar.gz"), dist("foo-1.5.tar.gz", upload_time=NOW)],
            {"missing_upload_time": "skip"},
            {"foo-1.4.tar.gz": "kept", "foo-1.5.tar.gz": "kept"},
            id="no-age-no-time-rule",
        ),
        # keep latest
        pytest.param(
            [
                "foo-1.0.tar.gz",
                "foo-3.0.tar.gz",
                "foo-2.0.tar.gz",
                "foo-2.0-py3-none-any.whl",
                "foo-1.5.tar.gz",
            ],
            {"keep_latest_packages": 2},
            {
                "foo-1.0.tar.gz": "keep-latest",
                "foo-1.5.tar.gz": "keep-latest",
                "foo-2.0.tar.gz": "kept",
                "foo-2.0-py3-none-any.whl": "kept",
                "foo-3.0.tar.gz": "kept",
            },
            id="keep-latest-counts-versions-not-files",
        ),
        pytest.param(
            ["foo-9.0.tar.gz", "foo-1!1.0.tar.gz", "foo-9.0.post1.tar.gz", "foo-10.0rc1.tar.gz"],
            {"keep_latest_packages": 2},
            {
                "foo-9.0.tar.gz": "keep-latest",
                "foo-1!1.0.tar.gz": "kept",
                "foo-9.0.post1.tar.gz": "keep-latest",
                "foo-10.0rc1.tar.gz": "kept",
            },
            id="keep-latest-pep440-order-epoch-pre",
        ),
        pytest.param(
            ["foo-9.0.tar.gz", "foo-1!1.0.tar.gz", "foo-9.0.post1.tar.gz", "foo-10.0rc1.tar.gz"],
            {"keep_latest_packages": 2, "prereleases": False, "excludes": ["foo>=1!0"]},
            {
                "foo-9.0.tar.gz": "kept",
                "foo-1!1.0.tar.gz": "excluded",
                "foo-9.0.post1.tar.gz": "kept",
                "foo-10.0rc1.tar.gz": "prerelease",
            },
            id="keep-latest-among-survivors-only",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-1.0.0.zip", "foo-0.9.tar.gz"],
            {"keep_latest_packages": 1},
            {"foo-1.0.tar.gz": "kept", "foo-1.0.0.zip": "kept", "foo-0.9.tar.gz": "keep-latest"},
            id="keep-latest-equal-versions",
        ),
        pytest.param(
            ["foo-1.0.tar.gz", "foo-2.0.tar.gz"],
            {"keep_latest_packages": 0},
            {"foo-1.0.tar.gz": "kept", "foo-2.0.tar.gz": "kept"},
            id="keep-latest-zero-keeps-all",
        ),
    ],
)
def test_select_files(files: list[Any], settings: dict[str, Any], expected: dict[str, str]) -> None:
    settings = dict(settings)
    project = settings.pop("project", "foo")
    assert decide(files, project, **settings) == expected


# --- platforms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "excluded", "expected"),
    [
        # wheels, one family per tag
        pytest.param("foo-1.0-cp311-cp311-win32.whl", ["windows"], "platform", id="win32"),
        pytest.param("foo-1.0-cp311-cp311-win_amd64.whl", ["windows"], "platform", id="win_amd64"),
        pytest.param("foo-1.0-cp311-cp311-win_arm64.whl", ["windows"], "platform", id="win_arm64"),
        pytest.param("foo-1.0-cp27-cp27m-win_ia64.whl", ["windows"], "platform", id="win_ia64"),
        pytest.param("foo-1.0-cp311-cp311-win_amd64.whl", ["linux", "macos"], "kept", id="win-kept"),
        pytest.param("foo-1.0-cp311-cp311-macosx_11_0_arm64.whl", ["macos"], "platform", id="macosx-arm64"),
        pytest.param(
            "foo-1.0-cp311-cp311-macosx_10_9_universal2.whl", ["macos"], "platform", id="universal2"
        ),
        pytest.param(
            "foo-1.0-cp311-cp311-macosx_10_9_universal2.whl", ["windows"], "kept", id="universal2-kept"
        ),
        pytest.param("foo-1.0-cp311-cp311-linux_x86_64.whl", ["linux"], "platform", id="linux_x86_64"),
        pytest.param("foo-1.0-cp36-cp36m-manylinux1_x86_64.whl", ["linux"], "platform", id="manylinux1"),
        pytest.param(
            "foo-1.0-cp311-cp311-manylinux2014_aarch64.whl", ["linux"], "platform", id="manylinux2014"
        ),
        pytest.param(
            "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", ["linux"], "platform", id="manylinux_2_x"
        ),
        pytest.param("foo-1.0-cp311-cp311-musllinux_1_1_x86_64.whl", ["linux"], "platform", id="musllinux"),
        pytest.param("foo-1.0-cp311-cp311-freebsd_13_2_amd64.whl", ["freebsd"], "platform", id="freebsd"),
        pytest.param(
            "foo-1.0-py3-none-any.whl", list(mirrorflow.tasks.filters.PLATFORMS), "kept", id="pure-wheel"
        ),
        pytest.param(
            "foo-1.0-cp311-cp311-cygwin_3_4_x86_64.whl",
            list(mirrorflow.tasks.filters.PLATFORMS),
            "kept",
            id="unknown-cygwin-kept",
        ),
        pytest.param(
            "foo-1.0-cp313-cp313-ios_13_0_arm64_iphoneos.whl",
            list(mirrorflow.tasks.filters.PLATFORMS),
            "kept",
            id="unknown-ios-kept",
        ),
        # compressed tag sets: dropped only when every tag is excluded
        pytest.param(
            "foo-1.0-cp311-cp311-macosx_11_0_arm64.manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            ["linux"],
            "kept",
            id="compressed-macos-kept",
        ),
        pytest.param(
            "foo-1.0-cp311-cp311-macosx_11_0_arm64.manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            ["linux", "macos"],
            "platform",
            id="compressed-all-excluded",
        ),
        pytest.param("foo-1.0-py3-none-any.win_amd64.whl", ["windows"], "kept", id="compressed-with-any"),
        pytest.param(
            "foo-1.0-py3-none-cygwin.win_amd64.whl", ["windows"], "kept", id="compressed-with-unknown"
        ),
        # sdists never
        pytest.param("foo-1.0.tar.gz", list(mirrorflow.tasks.filters.PLATFORMS), "kept", id="sdist-never"),
        pytest.param("foo-1.0.zip", list(mirrorflow.tasks.filters.PLATFORMS), "kept", id="sdist-zip-never"),
        # legacy binaries
        pytest.param("foo-1.0.win32.exe", ["windows"], "platform", id="exe"),
        pytest.param("foo-1.0.win-amd64-py2.7.exe", ["windows"], "platform", id="exe-amd64"),
        pytest.param("foo-1.0.win32.exe", ["linux", "macos", "freebsd"], "kept", id="exe-kept"),
        pytest.param("foo-1.0.win-amd64.msi", ["windows"], "platform", id="msi"),
        pytest.param("foo-1.0-py2.7-win32.egg", ["windows"], "platform", id="egg-win32"),
        pytest.param("foo-1.0-py2.7-win-amd64.egg", ["windows"], "platform", id="egg-win-amd64"),
        pytest.param("foo-1.0-py2.7-macosx-10.9-x86_64.egg", ["macos"], "platform", id="egg-macosx"),
        pytest.param("foo-1.0-py2.7-linux-x86_64.egg", ["linux"], "platform", id="egg-linux"),
        pytest.param("foo-1.0-py2.7-linux-x86_64.egg", ["windows"], "kept", id="egg-linux-kept"),
        pytest.param(
            "foo-1.0-py2.7.egg", list(mirrorflow.tasks.filters.PLATFORMS), "kept", id="egg-pure-kept"
        ),
        pytest.param("foo-1.0-macosx-10.9-x86_64.dmg", ["macos"], "platform", id="dmg"),
        pytest.param("foo-1.0.dmg", ["macos"], "platform", id="dmg-no-platform"),
        pytest.param("foo-1.0-1.noarch.rpm", ["linux"], "platform", id="rpm"),
        pytest.param("foo-1.0-1.src.rpm", ["linux"], "platform", id="src-rpm"),
        pytest.param("foo-1.0.linux-x86_64.tar.gz", ["linux"], "platform", id="dumb-linux"),
        pytest.param("foo-1.0.win32.zip", ["windows"], "platform", id="dumb-win32"),
        pytest.param("foo-1.0.macosx-10.9-x86_64.zip", ["macos"], "platform", id="dumb-macosx"),
        pytest.param("foo-1.0.freebsd-13.2-amd64.tar.gz", ["freebsd"], "platform", id="dumb-freebsd"),
        pytest.param(
            "foo-1.0.cygwin-3.4-x86_64.tar.gz",
            list(mirrorflow.tasks.filters.PLATFORMS),
            "kept",
            id="dumb-cygwin-kept",
        ),
    ],
)
def test_exclude_platforms(filename: str, excluded: list[str], expected: str) -> None:
    assert decide([filename], exclude_platforms=excluded) == {filename: expected}


# --- python versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "targets", "expected"),
    [
        pytest.param(dist("foo-1.0-py3-none-any.whl"), ["3.11", "3.12"], "kept", id="py3"),
        pytest.param(dist("foo-1.0-py2.py3-none-any.whl"), ["3.12"], "kept", id="py2.py3"),
        pytest.param(dist("foo-1.0-py2-none-any.whl"), ["3.11", "3.12"], "python-version", id="py2-only"),
        pytest.param(dist("foo-1.0-py311-none-any.whl"), ["3.12"], "kept", id="py311-on-3.12"),
        pytest.param(dist("foo-1.0-py313-none-any.whl"), ["3.12"], "python-version", id="py313-on-3.12"),
        pytest.param(
            dist("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"), ["3.11", "3.12"], "kept", id="cp311"
        ),
        pytest.param(
            dist("foo-1.0-cp311-cp311-win_amd64.whl"), ["3.12"], "python-version", id="cp311-on-3.12"
        ),
        pytest.param(
            dist("foo-1.0-cp310-cp310-win_amd64.whl"), ["3.11", "3.12"], "python-version", id="cp310"
        ),
        pytest.param(dist("foo-1.0-cp38-abi3-win_amd64.whl"), ["3.11"], "kept", id="abi3-older"),
        pytest.param(dist("foo-1.0-cp312-abi3-win_amd64.whl"), ["3.11", "3.12"], "kept", id="abi3-same"),
        pytest.param(
            dist("foo-1.0-cp313-abi3-win_amd64.whl"), ["3.11", "3.12"], "python-version", id="abi3-newer"
        ),
        pytest.param(dist("foo-1.0-cp311-none-any.whl"), ["3.11"], "kept", id="cp311-none-any"),
        pytest.param(
            dist("foo-1.0-cp313-cp313t-win_amd64.whl"), ["3.13"], "python-version", id="free-threaded"
        ),
        pytest.param(dist("foo-1.0-pp310-pypy310_pp73-win_amd64.whl"), ["3.10"], "python-version", id="pypy"),
        pytest.param(dist("foo-1.0-cp37-cp37m-win_amd64.whl"), ["3.7"], "kept", id="cp37m"),
        pytest.param(dist("foo-1.0-cp27-cp27mu-manylinux1_x86_64.whl"), ["2.7"], "kept", id="cp27mu"),
        pytest.param(
            dist("foo-1.0-cp310.cp311-cp310.cp311-win_amd64.whl"), ["3.11"], "kept", id="compressed"
        ),
        # requires_python, with and without tags
        pytest.param(
            dist("foo-1.0-py3-none-any.whl", requires_python=">=3.13"),
            ["3.11", "3.12"],
            "python-version",
            id="wheel-requires-python",
        ),
        pytest.param(
            dist("foo-1.0-cp311-cp311-win_amd64.whl", requires_python=">=3.12"),
            ["3.11", "3.12"],
            "python-version",
            id="tags-and-requires-python-need-the-same-target",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python=">=3.12"),
            ["3.11", "3.12"],
            "kept",
            id="sdist-one-target-ok",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python="<3"), ["3.11"], "python-version", id="sdist-py2"
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python=">=3.11.2"),
            ["3.11"],
            "python-version",
            id="target-is-x.y.0-like-pip",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python=">=3.11.2"), ["3.11.4"], "kept", id="target-x.y.z"
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python="~=3.6,"), ["3.11"], "kept", id="invalid-rp-kept"
        ),
        pytest.param(dist("foo-1.0.tar.gz", requires_python="   "), ["3.11"], "kept", id="blank-rp-kept"),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python=">=3.13.0a1"),
            ["3.13"],
            "kept",
            id="rp-with-prerelease-bound",
        ),
        pytest.param(dist("foo-1.0-py2.7.egg", requires_python=None), ["3.12"], "kept", id="egg-no-rp-kept"),
        pytest.param(
            dist("foo-1.0-py2.7.egg", requires_python="<3"), ["3.12"], "python-version", id="egg-rp"
        ),
        pytest.param(
            dist("foo-1.0.win32.exe", requires_python="<3"), ["3.12"], "python-version", id="exe-rp"
        ),
        pytest.param(dist("foo-1.0-py2-none-any.whl"), [], "kept", id="no-targets"),
    ],
)
def test_python_versions(file: DistFile, targets: list[str], expected: str) -> None:
    assert decide([file], python_versions=targets) == {file.filename: expected}


# --- order of rules, determinism, details ---------------------------------------------------------------

EVERY_RULE = {
    "includes": ["foo<3"],
    "excludes": ["foo==2.5"],
    "prereleases": False,
    "package_types": ["sdist", "bdist_wheel"],
    "exclude_platforms": ["windows"],
    "python_versions": ["3.12"],
    "skip_yanked": True,
    "min_upload_age": "7d",
    "keep_latest_packages": 1,
}

# Each file breaks the rule named on its right and every rule after it, so only the order decides.
ORDER_FILES = [
    (dist("foo-1.x.tar.gz"), "invalid-filename"),
    (dist("bar-9.0rc1.tar.gz"), "wrong-project"),
    (dist("foo-3.0rc1-py2.7-win32.egg"), "blocklisted"),
    (dist("foo-3.5rc1-py2.7-win32.egg"), "advisory"),
    (dist("foo-4.0rc1-py2.7-win32.egg"), "not-included"),
    (dist("foo-2.5rc1.tar.gz"), "prerelease"),
    (dist("foo-2.5-py2.7-win32.egg"), "excluded"),
    (dist("foo-2.0rc1-py2.7-win32.egg"), "prerelease"),
    (dist("foo-2.0-py2.7-win32.egg", upload_time=NOW), "package-type"),
    (dist("foo-2.0-cp27-cp27m-win32.whl", yanked=True), "platform"),
    (dist("foo-2.0-py2-none-any.whl", yanked=True, upload_time=NOW), "python-version"),
    (dist("foo-2.0.tar.gz", yanked=True, upload_time=NOW), "yanked"),
    (dist("foo-2.9.tar.gz", upload_time=NOW), "too-new"),
    (dist("foo-2.1.tar.gz", upload_time=OLD), "kept"),
    (dist("foo-2.1-py3-none-any.whl"), "kept"),
    (dist("foo-2.0.zip", upload_time=OLD), "keep-latest"),
]


#: A malware advisory naming foo 3.0rc1 (blocklisted first) and 3.5rc1, as the sync's filter gets it.
ADVISORY_BLOCK = AdvisoryBlock(
    ("MAL",),
    Advisories(
        [
            Advisory(
                "MAL-2024-1",
                NOW,
                "malicious",
                (),
                (Affected.build("foo", versions=["3.0rc1", "3.5rc1"]),),
            )
        ]
    ),
)


def test_first_rule_wins_in_documented_order() -> None:
    files = [file for file, _ in ORDER_FILES]
    blocklist = Blocklist.parse(["foo==3.0rc1"])
    selection = select_files(
        NormalizedName("foo"),
        files,
        FilterSpec.build(**EVERY_RULE),
        now=NOW,
        blocklist=blocklist,
        advisories=ADVISORY_BLOCK,
    )
    assert outcome(selection) == {file.filename: reason for file, reason in ORDER_FILES}
    assert len(selection.kept) + len(selection.skipped) == len(files)
    assert selection.counts() == {
        "invalid-filename": 1,
        "wrong-project": 1,
        "blocklisted": 1,
        "advisory": 1,
        "not-included": 1,
        "excluded": 1,
        "prerelease": 2,
        "package-type": 1,
        "platform": 1,
        "python-version": 1,
        "yanked": 1,
        "too-new": 1,
        "keep-latest": 1,
    }
    # select_files's rules, in order; the refusals after keep-latest are filter_project's (test_refusals),
    # quarantined is withhold_quarantined's (test_quarantined_keeps_the_earlier_reasons).
    rules = list(SkipReason)[: list(SkipReason).index(SkipReason.KEEP_LATEST) + 1]
    rules.remove(SkipReason.QUARANTINED)
    assert list(selection.counts()) == [reason.value for reason in rules]


@pytest.mark.parametrize(
    ("status", "keep_quarantined", "quarantined"),
    [
        pytest.param("quarantined", False, True, id="quarantined-withheld"),
        pytest.param("quarantined", True, False, id="keep-quarantined"),
        pytest.param("archived", False, False, id="archived-kept"),
        pytest.param("deprecated", False, False, id="deprecated-kept"),
        pytest.param(None, False, False, id="active-kept"),
    ],
)
def test_quarantined_keeps_the_earlier_reasons(
    status: str | None, keep_quarantined: bool, quarantined: bool
) -> None:
    files = [file for file, _ in ORDER_FILES]
    blocklist = Blocklist.parse(["foo==3.0rc1"])
    selection = select_files(
        NormalizedName("foo"), files, FilterSpec.build(**EVERY_RULE), now=NOW, blocklist=blocklist
    )
    withheld = withhold_quarantined(
        selection, status=status, reason="malware", keep_quarantined=keep_quarantined
    )
    if not quarantined:
        assert withheld is selection
        return
    earlier = {"invalid-filename", "wrong-project", "blocklisted"}
    expected = {file.filename: reason if reason in earlier else "quarantined" for file, reason in ORDER_FILES}
    assert outcome(withheld) == expected
    assert not withheld.kept
    assert {s.detail for s in withheld.skipped if s.reason is SkipReason.QUARANTINED} == {
        "the upstream quarantined the project: malware"
    }


def test_selection_is_independent_of_input_order() -> None:
    files = [file for file, _ in ORDER_FILES] + [dist(f"foo-2.1.{s}") for s in ("zip", "tar.bz2", "tgz")]
    spec = FilterSpec.build(**{**EVERY_RULE, "keep_latest_packages": 2})
    expected = select_files(NormalizedName("foo"), files, spec, now=NOW)
    shuffler = random.Random(508)
    for _ in range(20):
        shuffler.shuffle(files)
        assert select_files(NormalizedName("foo"), files, spec, now=NOW) == expected
    assert [c.file.filename for c in expected.kept] == [
        "foo-2.0.zip",
        "foo-2.1-py3-none-any.whl",
        "foo-2.1.tar.bz2",
        "foo-2.1.tar.gz",
        "foo-2.1.tgz",
        "foo-2.1.zip",
    ]
    assert [s.file.filename for s in expected.skipped] == sorted(s.file.filename for s in expected.skipped)


def test_kept_sorted_by_version_then_filename() -> None:
    names = [
        "foo-10.0.tar.gz",
        "foo-9.0.zip",
        "foo-1!0.1.tar.gz",
        "foo-9.0-py3-none-any.whl",
        "foo-9.0rc1.zip",
    ]
    selection = select_files(NormalizedName("foo"), [dist(n) for n in names], FilterSpec.build(), now=NOW)
    assert [c.file.filename for c in selection.kept] == [
        "foo-9.0rc1.zip",
        "foo-9.0-py3-none-any.whl",
        "foo-9.0.zip",
        "foo-10.0.tar.gz",
        "foo-1!0.1.tar.gz",
    ]
    assert selection.kept[0].parsed.version == Version("9.0rc1")
    assert selection.counts() == {}


@pytest.mark.parametrize(
    ("file", "settings", "detail"),
    [
        pytest.param(dist("foo-1.x.tar.gz"), {}, "invalid version '1.x'", id="invalid-filename"),
        pytest.param(
            dist("foo_bar-1.0.tar.gz"), {}, "names project 'foo-bar', not 'foo'", id="wrong-project"
        ),
        pytest.param(dist("foo-1.0.tar.gz"), {"includes": ["bar"]}, "'foo' is not in includes", id="not-in"),
        pytest.param(
            dist("foo-1.0.tar.gz"),
            {"includes": ["foo>1"]},
            "1.0 matches no include ('foo>1')",
            id="version-not-included",
        ),
        pytest.param(dist("foo-1.0.tar.gz"), {"excludes": ["foo<2"]}, "1.0 matches exclude 'foo<2'", id="ex"),
        pytest.param(dist("foo-1.0c1.tar.gz"), {"prereleases": False}, "1.0rc1 is a pre-release", id="pre"),
        pytest.param(
            dist("foo-1.0.zip", packagetype="bdist_dumb"),
            {"package_types": ["sdist"]},
            "bdist_dumb is not in package_types",
            id="package-type",
        ),
        pytest.param(
            dist("foo-1.0-cp311-cp311-win_amd64.whl"),
            {"exclude_platforms": ["windows"]},
            "win_amd64 all excluded by 'windows'",
            id="platform-wheel",
        ),
        pytest.param(
            dist("foo-1.0.win32.exe"),
            {"exclude_platforms": ["windows"]},
            "bdist_wininst 'win32' excluded by 'windows'",
            id="platform-legacy",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", requires_python="<3"),
            {"python_versions": ["3.12"]},
            "requires_python '<3' excludes Python 3.12",
            id="python-sdist",
        ),
        pytest.param(
            dist("foo-1.0-py2-none-any.whl"),
            {"python_versions": ["3.11", "3.12"]},
            "not installable on Python 3.11, 3.12 (tags py2",
            id="python-wheel",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", yanked=True, yanked_reason="broken"),
            {"skip_yanked": True},
            "yanked: broken",
            id="yanked-reason",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz", upload_time=NOW - timedelta(hours=1)),
            {"min_upload_age": "2h"},
            "uploaded 2024-06-01T11:00:00+00:00, after the cutoff 2024-06-01T10:00:00+00:00",
            id="too-new",
        ),
        pytest.param(
            dist("foo-1.0.tar.gz"),
            {"min_upload_age": "2h", "missing_upload_time": "skip"},
            "no upload time",
            id="no-upload-time",
        ),
    ],
)
def test_skip_details(file: DistFile, settings: dict[str, Any], detail: str) -> None:
    selection = select_files(NormalizedName("foo"), [file], FilterSpec.build(**settings), now=NOW)
    assert selection.kept == ()
    (skip,) = selection.skipped
    assert skip.file is file
    assert detail in skip.detail


def test_naive_now_is_utc() -> None:
    file = dist("foo-1.0.tar.gz", upload_time=NOW - timedelta(hours=1))
    spec = FilterSpec.build(min_upload_age="2h")
    naive = select_files(NormalizedName("foo"), [file], spec, now=NOW.replace(tzinfo=None))
    assert naive == select_files(NormalizedName("foo"), [file], spec, now=NOW)


# --- the seed's examples ------------------------------------------------------------------------------

SEED_INCLUDES = ["django~=2.0,!=2.0.1", "pip-tools>=1.12,<=2.0", "scipy", "shelf-reader"]


@pytest.mark.parametrize(
    ("project", "filenames", "kept"),
    [
        pytest.param(
            "django",
            [
                "Django-1.11.tar.gz",
                "Django-2.0.tar.gz",
                "Django-2.0.1.tar.gz",
                "Django-2.0.1-py3-none-any.whl",
                "Django-2.1rc1.tar.gz",
                "Django-2.2.28-py3-none-any.whl",
                "Django-3.0.tar.gz",
                "Django-2.0+x.zip",
            ],
            [
                "Django-2.0.tar.gz",
                "Django-2.0+x.zip",
                "Django-2.1rc1.tar.gz",
                "Django-2.2.28-py3-none-any.whl",
            ],
            id="django-compatible-release-minus-one",
        ),
        pytest.param(
            "pip-tools",
            [
                "pip-tools-1.11.0.tar.gz",
                "pip-tools-1.12.0.tar.gz",
                "pip_tools-2.0.0-py2.py3-none-any.whl",
                "pip-tools-2.0.0rc1.tar.gz",
                "pip-tools-2.0.1.tar.gz",
                "pip-tools-2.0.post1.tar.gz",
            ],
            ["pip-tools-1.12.0.tar.gz", "pip-tools-2.0.0rc1.tar.gz", "pip_tools-2.0.0-py2.py3-none-any.whl"],
            id="pip-tools-range",
        ),
        pytest.param(
            "scipy",
            ["scipy-0.1.tar.gz", "scipy-1.13.0-cp312-cp312-win_amd64.whl", "scipy-2.0.dev0.tar.gz"],
            ["scipy-0.1.tar.gz", "scipy-2.0.dev0.tar.gz", "scipy-1.13.0-cp312-cp312-win_amd64.whl"],
            id="scipy-name-only",
        ),
        pytest.param(
            "shelf-reader", ["shelf_reader-0.1.tar.gz"], ["shelf_reader-0.1.tar.gz"], id="shelf-reader"
        ),
        pytest.param("requests", ["requests-2.0.tar.gz"], [], id="requests-not-included"),
    ],
)
def test_seed_includes(project: str, filenames: list[str], kept: list[str]) -> None:
    spec = FilterSpec.build(includes=SEED_INCLUDES)
    selection = select_files(NormalizedName(project), [dist(n) for n in filenames], spec, now=NOW)
    assert sorted(c.file.filename for c in selection.kept) == sorted(kept)
    assert {s.reason for s in selection.skipped} <= {SkipReason.NOT_INCLUDED}


def test_seed_includes_with_excludes() -> None:
    spec = FilterSpec.build(includes=["django", "scipy"], excludes=["django~=1.0", "scipy"])
    assert wanted_projects([NormalizedName(n) for n in ("django", "scipy", "flask")], spec) == ["django"]
    django = [
        dist(n)
        for n in (
            "Django-0.96.tar.gz",
            "Django-1.0.tar.gz",
            "Django-1.11.29.tar.gz",
            "Django-1.0rc1.tar.gz",
            "Django-2.0.tar.gz",
            "Django-5.0.tar.gz",
        )
    ]
    assert outcome(select_files(NormalizedName("django"), django, spec, now=NOW)) == {
        "Django-0.96.tar.gz": "kept",
        "Django-1.0.tar.gz": "excluded",
        "Django-1.11.29.tar.gz": "excluded",
        "Django-1.0rc1.tar.gz": "kept",
        "Django-2.0.tar.gz": "kept",
        "Django-5.0.tar.gz": "kept",
    }
    scipy = [dist("scipy-1.0.tar.gz"), dist("scipy-1.0-cp312-cp312-manylinux_2_17_x86_64.whl")]
    selection = select_files(NormalizedName("scipy"), scipy, spec, now=NOW)
    assert selection.kept == ()
    assert selection.counts() == {"excluded": 2}


def test_seed_types_platforms_keep_latest() -> None:
    spec = FilterSpec.build(
        package_types=["sdist", "bdist_wheel"], exclude_platforms=["windows"], keep_latest_packages=5
    )
    files = []
    for minor in range(8):
        version = f"1.{minor}"
        files += [
            dist(f"foo-{version}.tar.gz"),
            dist(f"foo-{version}-cp312-cp312-win_amd64.whl"),
            dist(f"foo-{version}-cp312-cp312-manylinux_2_17_x86_64.whl"),
            dist(f"foo-{version}-py3.12.egg"),
        ]
    # 2.0 exists only for Windows: it must not take one of the five places.
    files += [dist("foo-2.0-cp312-cp312-win_amd64.whl"), dist("foo-2.0-cp312-cp312-win32.whl")]
    selection = select_files(NormalizedName("foo"), files, spec, now=NOW)
    assert sorted({str(c.parsed.version) for c in selection.kept}) == ["1.3", "1.4", "1.5", "1.6", "1.7"]
    assert {c.parsed.platforms for c in selection.kept} == {(), ("manylinux_2_17_x86_64",)}
    assert len(selection.kept) == 10
    assert selection.counts() == {"package-type": 8, "platform": 10, "keep-latest": 6}


# --- refusals: the rules no index may talk a sync (or pull-through) out of -------------------------

_SHA = "a" * 64


@pytest.mark.parametrize(
    ("url", "size", "sha256", "require_sha256", "max_file_bytes", "expected"),
    [
        pytest.param("https://files.example/a-1.0.tar.gz", 10, _SHA, True, 100, None, id="kept"),
        pytest.param("file:///etc/passwd", 10, _SHA, False, None, "unsafe-url", id="file-url"),
        pytest.param("https:///a-1.0.tar.gz", 10, _SHA, False, None, "unsafe-url", id="no-host"),
        pytest.param("http://[::1/a-1.0.tar.gz", 10, _SHA, False, None, "unsafe-url", id="bad-ipv6"),
        pytest.param("https://files.example/a-1.0.tar.gz", 101, _SHA, False, 100, "too-large", id="too-large"),
        pytest.param("https://files.example/a-1.0.tar.gz", None, _SHA, False, 100, None, id="no-size-kept"),
        pytest.param("https://files.example/a\x00-1.0.tar.gz", 1, _SHA, False, None, "invalid-field", id="nul"),
        pytest.param("https://files.example/a-1.0.tar.gz", 1, None, True, None, "no-sha256", id="no-sha256"),
        pytest.param("https://files.example/a-1.0.tar.gz", 1, None, False, None, None, id="no-sha256-immediate"),
    ],
)  # fmt: skip
def test_refusals(url, size, sha256, require_sha256, max_file_bytes, expected) -> None:
    file = DistFile(filename="a-1.0.tar.gz", url=url, sha256=sha256, size=size)
    skip = mirrorflow.tasks.filters.refusal(
        file, max_file_bytes=max_file_bytes, require_sha256=require_sha256
    )
    assert (None if skip is None else skip.reason.value) == expected


def test_filter_project_counts_refusals_after_keep_latest() -> None:
    files = [
        DistFile(filename="a-2.0.tar.gz", url="file:///a-2.0.tar.gz", sha256=_SHA),
        DistFile(filename="a-1.0.tar.gz", url="https://files.example/a-1.0.tar.gz", sha256=_SHA),
    ]
    spec = FilterSpec.build(keep_latest_packages=1)
    selection = mirrorflow.tasks.filters.filter_project(
        canonicalize_name("a"),
        files,
        spec,
        now=NOW,
        max_file_bytes=None,
        require_sha256=True,
        blocklist=Blocklist(),
    )
    assert selection.kept == () and selection.counts() == {"keep-latest": 1, "unsafe-url": 1}


# --- doctests (purity is held by tests/unit/test_boundaries.py) ------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, id=m.__name__)
        for m in (
            mirrorflow.tasks.filters,
            mirrorflow.tasks.blocklist,
            mirrorflow.tasks.filter_spec,
            mirrorflow.tasks.platforms,
            mirrorflow.tasks.filenames,
            mirrorflow.tasks.index_url,
            mirrorflow.tasks.outcome,
            mirrorflow.tasks.simple,
        )
    ],
)
def test_doctests(module: Any) -> None:
    assert doctest.testmod(module, raise_on_error=True).attempted > 0
