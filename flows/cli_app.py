"""The ``mirrorflow`` Typer apps and the helpers every command module shares.

Command modules (``mirrorflow.flows.cli`` and the ``mirrorflow.flows.cli_*`` modules) register their commands on these
apps; ``mirrorflow.flows.cli.main`` imports them all.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mirrorflow.flows.names import MAX_NAME_LENGTH, NAME_RE
from mirrorflow.flows.views import to_json
from mirrorflow.storage.errors import MirrorflowError

if TYPE_CHECKING:
    from mirrorflow.storage.catalog import Catalog

__all__ = [
    "app",
    "repository_app",
    "version_app",
    "remote_app",
    "content_app",
    "UsageError",
    "check_range",
    "emit",
    "open_catalog",
    "json_list",
    "json_labels",
    "Name",
    "bool_text",
    "JsonList",
    "JsonLabels",
]

# rich_markup_mode=None: help in click's plain format, since importing rich (and pygments) for it
# would cost more than a listing command (see flows.cli's docstring).

app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None
)
repository_app = typer.Typer(
    no_args_is_help=True, help="Create, show, sync repositories.", rich_markup_mode=None
)
version_app = typer.Typer(
    no_args_is_help=True, help="Show the versions of a repository.", rich_markup_mode=None
)
remote_app = typer.Typer(
    no_args_is_help=True, help="Create, show, update upstream remotes.", rich_markup_mode=None
)
content_app = typer.Typer(
    no_args_is_help=True, help="List the packages of a repository version.", rich_markup_mode=None
)
app.add_typer(repository_app, name="repository")
repository_app.add_typer(version_app, name="version")
app.add_typer(remote_app, name="remote")
app.add_typer(content_app, name="content")


class UsageError(MirrorflowError, ValueError):
    """Bad input on the command line, already phrased for the user."""


def check_range(field: str, value: float, low: float, high: float, *, what: str) -> None:
    """Refuse ``value`` outside ``low..high`` (NaN included) with the one-line error naming ``field``.

    The ranges are documented in the README's command table; ``what`` names the unit, as in
    ``protection_time: must be a number of minutes from 0 to 5256000 (got 99999999999)``.
    """
    if not low <= value <= high:
        raise UsageError(f"{field}: must be {what} from {low} to {high} (got {value!r})")


def emit(data: Any) -> None:
    typer.echo(to_json(data))


def open_catalog() -> Catalog:
    from mirrorflow.flows.runtime import catalog_for
    from mirrorflow.flows.settings import Settings

    return catalog_for(Settings())


_TRUE, _FALSE = ("true", "yes", "y", "1", "on"), ("false", "no", "n", "0", "off")


def bool_option(field: str, text: str | None) -> bool | None:
    """Read ``--prereleases false`` as pulp-cli writes it (``true``/``false``, ``yes``/``no``, ``1``/``0``);
    a bare ``--prereleases`` reads as ``true`` (``with_bare_flags``).

    >>> bool_option("prereleases", "False"), bool_option("prereleases", "1"), bool_option("x", None)
    (False, True, None)
    """
    if text is None:
        return None
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise UsageError(f"{field}: {text!r} is not true or false")


#: What a list option's value looks like, for the error that asks for a JSON list.
_LIST_EXAMPLES = {
    "headers": '[{"Authorization": "Bearer ..."}]',
    "python_versions": '["3.12"]',
    "exclude_platforms": '["windows", "macos"]',
    "package_types": '["bdist_wheel", "sdist"]',
    "block_advisories": '["MAL"]',
}


def json_list(field: str, text: str | None) -> list[Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{field}: {text!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        example = _LIST_EXAMPLES.get(field, '["shelf-reader"]')
        raise UsageError(f"{field}: {text!r} must be a JSON list, e.g. '{example}'")
    return value


#: A label key, as Pulp accepts it: letters, digits, ``_`` and spaces.
_LABEL_KEY_RE = re.compile(r"[\w ]+")
#: What a label value may not hold (Pulp's label filters use them as separators).
_LABEL_VALUE_FORBIDS = ",()"
_LABELS_EXAMPLE = '{"team": "ml"}'


def json_labels(text: str | None) -> dict[str, str] | None:
    """Parse ``--labels``: a JSON object of strings, keys and values as Pulp accepts them.

    Raises ``UsageError`` naming ``labels`` and showing the value.
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"labels: {text!r} is not valid JSON ({exc.msg}); e.g. '{_LABELS_EXAMPLE}'"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"labels: {text!r} must be a JSON object of strings, e.g. '{_LABELS_EXAMPLE}'")
    for key, label in value.items():
        if not _LABEL_KEY_RE.fullmatch(key):
            raise UsageError(
                f"labels: key {key!r} must use only letters, digits, '_' and spaces (got {text!r})"
            )
        if not isinstance(label, str):
            raise UsageError(f"labels: the value of {key!r} must be a string (got {text!r})")
        if any(char in label for char in _LABEL_VALUE_FORBIDS) or any(ord(char) < 0x20 for char in label):
            raise UsageError(
                f"labels: the value of {key!r} may not hold ',', '(', ')' or control characters (got {text!r})"
            )
    return value


def _check_name(value: str) -> str:
    """Refuse names no catalog row should carry: empty, too long, or holding control characters."""
    if not value.strip():
        raise typer.BadParameter(f"{value!r} is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise typer.BadParameter(f"{value[:20]!r}... is longer than {MAX_NAME_LENGTH} characters")
    if any(ord(char) < 0x20 or char == "\x7f" for char in value):
        raise typer.BadParameter(f"{value!r} holds a control character")
    if not NAME_RE.fullmatch(value):
        # A repository name is a URL path segment of the index and part of a deployment's name.
        raise typer.BadParameter(
            f"{value!r} must start with a letter or digit and use only letters, digits, '.', '_' and '-'"
        )
    return value


Name = Annotated[str, typer.Option("--name", help="Name of the object.", callback=_check_name)]
JsonList = Annotated[str | None, typer.Option(help="A JSON list.")]
JsonLabels = Annotated[
    str | None,
    typer.Option(help=f"Labels, a JSON object of strings, e.g. '{_LABELS_EXAMPLE}' (replaces them all)."),
]


def bool_text(option: str, help: str) -> Any:
    """A boolean option in pulp-cli's spelling, ``--x true|false|yes|no|1|0`` (read by ``bool_option``,
    whose error names the field and the value), or a bare ``--x`` for true (``with_bare_flags``):
    ``Annotated[str | None, bool_text("--x", "...")]``. The ``--no-x`` form is a flag of its own.
    """
    return typer.Option(option, metavar="[BOOL]", help=help)


#: The ``bool_text`` options of ``remote create|update``.
BARE_FLAGS = frozenset(
    ("--prereleases", "--tls-validation", "--skip-yanked", "--keep-quarantined", "--include-dependencies")
)


def with_bare_flags(args: list[str]) -> list[str]:
    """``args`` with ``true`` after each bare ``bool_text`` option of ``remote create|update`` (one
    followed by another option, or last), so that ``--include-dependencies`` reads as it did when
    it was a flag. Typer's parser has no option with an optional value.

    >>> with_bare_flags(["remote", "update", "--name", "up", "--skip-yanked", "--keep-quarantined"])
    ['remote', 'update', '--name', 'up', '--skip-yanked', 'true', '--keep-quarantined', 'true']
    >>> with_bare_flags(["remote", "create", "--skip-yanked", "no", "--prereleases=0"])
    ['remote', 'create', '--skip-yanked', 'no', '--prereleases=0']
    """
    options = [i for i, arg in enumerate(args) if not arg.startswith("-")][:2]
    if [args[i] for i in options] not in (["remote", "create"], ["remote", "update"]):
        return args
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if i > options[1] and arg in BARE_FLAGS and (i + 1 == len(args) or args[i + 1].startswith("--")):
            out.append("true")
    return out
