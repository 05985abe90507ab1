"""Where an upstream's simple index is, from the URL a user gave for a remote.

Users write a remote's URL three ways, and all three work:

- the index root, as Pulp takes it (``https://index.example/``): the simple index is ``<root>simple/``;
- the simple root, as pip's ``--index-url`` takes it (``https://index.example/simple/``);
- devpi's simple root (``https://devpi.example/root/pypi/+simple/``).

The rule: a URL whose last path segment is ``simple`` or ``+simple`` is the simple root. Any other URL
is an index root: the sync tries ``<url>/simple/``, then ``<url>/+simple/``, then ``<url>/`` itself (a
simple root under another name, such as proxpi's ``/index/``), and uses the first that answers as a
simple index (``mirrorflow.tasks.index_client.locate_simple_root``). The remote keeps the URL as given.

Pure: imports only the standard library.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["SIMPLE_SEGMENTS", "simple_root_candidates"]

#: The last path segments that mark a URL as a simple root.
SIMPLE_SEGMENTS = ("simple", "+simple")


def simple_root_candidates(url: str) -> tuple[str, ...]:
    """Return the simple roots to try for a remote's ``url``, in order; each ends with ``/``.

    >>> simple_root_candidates("https://index.example/simple")
    ('https://index.example/simple/',)
    >>> simple_root_candidates("https://devpi.example/root/pypi/+simple/")
    ('https://devpi.example/root/pypi/+simple/',)
    >>> simple_root_candidates("https://index.example")  # doctest: +NORMALIZE_WHITESPACE
    ('https://index.example/simple/', 'https://index.example/+simple/', 'https://index.example/')
    """
    parts = urlsplit(url.strip())
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    root = urlunsplit(parts._replace(path=path, fragment=""))
    if path.rstrip("/").rsplit("/", 1)[-1] in SIMPLE_SEGMENTS:
        return (root,)
    return tuple(urlunsplit(parts._replace(path=path + s + "/", fragment="")) for s in SIMPLE_SEGMENTS) + (
        root,
    )
