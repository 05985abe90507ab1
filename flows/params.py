"""The sync flow's typed parameters: what the Prefect UI shows as a form, validated before the run.

``repository`` names the repository; ``remote`` is either a remote's name or an inline remote
(every field of ``RemoteFields``, with its description); ``mirror`` removes what the remote no
longer selects. Prefect validates these types before the flow's code runs (and the server checks
the JSON schema when a run is created); ``validate_sync_parameters`` does the same up front for
the CLI, and its error names the field, e.g. ``remote.exclude_platforms: 'amiga' is not one of ...``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    ValidationError,
    model_validator,
)

from mirrorflow.flows.remote_spec import SECRET_FIELDS, RemoteFields, describe_validation_error
from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.secrets import is_secret_header

__all__ = [
    "RepositoryName",
    "RemoteName",
    "RemoteChoice",
    "OptionalRemote",
    "InlineRemote",
    "SyncParameters",
    "InvalidParameters",
    "validate_sync_parameters",
    "DEFAULT_LOCK_WAIT",
]

#: How long a sync waits for another sync of the same repository before it is refused.
DEFAULT_LOCK_WAIT = 900.0

RepositoryName = Annotated[
    str,
    Field(min_length=1, max_length=255, description="The repository to sync ('mirrorflow repository list')."),
]
RemoteName = Annotated[
    str,
    Field(min_length=1, max_length=255, description="A remote by name ('mirrorflow remote list')."),
]


def _drop_secret_fields(schema: dict[str, Any]) -> None:
    """The UI form of an inline remote offers no credential fields."""
    for field in SECRET_FIELDS:
        schema.get("properties", {}).pop(field, None)


class InlineRemote(RemoteFields):
    """A remote given inline: every field but the credentials.

    Prefect records flow parameters in the clear (database, UI, logs), so secrets must come from a
    named remote, whose secrets the catalog stores encrypted.
    """

    model_config = ConfigDict(
        title="Inline remote", json_schema_extra=lambda schema: _drop_secret_fields(schema)
    )

    @model_validator(mode="after")
    def _no_secrets(self) -> InlineRemote:
        given = [f"{field}: credentials" for field in SECRET_FIELDS if getattr(self, field)]
        secret_headers = [name for entry in self.headers or [] for name in entry if is_secret_header(name)]
        if secret_headers:  # e.g. Authorization: a credential all the same
            given.append(f"headers: {', '.join(map(repr, secret_headers))} carries credentials, which")
        if given:
            raise ValueError(
                f"{given[0]} cannot be given inline (Prefect stores flow parameters in the clear); "
                "create a named remote with 'mirrorflow remote create' and pass its name"
            )
        return self


def _remote_kind(value: Any) -> str:
    return "inline" if isinstance(value, dict | RemoteFields) else "name"


#: A remote's name, or an inline remote: the tag keeps pydantic's errors on the branch that was meant.
RemoteChoice = Annotated[
    Annotated[str, Tag("name"), Field(min_length=1, max_length=255)] | Annotated[InlineRemote, Tag("inline")],
    Discriminator(_remote_kind),
    Field(
        description="Remote to sync from: a remote's name, or an inline remote (url, includes, "
        "filters...). Default: the repository's remote."
    ),
]


#: What the form shows for each choice of ``remote`` (the UI labels a choice by its title).
_CHOICE_TITLES = {
    "string": ("Remote by name", "A remote's name, as 'mirrorflow remote list' shows it, e.g. bar."),
    "object": ("Inline remote", "The remote's fields: url, includes, filters (no credentials)."),
    "null": ("The repository's remote", "The remote the repository was created with."),
}


def _one_choice_each(schema: dict[str, Any]) -> None:
    """Flatten ``anyOf[oneOf[name, inline], null]`` into one titled ``anyOf``: a form of three choices.

    Prefect's form draws one ``anyOf`` as a choice of its titled options; nested unions came out
    as an unlabelled JSON editor holding ``null``.
    """
    choices: list[dict[str, Any]] = []
    for option in schema.pop("anyOf", []):
        choices.extend(option.get("oneOf", [option]))
    for choice in choices:
        kind = "object" if "$ref" in choice else choice.get("type", "")
        title, description = _CHOICE_TITLES.get(kind, (kind, ""))
        choice.setdefault("title", title)
        choice.setdefault("description", description)
    schema["anyOf"] = choices


class _OneChoiceEach:
    """Annotated metadata: ``_one_choice_each`` on the JSON schema pydantic makes (Prefect's own
    ``json_schema_extra`` on each parameter would drop a callable one)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = dict(handler(core_schema))
        _one_choice_each(schema)
        return schema


#: The ``remote`` parameter as the flow and the form take it.
OptionalRemote = Annotated[RemoteChoice | None, _OneChoiceEach()]


class SyncParameters(BaseModel):
    """The parameters of one sync, as the flow receives them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: RepositoryName
    remote: OptionalRemote = None
    mirror: bool = Field(default=False, description="Remove what the remote no longer selects.")
    lock_wait_s: float = Field(
        default=DEFAULT_LOCK_WAIT,
        ge=0,
        le=86400,
        description="Seconds to wait while another sync of this repository runs, then give up.",
    )


class InvalidParameters(MirrorflowError, ValueError):
    """Sync parameters that cannot run; the message names each bad field and shows its value."""

    def __init__(self, problems: str) -> None:
        self.problems = problems
        super().__init__(f"invalid sync parameters: {problems}")


def validate_sync_parameters(**values: Any) -> SyncParameters:
    """Validate ``values`` as the flow would; raise ``InvalidParameters`` naming the fields."""
    try:
        return SyncParameters.model_validate(values)
    except ValidationError as exc:
        raise InvalidParameters(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    # Drop the union's tag ("inline") from the location: the user wrote remote.<field>.
    text = (
        describe_validation_error(exc)
        .replace("remote.inline.", "remote.")
        .replace("remote.inline:", "remote:")
    )
    # A filter's own error starts with its field: "remote: includes: ..." reads "remote.includes: ...".
    text = re.sub(r"\bremote: (\w+): ", r"remote.\1: ", text)
    # One line: packaging's requirement errors add the input and a caret on indented lines.
    return re.sub(r"\n[ \t]+[^\n;]*", "", text)
