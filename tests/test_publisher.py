"""The publisher against a real Redis: adaptive coalescing of text, one publish.lua call for the
writes that are ready together, and fencing that stays per job inside a shared call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.constants import events_key, job_key
from relayq.schemas.events import Done, Text, ToolCall
from relayq.workers.publisher import Fenced, Publisher, WriteBatcher
from relayq.workers.scripts import WorkerScripts


@pytest.fixture
async def redis(idle_redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(idle_redis_url)
    yield client
    await client.aclose()


async def running_job(redis: Redis, attempt: int = 1) -> str:
    job_id = f"job_{uuid.uuid4().hex}"
    await redis.hset(job_key(job_id), mapping={"attempt": str(attempt), "status": "running"})
    return job_id


def publisher(redis: Redis, job_id: str, **options: float) -> Publisher:
    return Publisher(
        redis, WorkerScripts(redis), job_id=job_id, attempt=1, maxlen=1000, ttl_s=60, **options
    )


async def entries(redis: Redis, job_id: str) -> list[dict[str, object]]:
    raw = await redis.xrange(events_key(job_id))
    return [json.loads(fields[b"event"]) for _, fields in raw]


async def script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_the_first_delta_goes_out_alone_and_a_fast_stream_is_written_in_few_entries(
    redis: Redis,
) -> None:
    job_id = await running_job(redis)
    pub = publisher(redis, job_id)
    words = [f"w{i} " for i in range(200)]
    for word in words:
        pub.emit(Text(job_id=job_id, attempt=1, text=word))
        await asyncio.sleep(0.001)  # the model's pace: 1,000 deltas a second
    await pub.finish(Done(job_id=job_id, attempt=1))
    await pub.aclose()

    events = await entries(redis, job_id)
    texts = [e["text"] for e in events if e["type"] == "text"]
    assert texts[0] == words[0]
    assert "".join(texts) == "".join(words)
    assert len(texts) < len(words) / 4
    assert [e["type"] for e in events][-1] == "done"


async def test_a_slow_stream_is_written_delta_by_delta(redis: Redis) -> None:
    job_id = await running_job(redis)
    pub = publisher(redis, job_id, hold_s=0.025)
    for i in range(6):
        pub.emit(Text(job_id=job_id, attempt=1, text=f"{i} "))
        await asyncio.sleep(0.08)  # slower than the hold: waiting would gain nothing
    await pub.flush()
    await pub.aclose()

    texts = [e["text"] for e in await entries(redis, job_id)]
    assert texts == [f"{i} " for i in range(6)]


async def test_held_text_goes_out_before_any_other_event_and_on_flush(redis: Redis) -> None:
    job_id = await running_job(redis)
    pub = publisher(redis, job_id, hold_s=60.0)  # nothing would be written by the clock
    for text in ("a", "b", "c"):
        pub.emit(Text(job_id=job_id, attempt=1, text=text))
        await asyncio.sleep(0.005)
    call = ToolCall(job_id=job_id, attempt=1, call_id="t1", name="lookup", arguments="{}")
    pub.emit(call)
    pub.emit(Text(job_id=job_id, attempt=1, text="d"))
    pub.emit(Text(job_id=job_id, attempt=1, text="e"))
    await asyncio.wait_for(pub.flush(), timeout=5)
    await pub.aclose()

    events = await entries(redis, job_id)
    assert "".join(str(e.get("text", "|")) for e in events) == "abc|de"
    assert [e["type"] for e in events].index("tool_call") > 0


async def test_writes_ready_together_share_one_script_call(redis: Redis) -> None:
    jobs = [await running_job(redis) for _ in range(5)]
    pubs = [publisher(redis, j) for j in jobs]
    before = await script_calls(redis)

    for job_id, pub in zip(jobs, pubs, strict=True):
        pub.emit(Done(job_id=job_id, attempt=1))
    await asyncio.gather(*(pub.flush() for pub in pubs))
    for pub in pubs:
        await pub.aclose()

    assert await script_calls(redis) - before == 1
    for job_id in jobs:
        assert [e["type"] for e in await entries(redis, job_id)] == ["done"]
        assert await redis.hget(job_key(job_id), "status") == b"done"
        assert 0 < await redis.ttl(events_key(job_id)) <= 60


async def test_a_fenced_job_in_a_shared_call_leaves_the_others_written(redis: Redis) -> None:
    lost, kept = await running_job(redis, attempt=2), await running_job(redis)
    stale, live = publisher(redis, lost), publisher(redis, kept)

    stale.emit(Done(job_id=lost, attempt=1))
    live.emit(Done(job_id=kept, attempt=1))
    results = await asyncio.gather(stale.flush(), live.flush(), return_exceptions=True)
    await stale.aclose()
    await live.aclose()

    assert isinstance(results[0], Fenced) and results[1] is None
    assert await entries(redis, lost) == []
    assert [e["type"] for e in await entries(redis, kept)] == ["done"]


async def test_a_write_redis_refuses_fails_its_own_attempt_only(redis: Redis) -> None:
    broken, fine = await running_job(redis), await running_job(redis)
    await redis.set(events_key(broken), "not a stream")
    pubs = {broken: publisher(redis, broken), fine: publisher(redis, fine)}

    for job_id, pub in pubs.items():
        pub.emit(Done(job_id=job_id, attempt=1))
    results = await asyncio.gather(*(p.flush() for p in pubs.values()), return_exceptions=True)
    for pub in pubs.values():
        await pub.aclose()

    assert isinstance(results[0], ResponseError) and "WRONGTYPE" in str(results[0])
    assert results[1] is None
    assert [e["type"] for e in await entries(redis, fine)] == ["done"]


def test_publishers_of_one_client_share_one_batcher(redis: Redis) -> None:
    scripts = WorkerScripts(redis)
    assert WriteBatcher.of(redis, scripts) is WriteBatcher.of(redis, scripts)


async def test_a_publish_does_not_wait_for_the_connections_the_clients_other_commands_hold(
    idle_redis_url: str,
) -> None:
    from relayq.connection import connect

    client = connect(idle_redis_url, max_connections=2)  # waits for a free connection when full
    try:
        job_id = await running_job(client)
        pub = publisher(client, job_id)
        pub.emit(Text(job_id=job_id, attempt=1, text="first "))
        await pub.flush()  # the batcher took its own connection
        # blocking reads take every other connection the pool may open
        blocked = [
            asyncio.create_task(client.blpop([f"nothing:{job_id}"], timeout=30)) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        pub.emit(Text(job_id=job_id, attempt=1, text="second"))
        await pub.finish(Done(job_id=job_id, attempt=1))
        assert not any(task.done() for task in blocked)
        await pub.aclose()
        for task in blocked:
            task.cancel()
        texts = [e["text"] for e in await entries(client, job_id) if e["type"] == "text"]
        assert "".join(texts) == "first second"
    finally:
        await WriteBatcher.close(client)
        await client.aclose()


async def test_a_server_that_says_in_a_reply_it_is_a_replica_loses_the_connection(
    redis_server: EmbeddedRedis,
) -> None:
    """publish.lua reports each job's failure inside its reply, where redis-py cannot see a
    READONLY: the batcher drops its connection itself, so that the next call dials again
    (behind Sentinel, to the primary the sentinels name) instead of meeting the replica."""
    with EmbeddedRedis() as server:
        redis: Redis = Redis.from_url(server.url)
        job_id = await running_job(redis)
        pub = publisher(redis, job_id)
        await pub.finish(Text(job_id=job_id, attempt=1, text="written while a primary"))
        batcher_connection = {c["id"] for c in await redis.client_list()} - {
            str(await redis.client_id())
        }
        assert len(batcher_connection) == 1

        await redis.replicaof("127.0.0.1", redis_server.port)
        with pytest.raises(RedisConnectionError, match="READONLY"):
            await pub.finish(Text(job_id=job_id, attempt=1, text="refused by a replica"))
        remaining = {c["id"] for c in await redis.client_list()}
        assert not batcher_connection & remaining
        await redis.replicaof("NO", "ONE")
        await pub.aclose()
        await WriteBatcher.close(redis)
        await redis.aclose()
