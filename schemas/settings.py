"""Configuration: one model, read from the environment.

Every field `name` comes from `RELAYQ_<NAME>` (the Anthropic ones from the SDK's own
`ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`); keyword arguments win over the environment.
Values are validated like any input; dict fields are JSON.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .jobs import MAX_JOB_BYTES

ENV_PREFIX = "RELAYQ_"
ENV_NAMES = {"anthropic_api_key": "ANTHROPIC_API_KEY", "anthropic_base_url": "ANTHROPIC_BASE_URL"}


def env_name(field: str) -> str:
    return ENV_NAMES.get(field, ENV_PREFIX + field.upper())


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _environment_fills_the_gaps(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        from_env: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = os.environ.get(env_name(name))
            if name in data or raw is None:
                continue
            is_json = typing.get_origin(field.annotation) in (dict, list)
            try:
                from_env[name] = json.loads(raw) if is_json else raw
            except json.JSONDecodeError as e:
                raise ValueError(f"{env_name(name)} is not valid JSON: {e}") from e
        return {**from_env, **data}

    redis_url: str | None = Field(
        default=None,
        description="Redis to use. Unset: the CLI starts an embedded redis-server.",
    )
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    stream_ttl_s: int = Field(
        default=3600, ge=1, description="Seconds a job's keys live after its terminal event."
    )
    stream_maxlen: int = Field(
        default=100_000, ge=100, description="Approximate cap on entries per job stream."
    )
    max_jobs: int = Field(default=200, ge=1, description="Concurrent jobs per worker process.")
    worker_processes: int = Field(
        default=0,
        ge=0,
        description="Worker processes `relayq worker` runs under a supervisor; 0: one per core.",
    )
    job_timeout_s: float = Field(
        default=3600.0,
        ge=5.0,
        description="Longest attempt: ended with an `error` event; job deadlines usually end "
        "jobs first.",
    )
    lease_s: float = Field(
        default=10.0,
        ge=1.0,
        description="Lease of a running job, renewed by the worker's heartbeat; a dead "
        "worker's jobs run again this long after it died.",
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
    gateway_submit_rate: float = Field(
        default=10.0, ge=0, description="Submits per second a tenant may sustain (0: no limit)."
    )
    gateway_submit_burst: int = Field(
        default=100, ge=1, description="Submits a tenant may make at once above that rate."
    )
    gateway_daily_quota: int = Field(
        default=10_000, ge=0, description="Jobs a tenant may create per UTC day (0: no quota)."
    )
    gateway_local_tenant: str = Field(
        default="local",
        pattern=r"^[A-Za-z0-9_.-]{0,64}$",
        description="The tenant of RELAYQ_API_KEYS that owns the jobs submitted without one "
        "(CLI, Python client), so they show in the dashboard. Empty: no tenant does.",
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
