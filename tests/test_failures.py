"""Failure semantics with real worker processes on a Redis of the test's own: crash recovery,
graceful shutdown, fencing, garbage on the queue, a Redis restart."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.constants import CHAT, events_key, job_key, job_slot_keys
from relayq.schemas.events import Done, Error, Event, Retry, Started, Text
from relayq.schemas.jobs import ChatJob
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator, scripted_reply
from relayq.transcript import transcript_of
from tests.conftest import (
    ONE_AT_A_TIME,
    WorkerProcess,
    put_raw_envelope,
    queue_drained,
    start_worker,
    worker_env,
)

pytestmark = ONE_AT_A_TIME

LEASE_S = "3"


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=True) as server:
        yield server


@pytest.fixture
async def own_client(own_redis: EmbeddedRedis) -> AsyncIterator[Client]:
    async with Client(own_redis.url, settings=Settings(redis_url=own_redis.url)) as c:
        yield c


@pytest.fixture
def spawn(own_redis: EmbeddedRedis, simulator: Simulator) -> Iterator[object]:
    workers: list[WorkerProcess] = []

    def spawn(**env: str) -> WorkerProcess:
        w = start_worker(
            worker_env(own_redis.url, simulator, RELAYQ_LEASE_S=LEASE_S, **env), "--queues", "chat"
        )
        workers.append(w)
        return w

    yield spawn
    for w in workers:
        w.process.kill()
        w.process.wait()


async def events_of(client: Client, job_id: str) -> list[Event]:
    return [e.event async for e in client.events(job_id)]


async def first(client: Client, job_id: str, kind: type[Event]) -> Event:
    async for entry in client.events(job_id):
        if isinstance(entry.event, kind):
            return entry.event
    raise AssertionError(f"the job ended without a {kind.__name__} event")


def body(job: ChatJob) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": job.prompt}]}


async def test_a_killed_workers_job_reruns_elsewhere_within_the_lease(
    own_client: Client, spawn
) -> None:  # type: ignore[no-untyped-def]
    victim = spawn()
    job = ChatJob(prompt="[[sim:tokens=300 rate=60]] survive a crash")
    await own_client.submit(job)
    await first(own_client, job.id, Text)

    victim.process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    spawn()
    events = await events_of(own_client, job.id)
    lost = next(e for e in events if isinstance(e, Retry))
    rerun = next(e for e in events if isinstance(e, Started) and e.attempt == 2)

    assert lost.reason == "worker_lost" and lost.attempt == 1
    assert rerun.ts - killed_at < 15, f"re-run {rerun.ts - killed_at:.1f} s after the kill"
    assert isinstance(events[-1], Done) and events[-1].attempt == 2
    assert transcript_of(events).text == scripted_reply(body(job))
    assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1


@pytest.mark.parametrize(
    "redis_stalls",
    [False, True],
    ids=["redis_answers", "redis_stalls_and_a_second_sigterm_arrives"],
)
async def test_sigterm_hands_a_long_job_back_with_reason_shutdown(
    own_client: Client, spawn, redis_stalls: bool
) -> None:  # type: ignore[no-untyped-def]
    leaving = spawn(RELAYQ_SHUTDOWN_GRACE_S="0")
    job = ChatJob(prompt="[[sim:tokens=300 rate=60]] outlive a shutdown")
    await own_client.submit(job)
    await first(own_client, job.id, Text)

    if redis_stalls:
        # writes stall for 1 s: the hand-back is still waiting on Redis when arq's close()
        # signals the worker again, and when a second SIGTERM arrives; neither may cut it short
        await own_client.redis.execute_command("CLIENT", "PAUSE", 1000, "WRITE")
    leaving.process.send_signal(signal.SIGTERM)
    if redis_stalls:
        await asyncio.sleep(0.2)  # no event to await: Redis is paused, nothing is published
        leaving.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(leaving.process.wait, 20) == 0
    spawn()
    events = await events_of(own_client, job.id)

    (handed_back,) = [e for e in events if isinstance(e, Retry)]
    assert handed_back.reason == "shutdown" and handed_back.attempt == 1
    assert isinstance(events[-1], Done) and events[-1].attempt == 2
    assert transcript_of(events).text == scripted_reply(body(job))


async def test_sigterm_lets_a_short_running_job_finish_within_the_grace_period(
    own_client: Client, spawn
) -> None:  # type: ignore[no-untyped-def]
    leaving = spawn(RELAYQ_SHUTDOWN_GRACE_S="20")
    job = ChatJob(prompt="[[sim:tokens=40 rate=40]] finish before leaving")
    await own_client.submit(job)
    await first(own_client, job.id, Text)

    leaving.process.send_signal(signal.SIGTERM)
    events = await events_of(own_client, job.id)

    assert not [e for e in events if isinstance(e, Retry)]
    assert isinstance(events[-1], Done) and events[-1].attempt == 1
    assert await asyncio.to_thread(leaving.process.wait, 20) == 0


async def test_a_presumed_dead_attempt_cannot_publish_into_a_job_it_lost(
    own_client: Client,
) -> None:
    from relayq.workers.publisher import Fenced, Publisher
    from relayq.workers.scripts import WorkerScripts

    job = ChatJob(prompt="fenced")
    await own_client.submit(job)
    scripts = WorkerScripts(own_client.redis)
    await own_client.redis.hset(job_key(job.id), mapping={"attempt": "2", "status": "running"})
    stale = Publisher(own_client.redis, scripts, job_id=job.id, attempt=1, maxlen=1000, ttl_s=60)

    with pytest.raises(Fenced):
        await stale.finish(Done(job_id=job.id, attempt=1))

    raw = await own_client.redis.xrange(events_key(job.id))
    assert [b'"queued"' in fields[b"event"] for _, fields in raw] == [True]


CALL_FAILURES = {
    "no arguments": ({"a": [], "k": {}}, "exactly one item"),
    "two arguments": ({"a": ["{}", "{}"], "k": {}}, "exactly one item"),
    "unexpected keyword arguments": ({"a": ["{}"], "k": {"retries": 3}}, "must be empty"),
    "arguments not a list": ({"a": "prompt", "k": {}}, "exactly one item"),
    "a number for the job": ({"a": [42], "k": {}}, "not a int"),
    "a job of the wrong type": ({"a": [{"prompt": 7}], "k": {}}, "prompt"),
}


@pytest.mark.parametrize(("fields", "why"), CALL_FAILURES.values(), ids=list(CALL_FAILURES))
async def test_a_raw_envelope_the_job_function_cannot_take_ends_with_one_error_event(
    own_client: Client, spawn, fields: dict[str, object], why: str
) -> None:  # type: ignore[no-untyped-def]
    spawn()
    job_id = f"raw_call_{abs(hash(json.dumps(fields))) % 10**9}"
    envelope = json.dumps({"t": 1, "f": "chat", "et": 1, **fields}).encode()
    await put_raw_envelope(own_client, job_id, envelope)

    events = await events_of(own_client, job_id)

    assert [e.type for e in events] == ["started", "error"]
    assert isinstance(events[-1], Error) and events[-1].error.type == "invalid_request"
    assert why in events[-1].error.message
    # the job ended: its keys expire, and nothing of it is left on the queue
    assert 0 < await own_client.redis.ttl(job_key(job_id)) <= 600
    assert await queue_drained(own_client)


async def test_garbage_on_the_queue_is_reported_and_the_worker_keeps_serving(
    own_client: Client, spawn
) -> None:  # type: ignore[no-untyped-def]
    redis = own_client.redis
    spawn()
    # an envelope that is not JSON at all (pickle), and one for a function nobody runs
    await put_raw_envelope(own_client, "job_garbled", b"\x80\x04\x95pickle? no thanks")
    await put_raw_envelope(
        own_client, "job_unknown_fn", b'{"t":1,"f":"rm_rf","a":[],"k":{},"et":1}'
    )
    # queue members with nothing behind them: a valid job id, and one no job could have
    await redis.zadd(CHAT.waiting, {"no_such_job": 1, "\u2603 snow": 1})

    good = ChatJob(prompt="after the garbage")
    await own_client.submit(good)
    good_events = await events_of(own_client, good.id)
    # claimed before the good job (queues are first in, first out), so started by now
    garbled = await events_of(own_client, "job_garbled")
    unknown_fn = await events_of(own_client, "job_unknown_fn")
    nothing = await events_of(own_client, "no_such_job")

    for events, why in (
        (garbled, "not JSON"),
        (unknown_fn, "names a function this queue does not run"),
        (nothing, "nothing to run"),
    ):
        assert [e.type for e in events] == ["started", "error"], events
        assert isinstance(events[-1], Error) and events[-1].error.type == "invalid_request"
        assert why in events[-1].error.message
    assert isinstance(good_events[-1], Done)
    assert await queue_drained(own_client)


async def test_jobs_survive_a_redis_restart(
    own_redis: EmbeddedRedis, own_client: Client, spawn
) -> None:  # type: ignore[no-untyped-def]
    spawn()
    before = ChatJob(prompt="[[sim:tokens=120 rate=60]] across a restart")
    await own_client.submit(before)
    await first(own_client, before.id, Text)

    await asyncio.to_thread(own_redis.kill)
    await asyncio.to_thread(own_redis.start)
    after = ChatJob(prompt="submitted after the restart")
    await own_client.submit(after)

    for job in (before, after):
        events = await events_of(own_client, job.id)
        assert events[-1].type in ("done",), events[-1]
        assert transcript_of(events).text == scripted_reply(body(job))
        assert sum(e.type in ("done", "error", "cancelled") for e in events) == 1


async def test_a_retried_publish_whose_reply_was_lost_writes_nothing_twice(
    own_client: Client,
) -> None:
    from relayq.workers.publisher import publish_once, write_args
    from relayq.workers.scripts import WorkerScripts

    job = ChatJob(prompt="idempotent writes")
    await own_client.submit(job)
    await own_client.redis.hset(job_key(job.id), mapping={"attempt": "1", "status": "running"})
    keys = job_slot_keys(job.id)
    text = Text(job_id=job.id, attempt=1, text="once").model_dump_json()
    scripts = WorkerScripts(own_client.redis)

    args = write_args(
        attempt=1, maxlen=1000, status="", ttl_s=60, usage_json="", seq=1, events=[text]
    )
    first = await publish_once(scripts, keys, args)
    again = await publish_once(scripts, keys, args)

    stream = await own_client.redis.xrange(events_key(job.id))
    assert first == again == 1
    assert sum(b'"once"' in fields[b"event"] for _, fields in stream) == 1


async def test_an_attempt_longer_than_the_job_timeout_ends_with_an_error_event_not_silence(
    own_client: Client, spawn
) -> None:  # type: ignore[no-untyped-def]
    spawn(RELAYQ_JOB_TIMEOUT_S="5")
    job = ChatJob(prompt="[[sim:tokens=400 rate=40]] longer than the worker allows")
    await own_client.submit(job)

    events = await events_of(own_client, job.id)

    assert isinstance(events[-1], Error)
    assert events[-1].error.type == "APITimeoutError"
    assert "RELAYQ_JOB_TIMEOUT_S" in events[-1].error.message
