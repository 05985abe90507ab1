"""The hrefs of the read-only JSON API, in Pulp's shape, so that scripts written for pulp-cli work.

Pure functions over uuids and numbers; the CLI prints these hrefs and ``mirrorflow.server.api`` answers them::

    /pulp/api/v3/repositories/python/python/<uuid>/              a repository
    /pulp/api/v3/repositories/python/python/<uuid>/versions/<n>/ one of its versions
    /pulp/api/v3/remotes/python/python/<uuid>/                   a remote
    /pulp/api/v3/content/python/packages/<uuid>/                 a package (one distribution file)
    /pulp/api/v3/content/python/packages/?repository_version=<version href>   (also _added, _removed)

``parse_version_href`` reads a version href back; it raises ``InvalidHref``.
"""

from __future__ import annotations

import re
import uuid
from typing import Literal

from mirrorflow.storage.errors import MirrorflowError

__all__ = [
    "API_ROOT",
    "PACKAGES",
    "REMOTES",
    "REPOSITORIES",
    "InvalidHref",
    "Membership",
    "MEMBERSHIP_FILTERS",
    "content_href",
    "content_list_href",
    "parse_version_href",
    "remote_href",
    "repository_href",
    "version_href",
    "versions_href",
]

API_ROOT = "/pulp/api/v3/"
REPOSITORIES = f"{API_ROOT}repositories/python/python/"
REMOTES = f"{API_ROOT}remotes/python/python/"
PACKAGES = f"{API_ROOT}content/python/packages/"

#: Which content of a version a content query asks for: what it holds, or what it added or removed.
Membership = Literal["present", "added", "removed"]
#: The content list's query parameters, as Pulp names them.
MEMBERSHIP_FILTERS: dict[str, Membership] = {
    "repository_version": "present",
    "repository_version_added": "added",
    "repository_version_removed": "removed",
}
_PARAMETER = {membership: parameter for parameter, membership in MEMBERSHIP_FILTERS.items()}

_VERSION_RE = re.compile(rf"{re.escape(REPOSITORIES)}(?P<uuid>[0-9a-f-]{{36}})/versions/(?P<number>[0-9]+)/")


class InvalidHref(MirrorflowError, ValueError):
    """A href the caller gave (a query parameter) that names no repository version; ``.href``, ``.reason``."""

    def __init__(self, href: str, reason: str) -> None:
        super().__init__(f"{href!r} {reason}")
        self.href = href
        self.reason = reason


def repository_href(repository_uuid: str) -> str:
    return f"{REPOSITORIES}{repository_uuid}/"


def versions_href(repository_uuid: str) -> str:
    return f"{REPOSITORIES}{repository_uuid}/versions/"


def version_href(repository_uuid: str, number: int) -> str:
    return f"{REPOSITORIES}{repository_uuid}/versions/{number}/"


def remote_href(remote_uuid: str) -> str:
    return f"{REMOTES}{remote_uuid}/"


def content_href(package_uuid: str) -> str:
    return f"{PACKAGES}{package_uuid}/"


def content_list_href(membership: Membership, repository_uuid: str, number: int) -> str:
    """The content list of one version, as Pulp writes it in a content summary.

    The version href goes in unquoted, as Pulp prints it (``/`` is allowed in a query).

    >>> content_list_href("added", "0196ba2a-f353-736a-854c-2d415389a509", 1)
    '/pulp/api/v3/content/python/packages/?repository_version_added=/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/1/'
    """
    return f"{PACKAGES}?{_PARAMETER[membership]}={version_href(repository_uuid, number)}"


def parse_version_href(href: str) -> tuple[str, int]:
    """Return ``(repository uuid, version number)`` of a version href; raise ``InvalidHref``.

    A full URL is accepted too (``http://host:8080/pulp/api/v3/...``): only its path counts.

    >>> parse_version_href("/pulp/api/v3/repositories/python/python/0196ba2a-f353-736a-854c-2d415389a509/versions/1/")
    ('0196ba2a-f353-736a-854c-2d415389a509', 1)
    >>> parse_version_href("/pulp/api/v3/repositories/python/python/foo/versions/1/")
    Traceback (most recent call last):
    ...
    mirrorflow.server.hrefs.InvalidHref: '/pulp/api/v3/repositories/python/python/foo/versions/1/' is not a repository version href
    """
    path = href
    if "://" in href:
        start = href.find("/", href.index("://") + 3)
        path = href[start:] if start >= 0 else "/"
    found = _VERSION_RE.fullmatch(path)
    if found is None:
        raise InvalidHref(href, "is not a repository version href")
    try:
        uuid.UUID(found["uuid"])
    except ValueError:
        raise InvalidHref(href, "is not a repository version href") from None
    return found["uuid"], int(found["number"])
