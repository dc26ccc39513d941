"""Settings come from the environment (RELAYQ_<NAME>, and the SDK's own ANTHROPIC_* names);
keyword arguments win; values are validated like any input."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from relayq.schemas.settings import Settings, env_name


def test_every_field_reads_its_relayq_variable_and_the_anthropic_ones_the_sdk_names() -> None:
    assert env_name("redis_url") == "RELAYQ_REDIS_URL"
    assert env_name("anthropic_api_key") == "ANTHROPIC_API_KEY"
    assert env_name("anthropic_base_url") == "ANTHROPIC_BASE_URL"


def test_the_environment_fills_what_the_caller_did_not_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYQ_REDIS_URL", "redis://from-env:6379/0")
    monkeypatch.setenv("RELAYQ_LEASE_S", "4.5")
    monkeypatch.setenv("RELAYQ_DATA_DIR", "/tmp/relayq-data")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    monkeypatch.setenv("RELAYQ_PRICES", '{"claude-x": {"input": 1, "output": 2}}')

    settings = Settings(lease_s=7)

    assert settings.redis_url == "redis://from-env:6379/0"
    assert settings.lease_s == 7
    assert settings.data_dir == Path("/tmp/relayq-data")
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-from-env"
    assert settings.prices == {"claude-x": {"input": 1, "output": 2}}


def test_a_bad_value_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYQ_PRICES", "{not json")
    with pytest.raises(ValidationError, match="RELAYQ_PRICES is not valid JSON"):
        Settings()
    monkeypatch.delenv("RELAYQ_PRICES")
    monkeypatch.setenv("RELAYQ_MAX_JOBS", "0")
    with pytest.raises(ValidationError, match="max_jobs"):
        Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().max_jobs = 3  # type: ignore[misc]
