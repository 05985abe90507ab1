"""The remote's fields, validated at the wire (CLI options, flow parameters) with pydantic.

Filter fields are checked by ``mirrorflow.tasks.filters.FilterSpec.build`` so that a remote that was
accepted always builds a filter. Errors name the field and show the value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from mirrorflow.storage.schema import MAX_INT, SECRET_FIELDS, Policy
from mirrorflow.tasks.advisories import DEFAULT_BLOCK_ADVISORIES, InvalidAdvisory, validate_prefixes
from mirrorflow.tasks.filenames import PACKAGE_TYPES
from mirrorflow.tasks.filters import PLATFORMS, FilterSpec, InvalidFilter
from mirrorflow.tasks.outcome import DEFAULT_MAX_FAILED_PERCENT, FailurePolicy

__all__ = [
    "MAX_INT",
    "MAX_TIMEOUT",
    "RemoteFields",
    "SECRET_FIELDS",
    "describe_validation_error",
    "filter_spec_of",
]


#: Fields beyond Pulp's set (filters, and the failure rule), stored together in the ``extra_filters`` column.
EXTRA_FILTERS = (
    "exclude_newer_than",
    "missing_upload_time",
    "python_versions",
    "skip_yanked",
    "include_dependencies",
    "failure_policy",
    "max_failed_percent",
    "keep_quarantined",
)

#: ``storage.schema.Policy``, drawn inline in the JSON schema (the Prefect form offers the choices).
PolicyChoice = Annotated[Policy, WithJsonSchema({"type": "string", "enum": [p.value for p in Policy]})]

#: The longest timeout a remote may set, in seconds (a day): more is a typo, not a timeout.
MAX_TIMEOUT = 86400.0


class RemoteFields(BaseModel):
    """Every field of a remote. On update, only the fields given are applied (``exclude_unset``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    url: str = Field(
        title="URL",
        description="The upstream index: its root (https://index.example/), its simple root (.../simple/) "
        "or devpi's .../+simple/.",
    )
    includes: list[str] = Field(default_factory=list, description="PEP 508 requirements to sync.")
    excludes: list[str] = Field(default_factory=list, description="PEP 508 requirements to leave out.")
    prereleases: bool = Field(default=True, description="Sync pre- and dev releases.")
    # The item enums reach the JSON schema (the Prefect UI offers the choices, and the server refuses
    # another value before a run exists); the filter's own check keeps its one-line message.
    package_types: list[str] = Field(
        default_factory=list,
        description=f"Any of {', '.join(PACKAGE_TYPES)}.",
        json_schema_extra={"items": {"type": "string", "enum": list(PACKAGE_TYPES)}, "uniqueItems": True},
    )
    exclude_platforms: list[str] = Field(
        default_factory=list,
        description=f"Any of {', '.join(PLATFORMS)}.",
        json_schema_extra={"items": {"type": "string", "enum": list(PLATFORMS)}, "uniqueItems": True},
    )
    keep_latest_packages: int = Field(
        default=0, ge=0, le=MAX_INT, description="Newest versions kept per project; 0: all."
    )
    exclude_newer_than: str | None = Field(
        default=None, description="Minimum upload age, e.g. '7d': newer files wait for a later sync."
    )
    missing_upload_time: Literal["take", "skip"] = Field(
        default="take", description="With exclude_newer_than: what to do with files without upload time."
    )
    python_versions: list[str] = Field(default_factory=list, description="Keep files installable on these.")
    skip_yanked: bool = Field(default=False, description="Leave out files the upstream yanked.")
    block_advisories: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCK_ADVISORIES),
        description="Advisory id prefixes (e.g. MAL, PYSEC, a whole id): versions that an imported "
        "advisory with such an id names are kept out; [] blocks none (docs/supply-chain.md).",
    )
    include_dependencies: bool = Field(
        default=False,
        description="Also sync the dependencies of what the includes select, transitively, for the "
        "target Python versions and platforms (docs/closure.md).",
    )
    policy: PolicyChoice = Field(default=Policy.ON_DEMAND, description="immediate, on_demand or streamed.")
    failure_policy: FailurePolicy = Field(
        default=FailurePolicy.AUTO,
        description="When some projects fail: partial commits the rest, all_or_nothing makes no version; "
        "auto: partial without includes, all_or_nothing with them.",
    )
    max_failed_percent: float = Field(
        default=DEFAULT_MAX_FAILED_PERCENT,
        ge=0,
        le=100,
        description="Under partial: fail the sync when more than this percent of its projects failed.",
    )
    download_concurrency: int | None = Field(
        default=None, ge=1, le=100, description="Downloads at once, 1 to 100 (default 10)."
    )
    max_retries: int | None = Field(
        default=None, ge=0, le=20, description="Retries of a transient error, 0 to 20 (default 3)."
    )
    total_timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="Seconds for a whole request (default 300)."
    )
    connect_timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="Seconds to get a connection from the pool."
    )
    sock_connect_timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="Seconds to connect to the index."
    )
    sock_read_timeout: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT, description="Seconds to wait for the next bytes of a response."
    )
    headers: list[dict[str, str]] | None = Field(
        default=None, description='Extra request headers, e.g. [{"User-Agent": "mirror"}] (no credentials).'
    )
    rate_limit: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT,
        description="Most requests per second to the index; 0 or empty: no limit.",
    )
    tls_validation: bool = Field(default=True, description="Check the index's TLS certificate.")
    proxy_url: str | None = Field(default=None, description="An http(s) proxy for every request.")
    ca_cert: str | None = Field(default=None, description="PEM certificates to trust for the index.")
    client_cert: str | None = Field(default=None, description="A PEM client certificate to present.")
    client_key: str | None = None
    username: str | None = None
    password: str | None = None
    proxy_username: str | None = None
    proxy_password: str | None = None
    keep_quarantined: bool = Field(
        default=False,
        description="Keep the files of projects the upstream quarantined (PEP 792); by default a sync "
        "removes them, in additive mode too.",
    )

    @field_validator("url", "proxy_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value != value.strip():
            raise ValueError(f"{value!r} has spaces around it")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        try:
            parts.port  # noqa: B018 - urllib checks the port only when it is read
        except ValueError:
            raise ValueError(f"{value!r} has a port outside 0 to 65535") from None
        if (info.context or {}).get("stored"):
            return value  # a remote stored before the checks below still loads (and syncs as before)
        if any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError(f"{value!r} holds a space or a control character (write a space as %20)")
        # Credentials in a URL would be printed, logged by the sync and stored in the clear, where the
        # secret fields are stored encrypted and never shown.
        if parts.username is not None or parts.password is not None:
            field = "proxy_" if info.field_name == "proxy_url" else ""
            shown = value.replace(parts.netloc, f"<hidden>@{parts.netloc.rpartition('@')[2]}", 1)
            raise ValueError(
                f"{shown!r} holds credentials: give them as {field}username and {field}password "
                f"(--{field.replace('_', '-')}username, --{field.replace('_', '-')}password), stored encrypted"
            )
        return value

    @field_validator("includes", "excludes")
    @classmethod
    def _given_once(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Refuse a requirement given twice (``'["django", "django"]'``), likely a slip; a remote
        stored before this check still loads, and an update that leaves the field alone keeps it."""
        context = info.context or {}
        if context.get("stored") or info.field_name not in context.get("given", (info.field_name,)):
            return value
        seen: dict[Requirement, str] = {}
        for text in value:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue  # the filters' own check names it (filter_spec_of)
            if requirement in seen:
                before = seen[requirement]
                raise ValueError(f"{text!r} is given twice" + ("" if before == text else f" (as {before!r})"))
            seen[requirement] = text
        return value

    @field_validator("block_advisories")
    @classmethod
    def _advisory_prefixes(cls, value: list[str]) -> list[str]:
        try:
            return list(validate_prefixes(value))
        except InvalidAdvisory as exc:
            raise ValueError(f"{exc.value!r} {exc.reason}") from None

    @field_validator("ca_cert", "client_cert")
    @classmethod
    def _pem_certificates(cls, value: str | None) -> str | None:
        """Refuse what TLS would refuse at sync time (``--ca-cert 'not pem'``), now and in one line."""
        if value is None:
            return None
        import ssl

        try:
            ssl.create_default_context(cadata=value)
        except (ssl.SSLError, ValueError):
            raise ValueError(
                f"{value[:40]!r} is not PEM certificates (-----BEGIN CERTIFICATE-----)"
            ) from None
        return value

    @field_validator("client_key")
    @classmethod
    def _pem_key(cls, value: str | None) -> str | None:
        if value is not None and not ("-----BEGIN" in value and "PRIVATE KEY-----" in value):
            raise ValueError(
                "is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)"
            )  # a secret: not shown
        return value

    @model_validator(mode="after")
    def _filters_build(self) -> RemoteFields:
        try:
            filter_spec_of(self.model_dump())
        except InvalidFilter as exc:
            field = "exclude_newer_than" if exc.field == "min_upload_age" else exc.field
            raise ValueError(f"{field}: {exc.value!r} {exc.reason}") from None
        return self

    def to_columns(self, *, only_set: bool = False) -> dict[str, Any]:
        """Return the catalog columns for these fields (extra filters folded into one)."""
        data = self.model_dump(exclude_unset=only_set)
        extras = {key: data.pop(key) for key in EXTRA_FILTERS if key in data}
        if extras or not only_set:
            data["extra_filters"] = extras
        return data

    @classmethod
    def from_row(cls, row: Any) -> RemoteFields:
        data = {name: getattr(row, name) for name in cls.model_fields if name not in EXTRA_FILTERS}
        data.update(row.extra_filters or {})
        return cls.model_validate(data, context={"stored": True})


def filter_spec_of(fields: dict[str, Any]) -> FilterSpec:
    """Build the pure filter spec from a remote's fields (raises ``InvalidFilter``)."""
    return FilterSpec.build(
        includes=fields.get("includes") or (),
        excludes=fields.get("excludes") or (),
        prereleases=fields.get("prereleases", True),
        package_types=fields.get("package_types") or (),
        exclude_platforms=fields.get("exclude_platforms") or (),
        keep_latest_packages=fields.get("keep_latest_packages") or 0,
        min_upload_age=fields.get("exclude_newer_than"),
        missing_upload_time=fields.get("missing_upload_time") or "take",
        python_versions=fields.get("python_versions") or (),
        skip_yanked=fields.get("skip_yanked", False),
        keep_quarantined=fields.get("keep_quarantined", False),
    )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message (got value)``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        shown = "" if error["type"] in ("value_error", "missing") else f" (got {error.get('input')!r})"
        # A model-level check names its field itself ("includes: 'x' is not ..."): no prefix then.
        lines.append(f"{field}: {message}{shown}" if field else f"{message}{shown}")
    return "; ".join(lines)
