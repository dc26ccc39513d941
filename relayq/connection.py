"""Redis connections, and the one layer that retries Redis commands.

Every Redis client of relayq (producer, worker, gateway) comes from `connect()`: redis-py's own
`Retry`, with equal-jitter exponential backoff, re-runs a command whose connection dropped or
timed out, and re-dials a server that refuses connections (an OSError, which redis-py alone
would not retry), for 16 to 31 s in all. Above that layer nobody loops: code either lets the
error through (translated where it enters, e.g. `relayq.errors.RedisUnavailable`) or, in the
worker, treats it as the end of the attempt.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
RETRIES = 20
RETRY_BUDGET_S = sum(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**i) for i in range(RETRIES))
"""The longest a command waits out an outage (31 s; equal jitter waits at least half of each
step) before its caller sees the error."""


def retry_policy() -> Retry:
    return Retry(
        EqualJitterBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S),
        retries=RETRIES,
        # a refused or reset dial surfaces from Connection._connect as a bare OSError; redis-py
        # annotates RedisError subclasses only, but Retry catches whatever tuple it is given
        supported_errors=(*REDIS_ERRORS, OSError),  # type: ignore[arg-type]
    )


def connect(url: str, *, max_connections: int | None = None, **options: Any) -> Redis:
    """A client for `url` that rides out a restart or a dropped connection.

    With `max_connections`, the pool is bounded and a caller waits (up to 10 s) for a free
    connection instead of opening another one.
    """
    resilience: dict[str, Any] = {
        "retry": retry_policy(),
        "retry_on_error": list(REDIS_ERRORS),
        "socket_keepalive": True,
        "health_check_interval": 15,
    }
    if max_connections is not None:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, **resilience, **options
        )
        return Redis(connection_pool=pool)
    client: Redis = Redis.from_url(url, **resilience, **options)
    return client
