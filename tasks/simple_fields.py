"""Field readers shared by the simple-page parsers of ``mirrorflow.tasks.simple``: types, digests, serials, URLs.

Split out of ``mirrorflow.tasks.simple`` so that each stays a readable size; ``mirrorflow.tasks.simple`` re-exports
``InvalidPage`` and ``SUPPORTED_API_MAJOR``, the public names defined here. The file-entry readers
(``json_field``, ``Resolver``) are the hot loop of a whole-index sync (one call per listed file), so
they take a fast path for the common, well-formed value and build error text only for a bad one.

Errors::

    ValueError
     └── InvalidPage      .url, .reason: the page is not a simple page we can read

Imports only the standard library and ``mirrorflow.tasks.distributions``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.tasks.distributions import Sha256, is_sha256

__all__ = [
    "InvalidPage",
    "SUPPORTED_API_MAJOR",
    "Resolver",
    "check_api_version",
    "json_field",
    "json_upload_time",
    "provenance_url",
    "read_serial",
    "resolve_url",
    "serial_from_header",
    "sha256_or_none",
    "typed_value",
]

#: The simple API major version these parsers understand (PEP 629: refuse a higher major).
SUPPORTED_API_MAJOR = 1

_API_VERSION_RE = re.compile(r"(\d+)\.(\d+)")


class InvalidPage(MirrorflowError, ValueError):
    """A simple page that cannot be parsed; ``url`` is the page, ``reason`` says what is wrong."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"invalid simple page {url!r}: {reason}")
        self.url = url
        self.reason = reason


def check_api_version(value: object, *, page_url: str) -> None:
    """Raise InvalidPage when ``value`` is not ``"<major>.<minor>"`` with a major we support."""
    if value is None:
        return  # PEP 503 HTML pages before PEP 629 carry no version; treat them as 1.0.
    match = _API_VERSION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidPage(page_url, f"api-version {value!r} is not '<major>.<minor>'")
    if int(match.group(1)) > SUPPORTED_API_MAJOR:
        raise InvalidPage(
            page_url, f"api-version {value!r} is newer than the supported {SUPPORTED_API_MAJOR}.x"
        )


def sha256_or_none(value: object) -> Sha256 | None:
    """Return the lowercased digest when it is a sha256 hex string, else None."""
    if not isinstance(value, str):
        return None
    digest = value.strip().lower()
    return Sha256(digest) if is_sha256(digest) else None


def resolve_url(page_url: str, href: str) -> str:
    """Resolve ``href`` against ``page_url`` and drop the fragment.

    An href that ``urllib`` cannot parse (a malformed IPv6 host such as ``http://[::1``) is returned as
    written: it is one file's problem, and the sync's unsafe-URL rule skips that file.

    >>> resolve_url("https://index.example/simple/a/", "../../f/a-1.tar.gz#sha256=00")
    'https://index.example/f/a-1.tar.gz'
    >>> resolve_url("https://index.example/simple/a/", "http://[::1/a-1.tar.gz")
    'http://[::1/a-1.tar.gz'
    """
    try:
        return urldefrag(urljoin(page_url, href.strip())).url
    except ValueError:
        return href.strip()


#: What keeps an href off the fast path of ``Resolver``: a query, fragment or parameters, and the
#: whitespace and control characters that ``urlsplit`` strips or removes.
_NOT_PLAIN_RE = re.compile(r"[\x00-\x20\x7f?#;]")


class Resolver:
    """``resolve_url`` for the many files of one page: ``urljoin`` once per distinct directory.

    The files of a page mostly share a directory (``/files/42/a.whl``, ``/files/42/a.tar.gz``).
    Resolving ``<dir>/<last>`` equals resolving ``<dir>/`` and appending ``<last>`` when ``<last>`` is
    not a dot segment, the slash is not part of a ``//``, and the href holds nothing ``urljoin`` treats
    specially (query, fragment, parameters, characters it strips); any other href takes the plain
    ``resolve_url``.
    """

    __slots__ = ("_page_url", "_directories")

    def __init__(self, page_url: str) -> None:
        self._page_url = page_url
        self._directories: dict[str, str] = {}

    def __call__(self, href: str) -> str:
        href = href.strip()
        head, slash, last = href.rpartition("/")
        # A head ending in "/" means the slash is part of "//" (an authority, or an empty segment).
        plain = slash and not head.endswith("/") and last not in (".", "..")
        if not plain or _NOT_PLAIN_RE.search(href) is not None:
            return resolve_url(self._page_url, href)
        directory = self._directories.get(head)
        if directory is None:
            directory = self._directories[head] = resolve_url(self._page_url, f"{head}/")
        return directory + last


def serial_from_header(value: str | None) -> int | None:
    """Parse an ``X-PyPI-Last-Serial`` header; a missing or garbled header gives None."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def read_serial(value: object) -> int | None:
    """Return a ``_last-serial`` as an int: an integer or a string of digits; anything else gives None.

    The serial only informs (an unknown serial makes the next sync fetch the page again), so a
    garbled one is ignored rather than refusing the page. Real indexes and mirrors (a caching front of
    the public index, Pulp, bandersnatch) send it as a string.

    >>> read_serial(7), read_serial("2124101"), read_serial(" 9 "), read_serial("nine"), read_serial(-1)
    (7, 2124101, 9, None, None)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    return serial_from_header(value) if isinstance(value, str) else None


def typed_value(
    entry: Mapping[str, Any], key: str, kinds: tuple[type, ...], *, page_url: str, where: str
) -> Any:
    """Return ``entry[key]`` (None when absent or null), raising InvalidPage when it has another type."""
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(kind.__name__ for kind in kinds)
        raise InvalidPage(page_url, f"{where}: {key!r} is {value!r}, expected {expected}")
    return value


def json_field(entry: Mapping[str, Any], key: str, kinds: tuple[type, ...], index: int, page_url: str) -> Any:
    """``typed_value`` for a file entry, with a fast path for values of exactly an expected type."""
    value = entry.get(key)
    if value is None or type(value) in kinds:
        return value
    return typed_value(entry, key, kinds, page_url=page_url, where=f"files[{index}]")


@functools.lru_cache(maxsize=4096)
def _iso_datetime(value: str) -> datetime | None:
    # Files of one release share an upload time: parse each distinct string once (bounded cache).
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # PEP 700 mandates UTC ("Z"); a naive value from a sloppy index is read as UTC too.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def json_upload_time(value: str | None) -> datetime | None:
    """Return a PEP 700 upload time as an aware datetime (with or without fractions of a second).

    The time only informs (``min_upload_age``); one that is not ISO 8601 counts as missing, and
    ``missing_upload_time`` decides about the file, rather than refusing the page.
    """
    return None if value is None else _iso_datetime(value)


def provenance_url(value: object, resolve: Callable[[str], str]) -> str | None:
    """PEP 740's ``provenance`` (JSON) or ``data-provenance`` (HTML) as an absolute URL, or None.

    The provenance only informs (a file is synced without it), so a value that is not a string, or
    not a URL the sync may fetch, is ignored rather than refusing the page: the same rule as a file's
    URL (``mirrorflow.tasks.filters.refusal``: http(s) with a host, no NUL; ``file://`` would read
    the mirror's own disk). Relative values are resolved against the page, as file URLs are.

    >>> resolve = Resolver("https://index.example/simple/a/")
    >>> provenance_url("../../integrity/a-1.tar.gz/provenance", resolve)
    'https://index.example/integrity/a-1.tar.gz/provenance'
    >>> provenance_url("file:///etc/passwd", resolve), provenance_url(3, resolve), provenance_url(" ", resolve)
    (None, None, None)
    """
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return None
    url = resolve(value)
    try:
        parts = urlsplit(url)
        safe = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed IPv6 host or port
        return None
    return url if safe else None
