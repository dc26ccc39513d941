"""What the client raises: every error is a RelayqError, translated where it entered, with the
original as its cause."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from relayq import (
    ChatJob,
    Client,
    InvalidJob,
    JobNotFound,
    NotConfigured,
    RedisUnavailable,
    RelayqError,
    ScreenshotGone,
)
from relayq.embedded_redis import free_port
from relayq.schemas.settings import Settings


def test_a_client_without_a_redis_url_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RELAYQ_REDIS_URL", raising=False)
    with pytest.raises(NotConfigured, match="RELAYQ_REDIS_URL") as raised:
        Client(settings=Settings())
    assert isinstance(raised.value, RelayqError | ValueError)


def test_a_redis_url_that_does_not_parse_is_not_configured() -> None:
    with pytest.raises(NotConfigured, match="not-a-url"):
        Client("not-a-url")


async def test_unreachable_redis_is_redis_unavailable_with_the_redis_error_as_cause() -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", retry=Retry(NoBackoff(), 0))
    async with Client(redis=dead) as client:
        with pytest.raises(RedisUnavailable) as raised:
            await client.submit(ChatJob(prompt="Hello"))
    assert isinstance(raised.value.__cause__, RedisConnectionError)
    assert isinstance(raised.value, ConnectionError)
    await dead.aclose()


async def test_unknown_jobs_and_gone_screenshots_are_lookup_errors(idle_client: Client) -> None:
    with pytest.raises(JobNotFound):
        await idle_client.status("job_never_submitted")
    with pytest.raises(JobNotFound):
        async for _ in idle_client.events("job_never_submitted"):
            pass
    with pytest.raises(ScreenshotGone):
        await idle_client.screenshot("job_never_submitted", 1)


async def test_an_invalid_chat_job_is_invalid_job(idle_client: Client) -> None:
    with pytest.raises(InvalidJob, match="max_tokens") as raised:
        await idle_client.submit_chat("Hello", max_tokens="many")
    assert isinstance(raised.value, ValueError)
