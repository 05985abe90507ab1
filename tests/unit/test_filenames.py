"""Tests for mirrorflow.tasks.filenames: every format the index serves, and the names we refuse."""

from __future__ import annotations

import doctest

import pytest
from packaging.version import Version

import mirrorflow.tasks.filenames
from mirrorflow.tasks.filenames import PACKAGE_TYPES, InvalidFilename, parse_filename


@pytest.mark.parametrize(
    ("filename", "name", "version", "packagetype", "python_version", "platforms"),
    [
        # wheels
        pytest.param(
            "foo-1.0-py3-none-any.whl", "foo", "1.0", "bdist_wheel", "py3", ("any",), id="wheel-pure"
        ),
        pytest.param(
            "foo-1.0-py2.py3-none-any.whl",
            "foo",
            "1.0",
            "bdist_wheel",
            "py2.py3",
            ("any",),
            id="wheel-py2.py3",
        ),
        pytest.param(
            "foo-1.0-1-cp311-cp311-win_amd64.whl",
            "foo",
            "1.0",
            "bdist_wheel",
            "cp311",
            ("win_amd64",),
            id="wheel-build-tag",
        ),
        pytest.param(
            "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "numpy",
            "2.0.0",
            "bdist_wheel",
            "cp312",
            ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
            id="wheel-compressed-platforms-in-filename-order",
        ),
        pytest.param(
            "foo-1.0-cp312-cp312-macosx_10_9_universal2.whl",
            "foo",
            "1.0",
            "bdist_wheel",
            "cp312",
            ("macosx_10_9_universal2",),
            id="wheel-universal2",
        ),
        pytest.param(
            "Foo_Bar.baz-1!2.0.post1-py3-none-any.WHL",
            "foo-bar-baz",
            "1!2.0.post1",
            "bdist_wheel",
            "py3",
            ("any",),
            id="wheel-normalized-name-epoch-upper-suffix",
        ),
        # sdists, every suffix
        pytest.param("foo-1.0.tar.gz", "foo", "1.0", "sdist", "source", (), id="sdist-tar.gz"),
        pytest.param("foo-1.0.zip", "foo", "1.0", "sdist", "source", (), id="sdist-zip"),
        pytest.param("foo-1.0.tar.bz2", "foo", "1.0", "sdist", "source", (), id="sdist-tar.bz2"),
        pytest.param("foo-1.0.tgz", "foo", "1.0", "sdist", "source", (), id="sdist-tgz"),
        pytest.param("foo-1.0.tar.xz", "foo", "1.0", "sdist", "source", (), id="sdist-tar.xz"),
        pytest.param("foo-1.0.tar", "foo", "1.0", "sdist", "source", (), id="sdist-tar"),
        pytest.param("foo-bar-1.0.tar.gz", "foo-bar", "1.0", "sdist", "source", (), id="sdist-dashed-name"),
        pytest.param(
            "Foo_Bar.baz-1.0.tar.gz", "foo-bar-baz", "1.0", "sdist", "source", (), id="sdist-normalize"
        ),
        pytest.param("foo-1.0c1.tar.gz", "foo", "1.0rc1", "sdist", "source", (), id="sdist-c-is-rc"),
        pytest.param("foo-1.0.dev3.tar.gz", "foo", "1.0.dev3", "sdist", "source", (), id="sdist-dev"),
        pytest.param("foo-1.0+ubuntu.1.zip", "foo", "1.0+ubuntu.1", "sdist", "source", (), id="sdist-local"),
        pytest.param("foo-1!2.0.tar.gz", "foo", "1!2.0", "sdist", "source", (), id="sdist-epoch"),
        # bdist_dumb: an archive with a platform after the version
        pytest.param(
            "foo-1.0.linux-x86_64.tar.gz",
            "foo",
            "1.0",
            "bdist_dumb",
            "any",
            ("linux-x86_64",),
            id="dumb-linux",
        ),
        pytest.param(
            "foo-1.0.macosx-10.9-x86_64.zip",
            "foo",
            "1.0",
            "bdist_dumb",
            "any",
            ("macosx-10.9-x86_64",),
            id="dumb-macosx-zip",
        ),
        pytest.param("foo-1.0.win32.zip", "foo", "1.0", "bdist_dumb", "any", ("win32",), id="dumb-win32"),
        pytest.param(
            "foo-1.0.win-amd64.zip", "foo", "1.0", "bdist_dumb", "any", ("win-amd64",), id="dumb-winamd"
        ),
        pytest.param(
            "foo-1.0.freebsd-13.2-amd64.tar.gz",
            "foo",
            "1.0",
            "bdist_dumb",
            "any",
            ("freebsd-13.2-amd64",),
            id="dumb-freebsd",
        ),
        pytest.param(
            "foo-1.0.cygwin-3.4-x86_64.tar.bz2",
            "foo",
            "1.0",
            "bdist_dumb",
            "any",
            ("cygwin-3.4-x86_64",),
            id="dumb-cygwin",
        ),
        # eggs
        pytest.param("foo-1.0-py2.7.egg", "foo", "1.0", "bdist_egg", "py2.7", ("any",), id="egg-pure"),
        pytest.param(
            "foo_bar-1.0-py3.6.egg", "foo-bar", "1.0", "bdist_egg", "py3.6", ("any",), id="egg-name"
        ),
        pytest.param(
            "foo-1.0-py2.7-win32.egg", "foo", "1.0", "bdist_egg", "py2.7", ("win32",), id="egg-win32"
        ),
        pytest.param(
            "foo-1.0-py2.7-macosx-10.9-x86_64.egg",
            "foo",
            "1.0",
            "bdist_egg",
            "py2.7",
            ("macosx-10.9-x86_64",),
            id="egg-dashed-platform",
        ),
        # Windows installers
        pytest.param("foo-1.0.win32.exe", "foo", "1.0", "bdist_wininst", "any", ("win32",), id="exe-win32"),
        pytest.param(
            "foo-1.0.win-amd64-py2.7.exe",
            "foo",
            "1.0",
            "bdist_wininst",
            "any",
            ("win-amd64",),
            id="exe-python",
        ),
        pytest.param("foo-1.0.win-amd64.msi", "foo", "1.0", "bdist_msi", "any", ("win-amd64",), id="msi"),
        pytest.param(
            "foo-1.0.win32-py3.6.msi", "foo", "1.0", "bdist_msi", "any", ("win32",), id="msi-python"
        ),
        # disk images and rpms
        pytest.param(
            "foo-1.0-macosx-10.9-x86_64.dmg",
            "foo",
            "1.0",
            "bdist_dmg",
            "any",
            ("macosx-10.9-x86_64",),
            id="dmg",
        ),
        pytest.param("foo-1.0.dmg", "foo", "1.0", "bdist_dmg", "any", (), id="dmg-no-platform"),
        pytest.param("foo-1.0-1.noarch.rpm", "foo", "1.0", "bdist_rpm", "any", ("noarch",), id="rpm-noarch"),
        pytest.param("foo-1.0-1.src.rpm", "foo", "1.0", "bdist_rpm", "any", ("src",), id="rpm-src"),
        pytest.param(
            "foo-bar-2.1-3.x86_64.rpm", "foo-bar", "2.1", "bdist_rpm", "any", ("x86_64",), id="rpm-arch"
        ),
    ],
)
def test_parse_filename(
    filename: str, name: str, version: str, packagetype: str, python_version: str, platforms: tuple[str, ...]
) -> None:
    parsed = parse_filename(filename)
    assert (parsed.name, parsed.version, parsed.packagetype) == (name, Version(version), packagetype)
    assert (parsed.python_version, parsed.platforms) == (python_version, platforms)
    assert parsed.packagetype in PACKAGE_TYPES


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        pytest.param("foo-1.x.tar.gz", "invalid version '1.x'", id="sdist-invalid-version"),
        pytest.param("foo-1.0-2.0-x.tar.gz", "invalid version 'x'", id="sdist-garbage-after-version"),
        pytest.param("foo.tar.gz", "no '-' between", id="sdist-no-version"),
        pytest.param("-1.0.tar.gz", "no '-' between", id="sdist-empty-name"),
        pytest.param("föo-1.0.tar.gz", "is not a valid project name", id="sdist-non-ascii-name"),
        pytest.param("foo bar-1.0.tar.gz", "is not a valid project name", id="sdist-space-in-name"),
        pytest.param("foo-1.x.linux-x86_64.tar.gz", "invalid version", id="dumb-invalid-version"),
        pytest.param("foo-1.x-py3-none-any.whl", "invalid version", id="wheel-invalid-version"),
        pytest.param("foo-1.0-py3-none.whl", "wrong number of parts", id="wheel-too-few-parts"),
        pytest.param("foo-1.0-py3-none-any.whl.exe", "'.win32'", id="exe-without-platform"),
        pytest.param("foo-1.0.exe", "'.win32'", id="exe-no-platform"),
        pytest.param("foo-1.0.win32-pyx.exe", "invalid python part", id="exe-bad-python"),
        pytest.param("foo-1.x.win32.msi", "invalid version '1.x'", id="msi-invalid-version"),
        pytest.param("foo-1.0.egg", "'pyX.Y'", id="egg-no-python"),
        pytest.param("foo-1.x-py2.7.egg", "invalid version '1.x'", id="egg-invalid-version"),
        pytest.param("foo.noarch.rpm", "name-version-release.arch", id="rpm-no-release"),
        pytest.param("foo-1.0.noarch.rpm", "no '-' between", id="rpm-no-version"),
        pytest.param("foo-1.x-1.noarch.rpm", "invalid version '1.x'", id="rpm-invalid-version"),
        pytest.param("foo-1.x-macosx-10.9-x86_64.dmg", "invalid version '1.x'", id="dmg-invalid-version"),
        pytest.param("foo-1.0.txt", "unknown file extension", id="unknown-extension"),
        pytest.param("foo-1.0.tar.gz.asc", "unknown file extension", id="signature"),
        pytest.param("../foo-1.0.tar.gz", "contains '/'", id="parent-dir"),
        pytest.param("dir/foo-1.0.tar.gz", "contains '/'", id="slash"),
        pytest.param("dir\\foo-1.0.tar.gz", "contains '\\\\'", id="backslash"),
        pytest.param("foo-1.0.tar.gz\x00.whl", "contains '\\x00'", id="nul"),
        pytest.param("foo-1.0\n.tar.gz", "control character", id="newline"),
        pytest.param(".", "only dots", id="dot"),
        pytest.param("..", "only dots", id="dotdot"),
        pytest.param("", "empty", id="empty"),
    ],
)
def test_parse_filename_rejects(filename: str, reason: str) -> None:
    with pytest.raises(InvalidFilename) as caught:
        parse_filename(filename)
    assert caught.value.filename == filename
    assert reason in caught.value.reason
    assert repr(filename) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parsed_filename_is_frozen() -> None:
    parsed = parse_filename("foo-1.0.tar.gz")
    with pytest.raises(AttributeError):
        parsed.name = "bar"  # type: ignore[misc]


def test_doctests() -> None:
    assert doctest.testmod(mirrorflow.tasks.filenames, raise_on_error=True).attempted > 0


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-py3-none-any.whl",
        "demo-1.0-1-py3-none-any.whl",
        "demo-1.0-1abc-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "Demo_Pkg-2!1.0.post1.dev3+local-py2.py3-none-any.whl",
        "demo-1.0-x-py3-none-any.whl",  # a build tag must start with a digit
        "demo-1.0-py3-none.whl",  # too few parts
        "a-b-1.0-1-py3-none-any.whl",  # too many parts
        "demo-1.0-py3--any.whl",  # empty abi
        "demo-1.0-3py-none-any.whl",  # interpreter not an identifier
        "demo-1.0-py3-none-.whl",  # empty platform
        "demo__x-1.0-py3-none-any.whl",  # "__" in the name
        "demo-not.a.version-py3-none-any.whl",
    ],
)
def test_wheels_parse_as_packaging_parses_them(filename: str) -> None:
    """The tag set is checked once per spelling: the outcome is still exactly packaging's."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        with pytest.raises(InvalidFilename) as caught:
            parse_filename(filename)
        assert str(exc) in str(caught.value)
    else:
        parsed = parse_filename(filename)
        assert (parsed.name, parsed.version) == (name, version)


@pytest.mark.parametrize(
    ("filename", "project", "expected"),
    [
        pytest.param(
            "Drift__Core-1.0.0-cp36-cp36m-win_amd64.whl",
            "drift-core",
            ("drift-core", "1.0.0", "bdist_wheel", "cp36", ("win_amd64",), True),
            id="wheel-unnormalized-project-part",
        ),
        pytest.param(
            "foo-bar-1.0-py3-none-any.whl",
            "foo-bar",
            ("foo-bar", "1.0", "bdist_wheel", "py3", ("any",), True),
            id="wheel-dash-in-project-part",
        ),
        pytest.param(
            "name-1.0-py2.7-macosx10.6.dmg",
            "name",
            ("name", "1.0", "bdist_dmg", "py2.7", ("macosx10.6",), False),
            id="bdist-dmg-usual-name",
        ),
        pytest.param(
            "foo-1.0-beta.tar.gz",
            "foo",
            ("foo", "1.0b0", "sdist", "source", (), True),
            id="sdist-dash-in-version",
        ),
        pytest.param(
            "foo-1.0.dev-r123.tar.gz",
            "foo",
            ("foo", "1.0.dev0", "sdist", "source", (), True),
            id="sdist-svn-revision-suffix",
        ),
        pytest.param(
            "foo_1.0.tar.gz", "foo", ("foo", "1.0", "sdist", "source", (), True), id="sdist-underscore"
        ),
        pytest.param(
            "foo-1.0-1.tar.gz",
            "foo",
            ("foo", "1.0.post1", "sdist", "source", (), True),
            id="sdist-read-as-the-listing-project",
        ),
        pytest.param(
            "foo-1.0.tar.gz", "foo", ("foo", "1.0", "sdist", "source", (), False), id="regular-name-untouched"
        ),
        pytest.param(
            "evil-1.0.tar.gz",
            "foo",
            ("evil", "1.0", "sdist", "source", (), False),
            id="another-project-stays-another-project",
        ),
    ],
)
def test_parse_filename_knowing_the_project(
    filename: str, project: str, expected: tuple[object, ...]
) -> None:
    parsed = parse_filename(filename, project=project)  # type: ignore[arg-type]
    assert (
        parsed.name,
        str(parsed.version),
        parsed.packagetype,
        parsed.python_version,
        parsed.platforms,
        parsed.by_project,
    ) == expected


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        pytest.param("../foo-1.0.tar.gz", "contains '/'", id="unsafe-stays-refused"),
        pytest.param("foo-1.0.txt", "unknown file extension", id="unknown-extension-stays-refused"),
        pytest.param("foo-bar-1.0.tar.gz\x00", "contains '\\x00'", id="nul-stays-refused"),
        pytest.param("foo-x.y.tar.gz", "invalid version 'x.y'", id="no-version-keeps-packagings-reason"),
    ],
)
def test_knowing_the_project_never_admits_an_unsafe_or_versionless_name(filename: str, reason: str) -> None:
    with pytest.raises(InvalidFilename) as caught:
        parse_filename(filename, project="foo")  # type: ignore[arg-type]
    assert reason in caught.value.reason
