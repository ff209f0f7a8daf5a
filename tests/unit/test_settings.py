from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlpatterns.settings import load_settings

pytestmark = pytest.mark.unit


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLPATTERNS_HOME", "MLPATTERNS_S3_ENDPOINT", "MLPATTERNS_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.home == Path(".mlpatterns")
    assert not settings.uses_object_storage
    assert settings.redis_url is None


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLPATTERNS_HOME", str(tmp_path))
    monkeypatch.setenv("MLPATTERNS_S3_ENDPOINT", "127.0.0.1:9000")
    monkeypatch.setenv("MLPATTERNS_S3_SECURE", "false")
    settings = load_settings()
    assert settings.home == tmp_path
    assert settings.uses_object_storage
    assert settings.s3_secure is False


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPATTERNS_S3_ACCESS_KEY", "AKIA-visible-key")
    monkeypatch.setenv("MLPATTERNS_S3_SECRET_KEY", "very-secret-value")
    settings = load_settings()
    shown = f"{settings!r} {settings} {settings.describe()}"
    assert "very-secret-value" not in shown
    assert "AKIA-visible-key" not in shown
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == "very-secret-value"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPATTERNS_LOG_LEVEL", "LOUD")
    with pytest.raises(ValidationError, match="log_level"):
        load_settings()
