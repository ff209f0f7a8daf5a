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

from mlpatterns.web import WebLimits

__all__ = ["Settings", "load_settings", "masked_url", "web_limits"]


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

    redis_password: SecretStr | None = Field(
        default=None,
        description="Redis password; joins MLPATTERNS_REDIS_URL (keep it out of the URL).",
    )
    gateway_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that lets a non-loopback client call the gateway's /-/reload.",
    )
    dataplane: Path | None = Field(
        default=None,
        description="The compiled data plane's binary (`mlpatterns-dataplane`) for "
        "`serve gateway --data-plane compiled`; unset: found on PATH.",
    )
    http_max_header_bytes: int = Field(
        default=16 << 10, ge=1024, description="Request line and headers, in bytes (431 beyond)."
    )
    http_max_headers: int = Field(
        default=100, ge=8, description="Headers per request (431 beyond)."
    )
    http_header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a request's headers (408)."
    )
    http_body_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a client has to send a request's body (408)."
    )
    http_idle_timeout: float = Field(
        default=5.0, gt=0, description="Seconds an idle connection stays open."
    )
    http_max_connections: int = Field(
        default=1024, ge=1, description="Connections per server process; beyond, 503 at once."
    )
    http_drain_seconds: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="After a SIGTERM, seconds a server goes on answering, each answer closing "
        "its connection, so that clients move to the servers that stay (pods set 5).",
    )
    async_max_queue: int = Field(
        default=10_000,
        ge=1,
        description="Jobs waiting in the asynchronous queue; beyond, submit answers 429.",
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
            elif name == "redis_url" and value:
                value = masked_url(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[f"MLPATTERNS_{name.upper()}"] = value
        return shown


def masked_url(url: str) -> str:
    """A URL fit for a log: any password in it replaced by stars."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:********@{host}"


def web_limits(settings: Settings, max_body_bytes: int) -> WebLimits:
    """The HTTP limits of a server: the body limit its command sets, the rest from here."""
    return WebLimits(
        max_body_bytes=max_body_bytes,
        max_header_bytes=settings.http_max_header_bytes,
        max_headers=settings.http_max_headers,
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        idle_timeout=settings.http_idle_timeout,
        max_connections=settings.http_max_connections,
        drain_seconds=settings.http_drain_seconds,
    )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; keyword overrides win (for tests and the CLI)."""
    return Settings(**overrides)
