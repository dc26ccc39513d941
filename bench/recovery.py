"""9. Crash recovery and cancellation: how long after a worker dies its job runs again, against a
plain arq worker measured in the same run, and how long a cancel takes to stop a running job.

Recovery: a long streaming job starts, its worker is SIGKILLed, a second worker is started at
once; the clock runs from the kill to the job's next start (relayq: the `started` event of
attempt 2; arq: the function's second start). arq re-runs a lost job only when its in-progress
key expires, after the function's timeout + 10 s; the arq baseline uses a 20 s timeout so that it
finishes in half a minute; with arq's default 300 s timeout the same mechanism takes 310 s.

Cancellation: from `Client.cancel()` on a job that is streaming to the subscriber's `cancelled`
event (the worker has then closed the model stream and published).

    python -m bench.recovery arq-worker --redis URL    (the arq baseline's worker process)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from bench.common import (
    PYTHON,
    BenchContext,
    Dist,
    Section,
    base_env,
    chat_job,
    fmt,
    processes,
    ratio,
    redis_server,
    spawn,
    start_relayq_worker,
)
from relayq.client import Client
from relayq.schemas.events import Started, Text
from relayq.schemas.settings import Settings

ARQ_TIMEOUT_S = 20
ARQ_STARTS_KEY = "bench:recovery:starts"


async def slow(ctx: dict[str, Any]) -> None:
    await ctx["redis"].rpush(ARQ_STARTS_KEY, repr(time.time()))
    await asyncio.sleep(3600)


def _arq_worker(redis_url: str) -> None:
    from arq import Worker
    from arq.connections import RedisSettings
    from arq.worker import func

    async def ready(ctx: dict[str, Any]) -> None:
        print("arq worker ready", flush=True)

    Worker(
        functions=[func(slow, name="slow", timeout=ARQ_TIMEOUT_S)],
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=ready,
    ).run()


async def relayq_recovery(ctx: BenchContext, url: str, procs: list[Any]) -> float:
    victim = start_relayq_worker(url, ctx.simulator_url, name="relayq-victim")
    procs.append(victim)
    async with Client(url, settings=Settings(redis_url=url)) as client:
        job = chat_job(5000, 50)
        await client.submit(job)
        async for entry in client.events(job.id):
            if isinstance(entry.event, Text):
                break
        victim.popen.send_signal(signal.SIGKILL)
        killed = time.time()
        procs.append(start_relayq_worker(url, ctx.simulator_url, name="relayq-heir"))
        async for entry in client.events(job.id):
            if isinstance(entry.event, Started) and entry.event.attempt == 2:
                rerun = entry.event.ts
                break
        await client.cancel(job.id)
    return rerun - killed


async def arq_recovery(url: str, procs: list[Any]) -> float:
    from arq.connections import RedisSettings, create_pool

    def worker(name: str) -> Any:
        proc, _ = spawn(
            name,
            [PYTHON, "-m", "bench.recovery", "arq-worker", "--redis", url],
            env=base_env(),
            ready="arq worker ready",
        )
        procs.append(proc)
        return proc

    victim = worker("arq-victim")
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        await pool.enqueue_job("slow")
        await pool.blpop([ARQ_STARTS_KEY], timeout=60)  # type: ignore[misc]
        victim.popen.send_signal(signal.SIGKILL)
        killed = time.time()
        worker("arq-heir")
        _, raw = await pool.blpop(  # type: ignore[misc]
            [ARQ_STARTS_KEY], timeout=ARQ_TIMEOUT_S + 60
        )
        second = float(raw.decode())
    finally:
        await pool.aclose()
    return second - killed


async def cancel_latency(ctx: BenchContext, url: str, procs: list[Any], n: int) -> list[float]:
    procs.append(start_relayq_worker(url, ctx.simulator_url, name="relayq-cancel"))
    samples: list[float] = []
    async with Client(url, settings=Settings(redis_url=url)) as client:
        for _ in range(n):
            job = chat_job(2000, 100)
            await client.submit(job)
            cancelled_at = 0.0
            async for entry in client.events(job.id):
                if isinstance(entry.event, Text) and not cancelled_at:
                    cancelled_at = time.perf_counter()
                    await client.cancel(job.id)
                elif entry.event.type == "cancelled":
                    samples.append((time.perf_counter() - cancelled_at) * 1000)
    return samples


async def run(ctx: BenchContext) -> Section:
    section = Section("recovery", "9. Crash recovery (kill to re-run) and cancellation latency")
    with processes() as procs, redis_server() as redis:
        cancels = await cancel_latency(ctx, redis.url, procs, ctx.pick(5, 30))
    with processes() as procs, redis_server() as redis:
        relayq_s = await relayq_recovery(ctx, redis.url, procs)
    arq_s = float("nan")
    if not ctx.quick:
        with processes() as procs, redis_server() as redis:
            arq_s = await arq_recovery(redis.url, procs)
    section.add(
        "kill -9 to re-run, relayq (lease 10 s)",
        fmt(relayq_s, "s"),
        f"arq, timeout {ARQ_TIMEOUT_S} s: {fmt(arq_s, 's')}" if arq_s == arq_s else "-",
        fmt(ratio(relayq_s, arq_s), "x") if arq_s == arq_s else "-",
        "<= 15 s",
        relayq_s <= 15,
        "arq's default (timeout 300 s) is 310 s by the same mechanism",
    )
    dist = Dist.of(cancels)
    section.add(
        "cancel to `cancelled` event, p50 / p99",
        f"{fmt(dist.p50, 'ms')} / {fmt(dist.p99, 'ms')}",
        "-",
        "-",
        "<= 100 ms",
        dist.p99 <= 100,
        f"n={dist.n}; the job was streaming at 100 tokens/s",
    )
    section.raw = {"relayq_recovery_s": relayq_s, "arq_recovery_s": arq_s, "cancel_ms": cancels}
    return section


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.recovery")
    parser.add_argument("mode", choices=["arq-worker"])
    parser.add_argument("--redis", required=True)
    arguments = parser.parse_args()
    _arq_worker(arguments.redis)
    sys.exit(0)
