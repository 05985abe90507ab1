"""What a repository or remote name may be: the rule the CLI checks, importable without Typer.

A name is a URL path segment of the index and part of a deployment's name, is stored in a
255-character column and is printed in one-line messages.

>>> is_plain_name("foo-1.2_x"), is_plain_name("-foo"), is_plain_name("a b"), is_plain_name("x" * 256)
(True, False, False, False)
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "NAME_RE", "is_plain_name"]

MAX_NAME_LENGTH = 255
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_plain_name(value: str) -> bool:
    """Whether ``value`` is a name the CLI accepts (``mirrorflow.flows.cli_app`` explains a refusal)."""
    return len(value) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(value) is not None
