"""One settings object for every process, read from `MLPATTERNS_*` environment variables.

Credentials only ever come from the environment (in a cluster, from a Secret mounted
as environment variables); they are held as `SecretStr` so they never reach a log
or a `repr`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Platform settings; every field is `MLPATTERNS_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MLPATTERNS_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".mlpatterns"),
        description="Embedded state folder: local registry, queues, logs, process state.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of every mlpatterns process."
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="S3/MinIO endpoint as host:port; when set, the registry uses object storage.",
    )
    s3_bucket: str = Field(default="mlpatterns", description="Bucket for artifacts and logs.")
    s3_secure: bool = Field(default=True, description="Use TLS to reach the S3 endpoint.")
    s3_region: str | None = Field(default=None, description="S3 region, when the server needs one.")
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    kfp_endpoint: str | None = Field(
        default=None, description="Kubeflow Pipelines API endpoint for `pipeline submit|schedule`."
    )
    kfp_token: SecretStr | None = Field(default=None, description="Bearer token for the KFP API.")
    redis_url: str | None = Field(
        default=None,
        description="Redis URL for the asynchronous queue; SQLite under `home` when unset.",
    )

    @property
    def uses_object_storage(self) -> bool:
        return self.s3_endpoint is not None

    def describe(self) -> dict[str, Any]:
        """The settings as plain values for display, with secrets masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            shown[f"MLPATTERNS_{name.upper()}"] = value
        return shown


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; keyword overrides win (for tests and the CLI)."""
    return Settings(**overrides)
