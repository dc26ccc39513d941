"""Configuration: one pydantic-settings model, read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from relayq.schemas.jobs import MAX_JOB_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAYQ_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis to use. Unset: the CLI starts an embedded redis-server.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL")
    )
    stream_ttl_s: int = Field(
        default=3600, ge=1, description="Seconds a job's keys live after its terminal event."
    )
    stream_maxlen: int = Field(
        default=100_000, ge=100, description="Approximate cap on entries per job stream."
    )
    max_jobs: int = Field(default=200, ge=1, description="Concurrent jobs per worker process.")
    job_timeout_s: float = Field(
        default=3600.0,
        ge=5.0,
        description="Longest attempt: ended with an `error` event (arq's own timeout, a little "
        "later, is only a backstop); job deadlines usually end jobs first.",
    )
    lease_s: float = Field(
        default=10.0,
        ge=1.0,
        description="In-progress lease of a running job, renewed by the worker's heartbeat; "
        "a dead worker's jobs run again this long after it died.",
    )
    shutdown_grace_s: float = Field(
        default=20.0, ge=0, description="On SIGTERM, how long running jobs may take to finish."
    )
    max_attempts: int = Field(
        default=25,
        ge=1,
        description="Attempts of one job, whatever their cause (API retries, lost workers).",
    )
    browser_pool_size: int = Field(
        default=2, ge=0, le=64, description="Browser contexts a computer worker keeps warm."
    )
    computer_max_jobs: int = Field(
        default=4, ge=1, description="Concurrent computer-use jobs per worker process."
    )
    api_keys: SecretStr | None = Field(
        default=None, description="Gateway API keys: tenant:key,tenant2:key2."
    )
    gateway_allow_private_network: bool = Field(
        default=False,
        description="Accept computer-use jobs with allow_private_network through the gateway "
        "(the browser may then reach loopback and private addresses of the workers' network).",
    )
    gateway_heartbeat_s: float = Field(default=15.0, gt=0, description="SSE keep-alive period.")
    gateway_readers: int = Field(
        default=1, ge=1, le=64, description="Redis connections (XREAD tasks) for SSE fan-out."
    )
    gateway_pool_size: int = Field(
        default=32, ge=2, le=1024, description="Gateway Redis connections for all but XREAD."
    )
    gateway_max_body_bytes: int = Field(
        default=MAX_JOB_BYTES + 65_536, ge=1024, description="Largest request body accepted."
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Cost table additions, USD per MTok: {"prefix": {"input": .., "output": .., '
        '"cache_write": .., "cache_read": ..}}.',
    )
    data_dir: Path = Field(
        default=Path(".relayq"), description="Where the embedded Redis keeps its files."
    )
    log_level: str = "INFO"
