"""relayq.connection: one retry layer that rides out a Redis restart, for every client."""

from __future__ import annotations

import asyncio
import time

from relayq.connection import RETRY_BUDGET_S, connect
from relayq.embedded_redis import EmbeddedRedis


async def test_a_command_sent_while_redis_is_down_runs_once_it_is_back() -> None:
    with EmbeddedRedis(appendonly=False) as server:
        redis = connect(server.url)
        await redis.set("before", "1")
        await asyncio.to_thread(server.kill)

        async def restart_soon() -> None:
            await asyncio.sleep(1.5)  # the outage itself: no event marks "down long enough"
            await asyncio.to_thread(server.start)

        restarting = asyncio.create_task(restart_soon())
        started = time.monotonic()
        assert await redis.set("during", "2")  # refused dials are retried, not raised
        waited = time.monotonic() - started
        await restarting
        assert await redis.get("during") == b"2"
        assert 1.0 < waited < RETRY_BUDGET_S
        await redis.aclose()


async def test_a_blocking_read_resumes_across_a_restart() -> None:
    with EmbeddedRedis(appendonly=False) as server:
        redis = connect(server.url)
        await redis.xadd("s", {"n": "1"})
        reading = asyncio.create_task(redis.xread({"s": "$"}, block=10_000))
        await asyncio.sleep(0.2)  # let the XREAD block before the server dies
        await asyncio.to_thread(server.restart)
        writer = connect(server.url)
        while not reading.done():
            await writer.xadd("s", {"n": "2"})
            await asyncio.sleep(0.05)
        reply = await reading
        assert reply and reply[0][1][0][1] == {b"n": b"2"}
        await redis.aclose()
        await writer.aclose()
