"""Redis clients that ride out a restart or a dropped connection instead of failing the caller."""

from __future__ import annotations

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=10)


def resilient_redis(url: str) -> Redis:
    client: Redis = Redis.from_url(
        url,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_keepalive=True,
        health_check_interval=15,
    )
    return client


def arq_redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.retry = _retry()
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError]
    settings.conn_retries = 30
    return settings
