"""1. Pickup latency (enqueue to job start) and idle Redis load: relayq vs a default arq worker.

Jobs are enqueued one at a time at random gaps (20-60 ms, so nothing phase-locks with a poll
loop). "Start" is the job function's first line: arq's `mark` records `time.time()`; relayq's
`started` event carries the worker's `time.time()` taken before its start script runs. Enqueue
time is taken just before the enqueue command is sent. Same machine, same clock.

Idle load: `INFO stats` total_commands_processed delta over an idle window, less the probe's own
INFO commands, per second.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from bench.arq_baseline import STARTED_KEY
from bench.common import (
    BenchContext,
    CommandCount,
    Dist,
    Repeated,
    Section,
    command_count,
    fmt,
    job_events,
    processes,
    ratio,
    redis_client,
    redis_server,
    start_arq_worker,
    start_relayq_worker,
    wait_all_terminal,
    wait_for,
)
from relayq.client import Client
from relayq.schemas.constants import CHAT_QUEUE, envelope_key
from relayq.schemas.settings import Settings
from relayq.workers.worker import POLL_DELAY_S

GAP_S = (0.02, 0.06)


async def idle_commands_per_s(redis: Redis, window: float) -> tuple[float, CommandCount]:
    await asyncio.sleep(1.0)  # let start-up traffic settle
    before = await command_count(redis)
    await asyncio.sleep(window)
    delta = await command_count(redis) - before
    own = delta.by_command.get("info", 0)
    return (delta.total - own) / window, delta


async def arq_pickup(url: str, redis: Redis, n: int) -> list[float]:
    await redis.delete(STARTED_KEY)
    pool = await create_pool(RedisSettings.from_dsn(url))
    enqueued: dict[str, float] = {}
    try:
        for _ in range(n):
            await asyncio.sleep(random.uniform(*GAP_S))
            job_id = uuid.uuid4().hex
            enqueued[job_id] = time.time()
            await pool.enqueue_job("mark", _job_id=job_id)

        async def all_started() -> bool:
            return int(await redis.llen(STARTED_KEY)) >= n  # type: ignore[misc]

        await wait_for(all_started, 30)
    finally:
        await pool.aclose()
    latencies = []
    for raw in await redis.lrange(STARTED_KEY, 0, -1):  # type: ignore[misc]
        job_id, started = raw.decode().split()
        latencies.append((float(started) - enqueued[job_id]) * 1000)
    return latencies


async def relayq_pickup(client: Client, n: int, *, raw_producer: bool = False) -> list[float]:
    """Enqueues `n` one-token chat jobs with enqueue.lua (or, with `raw_producer`, as a foreign
    producer may: the envelope, then ZADD, no wake-up) and returns their pickup latencies."""
    from bench.common import chat_job

    redis = client.redis
    enqueued: dict[str, float] = {}
    for _ in range(n):
        await asyncio.sleep(random.uniform(*GAP_S))
        job = chat_job(tokens=1)
        enqueued[job.id] = time.time()
        if raw_producer:
            now_ms = int(time.time() * 1000)
            envelope = {"t": 1, "f": "chat", "a": [job.model_dump_json()], "k": {}, "et": now_ms}
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(envelope_key(job.id), json.dumps(envelope), px=86_400_000)
                pipe.zadd(CHAT_QUEUE, {job.id: now_ms})
                await pipe.execute()
        else:
            await client.submit(job)
    await wait_all_terminal(redis, list(enqueued), limit_s=60)
    latencies = []
    for job_id, t0 in enqueued.items():
        started = [e for e in await job_events(redis, job_id) if e["type"] == "started"]
        if started:
            latencies.append((started[0]["ts"] - t0) * 1000)
    return latencies


def _rows(section: Section, name: str, samples: list[list[float]], baseline: Dist | None) -> Dist:
    pooled = [x for s in samples for x in s]
    d = Dist.of(pooled)
    spread = Repeated(tuple(Dist.of(s).p50 for s in samples)).spread
    is_relayq = baseline is not None
    section.add(
        f"{name}: p50",
        fmt(d.p50, "ms"),
        fmt(baseline.p50, "ms") if baseline else "-",
        fmt(ratio(d.p50, baseline.p50), "x") if baseline else "-",
        "<= 5 ms" if is_relayq else "-",
        (d.p50 <= 5) if is_relayq else None,
        f"n={d.n}; per-run p50 {spread}",
    )
    section.add(
        f"{name}: p99",
        fmt(d.p99, "ms"),
        fmt(baseline.p99, "ms") if baseline else "-",
        fmt(ratio(d.p99, baseline.p99), "x") if baseline else "-",
        "<= 20 ms" if is_relayq else "-",
        (d.p99 <= 20) if is_relayq else None,
        f"max {fmt(d.max, 'ms')}",
    )
    return d


def _breakdown(delta: CommandCount, window: float) -> str:
    parts = sorted(
        ((c, n) for c, n in delta.by_command.items() if c != "info" and n), key=lambda x: -x[1]
    )
    return ", ".join(f"{c} {n / window:.2f}/s" for c, n in parts) or "none"


async def run(ctx: BenchContext) -> Section:
    section = Section("pickup", "1. Pickup latency (enqueue to job start) and idle Redis load")
    n = ctx.pick(15, 120)
    repeats = ctx.pick(1, 3)
    window = ctx.pick(1.5, 15.0)
    with redis_server() as server, processes() as procs:
        async with redis_client(server.url) as redis:
            arq_worker = start_arq_worker(server.url)
            procs.append(arq_worker)
            arq_idle, arq_delta = await idle_commands_per_s(redis, window)
            arq_samples = [await arq_pickup(server.url, redis, n) for _ in range(repeats)]
            arq_worker.stop()

            worker = start_relayq_worker(server.url, ctx.simulator_url)
            procs.append(worker)
            rq_idle, rq_delta = await idle_commands_per_s(redis, window)
            settings = Settings(redis_url=server.url, stream_ttl_s=600)
            async with Client(settings=settings) as client:
                rq_samples = [await relayq_pickup(client, n) for _ in range(repeats)]
                second = start_relayq_worker(server.url, ctx.simulator_url, name="relayq-worker-2")
                procs.append(second)
                await asyncio.sleep(1.0)
                two_samples = [await relayq_pickup(client, n) for _ in range(repeats)]
                second.stop()
                raw_samples = [await relayq_pickup(client, max(6, n // 3), raw_producer=True)]

    arq_dist = _rows(section, "arq worker (defaults, poll 0.5 s)", arq_samples, None)
    _rows(section, "relayq, 1 worker, enqueue.lua", rq_samples, arq_dist)
    _rows(section, "relayq, 2 workers, enqueue.lua", two_samples, arq_dist)
    raw = Dist.of(raw_samples[0])
    section.add(
        "relayq, foreign producer (SET+ZADD, no wake): p50",
        fmt(raw.p50, "ms"),
        fmt(arq_dist.p50, "ms"),
        fmt(ratio(raw.p50, arq_dist.p50), "x"),
        "- (poll fallback)",
        None,
        f"n={raw.n}, p99 {fmt(raw.p99, 'ms')}: no PUBLISH, so the {POLL_DELAY_S:g} s poll finds it",
    )
    section.add(
        f"idle worker (default poll {POLL_DELAY_S:g} s): Redis commands/s",
        fmt(rq_idle, "/s"),
        fmt(arq_idle, "/s"),
        fmt(ratio(rq_idle, arq_idle), "x"),
        "<= arq's",
        rq_idle <= arq_idle + 1e-9,
        f"{window:g} s window",
    )
    section.notes.append(f"Idle arq worker's commands: {_breakdown(arq_delta, window)}.")
    section.notes.append(f"Idle relayq worker's commands: {_breakdown(rq_delta, window)}.")
    section.raw = {
        "arq": arq_samples,
        "relayq": rq_samples,
        "relayq_2": two_samples,
        "raw": raw_samples,
        "idle": {"arq": arq_idle, "relayq": rq_idle},
    }
    return section
