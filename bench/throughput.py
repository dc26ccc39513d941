"""5. Throughput of short chat jobs (one 20-token reply) per worker process vs arq no-op jobs/s.

Method (the same for both): fill a staging zset with M jobs while workers idle, RENAME it onto the
queue in one step (relayq: and PUBLISH the wake channel, as enqueue.lua does), then sample the
queue length every 10 ms. A job leaves the queue zset when it has finished, so the drain rate is
0.8 M / (time from 90 % to 10 % of the jobs left), which excludes start-up (arq's first poll
may be 0.5 s away) and the tail. relayq jobs are written with enqueue.lua's exact effect (the
script itself, pipelined), each a real chat job: start script, HTTP request to the simulator
(own process, replies at full speed), 20 text tokens published, usage, done.
"""

from __future__ import annotations

import asyncio
import pickle
import time
import uuid
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
from arq.constants import default_queue_name, job_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis

from bench.common import (
    BenchContext,
    CpuSampler,
    Proc,
    Repeated,
    Section,
    chat_job,
    command_count,
    fmt,
    processes,
    redis_client,
    redis_server,
    start_arq_worker,
    start_relayq_worker,
    used_memory,
)
from bench.sdk_client import run_sdk_client
from relayq.contract import script_source
from relayq.schemas.constants import CHAT, JOBS_INDEX, events_key, job_key

TOKENS = 20
STAGING = "bench:staging"


async def fill_arq(redis: Redis, m: int) -> None:
    now = int(time.time() * 1000)
    for start in range(0, m, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(start, min(m, start + 1000)):
                job_id = uuid.uuid4().hex
                payload = serialize_job("noop", (), {}, None, now, serializer=pickle.dumps)
                pipe.psetex(job_key_prefix + job_id, 86_400_000, payload)
                pipe.zadd(STAGING, {job_id: now})
            await pipe.execute()


async def fill_relayq(redis: Redis, m: int) -> list[str]:
    """enqueue.lua for each job, then its id onto the staging zset (where admit.lua would put it
    on the queue); the wake is sent later."""
    sha = await redis.script_load(script_source("enqueue"))
    ids = []
    for start in range(0, m, 500):
        async with redis.pipeline(transaction=False) as pipe:
            now = int(time.time() * 1000)
            for _ in range(start, min(m, start + 500)):
                job = chat_job(TOKENS)
                ids.append(job.id)
                pipe.evalsha(
                    sha,
                    2,
                    job_key(job.id),
                    events_key(job.id),
                    job.id,
                    job.model_dump_json(),
                    "chat",
                    job.model,
                    "100000",
                    CHAT.waiting,
                    "",
                    "86400",
                )
                pipe.zadd(STAGING, {job.id: now})
            await pipe.execute()
    return ids


async def drain(
    redis: Redis,
    queue: str,
    m: int,
    procs: dict[str, psutil.Process],
    wake: str | None,
    running: str | None = None,
) -> dict[str, Any]:
    """RENAMEs the staging zset onto `queue` and times the drain (see the module docs). A job
    counts as left while it waits in `queue` or runs (arq keeps running jobs in its queue;
    relayq moves them to the queue's leases, `running`)."""
    sampler = CpuSampler(procs)
    before = await command_count(redis)
    sampler.start()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rename(STAGING, queue)
        if wake:
            pipe.publish(wake, "bench")
        await pipe.execute()
    t_hi = t_lo = float("nan")
    t0 = time.perf_counter()
    deadline = t0 + 300
    while time.perf_counter() < deadline:
        left = int(await redis.zcard(queue)) + (int(await redis.zcard(running)) if running else 0)
        now = time.perf_counter()
        if t_hi != t_hi and left <= 0.9 * m:
            t_hi = now
        if left <= 0.1 * m and t_lo != t_lo:
            t_lo = now
        if left == 0:
            break
        await asyncio.sleep(0.01)
    total = time.perf_counter() - t0
    shares = sampler.shares()
    delta = await command_count(redis) - before
    commands = delta.total - delta.by_command.get("info", 0) - delta.by_command.get("zcard", 0)
    per_job = sorted(
        ((c, n / m) for c, n in delta.by_command.items() if c not in ("info", "zcard")),
        key=lambda x: -x[1],
    )
    return {
        "per_job": ", ".join(f"{c} {n:.2g}" for c, n in per_job if n >= 0.05),
        "rate": 0.8 * m / (t_lo - t_hi),
        "total_s": total,
        "commands_per_job": commands / m,
        **{f"cpu_{k}": v for k, v in shares.items()},
    }


def shares_text(r: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.removeprefix('cpu_')} {v * 100:.0f}%" for k, v in r.items() if k.startswith("cpu_")
    )


async def arq_noop_rate(ctx: BenchContext, m: int, max_jobs: int | None) -> dict[str, Any]:
    with redis_server() as server, processes() as procs:
        worker = start_arq_worker(server.url, max_jobs=max_jobs)
        procs.append(worker)
        async with redis_client(server.url) as redis:
            await fill_arq(redis, m)
            redis_ps = psutil.Process(server.process.pid)  # type: ignore[union-attr]
            return await drain(
                redis, default_queue_name, m, {"worker": worker.ps, "redis": redis_ps}, None
            )


async def relayq_rate(
    ctx: BenchContext, m: int, workers: int, *, memory: bool = False, supervised: bool = False
) -> dict[str, Any]:
    """Drains `m` chat jobs with `workers` worker processes: started one by one, or with
    `supervised`, as one `relayq worker --processes <workers>`."""
    with redis_server() as server, processes() as procs:
        started: list[Proc] = []
        if supervised:
            args = ["--processes", str(workers)]
            started.append(start_relayq_worker(server.url, ctx.simulator_url, args=args))
        else:
            for i in range(workers):
                started.append(
                    start_relayq_worker(server.url, ctx.simulator_url, name=f"relayq-worker-{i}")
                )
        procs.extend(started)
        async with redis_client(server.url) as redis:
            mem0 = await used_memory(redis)
            await fill_relayq(redis, m)
            redis_ps = psutil.Process(server.process.pid)  # type: ignore[union-attr]
            worker_ps = started[0].ps.children() if supervised else [p.ps for p in started]
            watched: dict[str, psutil.Process] = {
                f"worker{i + 1}": p for i, p in enumerate(worker_ps)
            }
            watched.update(simulator=ctx.simulator.ps, redis=redis_ps)
            result = await drain(redis, CHAT.waiting, m, watched, CHAT.wake, CHAT.leases)
            if memory:
                await asyncio.sleep(0.5)
                # what finished jobs leave behind: job hash + event stream (+ index entry)
                await redis.delete(JOBS_INDEX)
                result["bytes_per_job"] = (await used_memory(redis) - mem0) / m
                sample: Any = await redis.memory_usage(events_key_of_any(await redis.keys()))
                result["stream_bytes"] = float(sample or 0)
                result["stream_entries"] = float(
                    await redis.xlen(events_key_of_any(await redis.keys()))
                )
            return result


def events_key_of_any(keys: list[bytes]) -> str:
    return next(k.decode() for k in keys if k.endswith(b":events"))


def sdk_ceiling(base_url: str, requests: int) -> dict[str, float]:
    """The bare SDK doing 20-token streaming requests, 200 at a time: requests per CPU second
    is the most jobs/s one process could run if it did nothing but the model call."""
    waves = str(max(1, requests // 200))
    return run_sdk_client(base_url, "--streams", "200", "--tokens", str(TOKENS), "--waves", waves)


async def run(ctx: BenchContext) -> Section:
    section = Section("throughput", "5. Throughput: short chat jobs per worker process")
    m_arq = ctx.pick(500, 6000)
    m_rq = ctx.pick(300, 3000)
    repeats = ctx.pick(1, 3)
    arq_runs = [await arq_noop_rate(ctx, m_arq, None) for _ in range(repeats)]
    arq200 = await arq_noop_rate(ctx, m_arq, 200)
    rq_runs = [await relayq_rate(ctx, m_rq, 1) for _ in range(repeats)]
    sdk = await asyncio.to_thread(sdk_ceiling, ctx.simulator_url, m_rq)
    sdk_per_cpu_s = sdk["requests"] / sdk["cpu_s"]
    arq_rate = Repeated(tuple(r["rate"] for r in arq_runs))
    rq_rate = Repeated(tuple(r["rate"] for r in rq_runs))
    baseline = max(arq_rate.median, arq200["rate"])
    r = rq_rate.median / baseline
    section.add(
        "arq no-op jobs/s (defaults: max_jobs 10)",
        fmt(arq_rate.median, "jobs/s"),
        "-",
        "-",
        "-",
        None,
        f"{arq_rate.spread}; {fmt(arq_runs[0]['commands_per_job'])} commands/job; "
        f"CPU {shares_text(arq_runs[0])}",
    )
    section.add(
        "arq no-op jobs/s (max_jobs 200, as relayq)",
        fmt(arq200["rate"], "jobs/s"),
        "-",
        "-",
        "-",
        None,
        f"CPU {shares_text(arq200)}",
    )
    section.add(
        f"relayq chat jobs/s ({TOKENS}-token reply, 1 worker)",
        fmt(rq_rate.median, "jobs/s"),
        fmt(baseline, "no-op jobs/s"),
        fmt(r, "x"),
        ">= 0.5x",
        r >= 0.5,
        f"baseline: the faster arq row; vs arq defaults "
        f"{fmt(rq_rate.median / arq_rate.median, 'x')}"
        f"; {rq_rate.spread}; {fmt(rq_runs[0]['commands_per_job'])} commands/job; "
        f"CPU {shares_text(rq_runs[0])}",
    )
    cpu_per_job = rq_runs[0]["cpu_worker1"] / rq_rate.median * 1000
    section.add(
        "worker CPU per chat job vs bare SDK CPU per 20-token request",
        fmt(cpu_per_job, "ms"),
        fmt(1000 / sdk_per_cpu_s, "ms (SDK)"),
        fmt(cpu_per_job * sdk_per_cpu_s / 1000, "x"),
        "-",
        None,
        f"SDK ceiling {fmt(sdk_per_cpu_s, 'requests per CPU-second')}: no process that also "
        "reads the stream through the SDK can beat it",
    )
    section.notes.append(
        "Redis commands per job (commandstats, Lua-internal included) - arq no-op: "
        f"{arq_runs[0]['per_job']}. relayq chat job: {rq_runs[0]['per_job']}."
    )
    section.raw = {"arq": arq_runs, "arq200": arq200, "relayq": rq_runs}
    return section
