"""The Redis a command talks to: RELAYQ_REDIS_URL, or the embedded redis-server under
RELAYQ_DATA_DIR when it is unset. Before any work, one PING without retries, so that a Redis
that is not there is reported at once, in one line, instead of after the client's retries."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relayq.cli.errors import CliError, UsageError, one_line
from relayq.client import Client
from relayq.connection import connect
from relayq.embedded_redis import RedisServerNotFound, shared_redis_url
from relayq.schemas.settings import Settings

PING_TIMEOUT_S = 3.0


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    try:
        url, started = shared_redis_url(settings.data_dir)
    except RedisServerNotFound as e:
        raise UsageError(str(e)) from e
    verb = "started" if started else "using"
    print(
        f"relayq: RELAYQ_REDIS_URL is not set; {verb} the embedded Redis at {url} "
        f"(data in {settings.data_dir.resolve()}, stop it with `relayq redis-stop`)",
        file=sys.stderr,
    )
    return url


async def check_reachable(url: str) -> None:
    """Raises CliError naming the fix when `url` does not answer a PING within a few seconds."""
    shown = redacted(url)
    try:
        probe = connect(
            url,
            retries=False,
            socket_connect_timeout=PING_TIMEOUT_S,
            socket_timeout=PING_TIMEOUT_S,
        )
    except ValueError as e:
        raise UsageError(
            f"RELAYQ_REDIS_URL {shown!r} is not a Redis URL ({e}); "
            "e.g. redis://localhost:6379/0 or rediss://user:password@host:6380/0"
        ) from e
    try:
        await probe.ping()
    except AuthenticationError as e:
        raise UsageError(
            f"Redis at {shown} refused the credentials ({one_line(str(e))}); "
            "put the right user and password in RELAYQ_REDIS_URL"
        ) from e
    except ResponseError as e:
        raise UsageError(f"Redis at {shown} refused the connection: {one_line(str(e))}") from e
    except (RedisError, OSError) as e:
        raise CliError(
            f"cannot reach Redis at {shown} ({_why(e)}): start it (`redis-server`), or point "
            "RELAYQ_REDIS_URL at a running Redis (unset, the CLI starts an embedded one)"
        ) from e
    finally:
        await probe.aclose()


@asynccontextmanager
async def open_client(settings: Settings | None = None) -> AsyncIterator[Client]:
    settings = settings or Settings()
    url = redis_url(settings)
    await check_reachable(url)
    async with Client(url, settings=settings) as client:
        yield client


def redacted(url: str) -> str:
    """The URL without its password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _why(error: BaseException) -> str:
    text = one_line(str(error)).lower()
    if isinstance(error, RedisTimeoutError) or "timeout" in text or "timed out" in text:
        return f"no answer within {PING_TIMEOUT_S:g} s"
    if "refused" in text or "111" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return one_line(str(error))
