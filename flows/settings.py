"""Settings, read once from the environment (``MIRRORFLOW_*``) at the entry point.

Every setting is documented in the README. Nothing below ``flows`` reads the environment:
the values travel as constructor arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mirrorflow.flows.locations import default_home

__all__ = ["Settings", "default_home"]


class Settings(BaseSettings):
    """mirrorflow's settings. Embedded defaults: SQLite catalog and directory store in ``home``."""

    model_config = SettingsConfigDict(env_prefix="MIRRORFLOW_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Where embedded state lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the catalog, e.g. postgresql+psycopg://user@host/db. "
        "Default: sqlite:///<home>/catalog.db.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="host:port of an S3 endpoint (MinIO); when unset, artifacts go to <home>/artifacts.",
    )
    s3_bucket: str = Field(default="mirrorflow", description="Bucket for artifacts (created if missing).")
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_secure: bool = Field(default=True, description="Use https to reach the S3 endpoint.")
    s3_region: str | None = None
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    task_workers: int = Field(default=4, ge=1, le=64, description="Threads of the flow's task runner.")
    batch_size: int = Field(default=200, ge=1, le=100_000, description="Projects per mapped sync task.")
    max_page_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, le=2**31, description="Largest project page accepted."
    )
    sync_lock_lease: float = Field(
        default=120.0,
        ge=10,
        le=86400,
        description="Seconds a sync's repository lock lasts unless renewed (every third of it); "
        "after a crash, the next sync of the repository may start once it expired.",
    )
    max_file_bytes: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="Largest distribution file accepted."
    )
    retry_backoff: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="Seconds before retrying a request whose connection was lost (a reset stream, a "
        "connection closed mid-answer, a timeout), doubled at each further try, with jitter; 60 s in "
        "all at most. Retries after a 429 or 5xx wait less, or what Retry-After asks.",
    )
    serve_state_interval: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="Seconds 'mirrorflow serve' trusts the repositories' state it read (which version is "
        "the latest): a commit shows within this long, and no request queries the catalog for it. "
        "0: read it on every request.",
    )
    prefect_server: Literal["local", "temporary"] = Field(
        default="local",
        description="Without PREFECT_API_URL, where an ad hoc sync runs: 'local', a Prefect server under "
        "<home>/prefect and a warm sync process beside it, both started in the background on first need "
        "and reused ('mirrorflow server start|stop|status'); or 'temporary', in the CLI's own process on "
        "Prefect's temporary server, started and stopped by each sync (no background process).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key sealing remote secrets in the catalog. Unset: a key is made once and kept "
        "in <home>/secret.key (embedded default only; production sets it).",
    )

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def secret_key_file(self) -> Path:
        return self.home / "secret.key"
