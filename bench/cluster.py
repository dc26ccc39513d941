"""10. Redis Cluster: the same work on a cluster of 1 shard and of 3 shards, on this machine.

Each run starts its own cluster (`redis-server --cluster-enabled yes`: 1 primary holding every
slot, or 3 primaries, no replicas and `ack_replicas=0`, so that only the number of shards
differs), one relayq worker process and the shared simulator, all through a
`redis+cluster://` URL.

- jobs/s: M short chat jobs (a 20-token reply at once) are written with enqueue.lua, staged in
  a set in the queue's slot, then made due together; the rate is 0.8 M over the time from 90 %
  to 10 % of them left (waiting or running), as in section 5.
- concurrent streams: N jobs streaming at 50 tokens/s, each followed by a subscriber of its own
  (client.events, one blocking XREAD per job: no multi-key XREAD spans slots). Reported: the
  subscribers' p99 delivery lag against the simulator's schedule, and how the Redis work
  spreads: the busiest shard's share of the commands Redis ran (and each shard's CPU).

Ratios are 3 shards over 1 shard, measured in the same run. On a 2-core machine the worker
process, not Redis, is the limit, so more shards cannot make one worker faster; what a cluster
buys here is the spread (each shard carries a third of the event traffic), which is what lets
more workers on more machines scale past one Redis core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from bench.common import (
    BenchContext,
    Dist,
    Section,
    Track,
    chat_job,
    fmt,
    processes,
    start_relayq_worker,
)
from relayq.client import Client
from relayq.connection import connect
from relayq.contract import Scripts
from relayq.schemas.constants import CHAT, events_key, job_key
from relayq.schemas.settings import Settings
from tests.redis_topologies import LocalCluster

TOKENS = 20
STAGING = "bench:staging:{chat}"  # the queue's hash tag: RENAME onto the queue stays in one slot


@contextmanager
def cluster(shards: int) -> Iterator[LocalCluster]:
    with LocalCluster(primaries=shards, replicas=0) as c:
        yield c


def url_of(c: LocalCluster) -> str:
    return c.url + "?ack_replicas=0"


async def jobs_per_second(ctx: BenchContext, shards: int, m: int) -> dict[str, Any]:
    with cluster(shards) as c, processes() as procs:
        procs.append(start_relayq_worker(url_of(c), ctx.simulator_url))
        redis = connect(url_of(c))
        try:
            scripts = Scripts(redis)
            jobs = [chat_job(TOKENS) for _ in range(m)]
            sem = asyncio.Semaphore(64)

            async def stage(job: Any) -> None:
                async with sem:
                    await scripts.call(
                        "enqueue",
                        [job_key(job.id), events_key(job.id)],
                        [job.id, job.model_dump_json(), "chat", job.model, 100_000, CHAT.waiting,
                         "", 86_400],
                    )  # fmt: skip
                    await redis.zadd(STAGING, {job.id: int(time.time() * 1000)})

            await asyncio.gather(*(stage(j) for j in jobs))
            cpu = _cpu_sampler(c)
            await redis.rename(STAGING, CHAT.waiting)
            # any node: classic pub/sub reaches every node of a cluster
            await redis.execute_command(  # type: ignore[no-untyped-call]
                "PUBLISH", CHAT.wake, "bench", target_nodes="random"
            )
            t_hi = t_lo = float("nan")
            t0 = time.perf_counter()
            while time.perf_counter() < t0 + 300:
                left = int(await redis.zcard(CHAT.waiting)) + int(await redis.zcard(CHAT.leases))
                now = time.perf_counter()
                if t_hi != t_hi and left <= 0.9 * m:
                    t_hi = now
                if t_lo != t_lo and left <= 0.1 * m:
                    t_lo = now
                if left == 0:
                    break
                await asyncio.sleep(0.01)
            return {"rate": 0.8 * m / (t_lo - t_hi), "shard": cpu()}
        finally:
            await redis.aclose()


async def streams(ctx: BenchContext, shards: int, n: int, tokens: int) -> dict[str, Any]:
    rate = 50.0
    with cluster(shards) as c, processes() as procs:
        procs.append(start_relayq_worker(url_of(c), ctx.simulator_url, max_jobs=max(200, n)))
        async with Client(url_of(c), settings=Settings(redis_url=url_of(c))) as client:
            jobs = [chat_job(tokens, rate) for _ in range(n)]
            tracks = {j.id: Track(1.0 / rate) for j in jobs}
            for job in jobs:
                await client.submit(job)
            cpu = _cpu_sampler(c)

            async def follow(job_id: str) -> None:
                track = tracks[job_id]
                async for entry in client.events(job_id, block_ms=2000):
                    track.feed(entry.event.model_dump(), time.perf_counter(), time.time())
                    track.terminal = entry.event.type

            await asyncio.wait_for(asyncio.gather(*(follow(job_id) for job_id in tracks)), 300)
            shard = cpu()
        lags = Dist.of([x for t in tracks.values() for x in t.lags])
        done = sum(t.terminal == "done" for t in tracks.values())
        return {"p50": lags.p50, "p99": lags.p99, "done": done, "shard": shard}


def _cpu_sampler(c: LocalCluster) -> Any:
    """Returns a function giving, for each primary since now, its redis-server CPU seconds and
    the commands it processed."""
    nodes = [n for n in c.primary_nodes() if n.process is not None]
    procs = [psutil.Process(n.process.pid) for n in nodes if n.process is not None]

    def cpu_of(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def commands() -> list[int]:
        counts = []
        for node in nodes:
            with node.client() as r:
                counts.append(int(r.info("stats")["total_commands_processed"]))
        return counts

    cpu0, commands0 = [cpu_of(p) for p in procs], commands()

    def sample() -> dict[str, list[float]]:
        return {
            "cpu_s": [cpu_of(p) - s for p, s in zip(procs, cpu0, strict=True)],
            "commands": [float(n - s) for n, s in zip(commands(), commands0, strict=True)],
        }

    return sample


def busiest_share(per_shard: list[float]) -> float:
    total = sum(per_shard)
    return max(per_shard) / total if total > 0 else float("nan")


async def run(ctx: BenchContext) -> Section:
    section = Section("cluster", "10. Redis Cluster: 1 shard vs 3 shards on this machine")
    m = ctx.pick(300, 2000)
    n, tokens = ctx.pick((50, 100), (200, 500))
    one_rate = await jobs_per_second(ctx, 1, m)
    three_rate = await jobs_per_second(ctx, 3, m)
    one_streams = await streams(ctx, 1, n, tokens)
    three_streams = await streams(ctx, 3, n, tokens)

    spread = busiest_share(three_streams["shard"]["commands"])
    section.add(
        f"chat jobs/s, {TOKENS}-token replies, 1 worker: 3 shards",
        fmt(three_rate["rate"], "jobs/s"),
        fmt(one_rate["rate"], "jobs/s (1 shard)"),
        fmt(three_rate["rate"] / one_rate["rate"], "x"),
        "-",
        None,
        f"{m} jobs; the busiest of 3 shards ran "
        f"{busiest_share(three_rate['shard']['commands']) * 100:.0f}% of the commands",
    )
    section.add(
        f"{n} concurrent streams at 50 tok/s, p99 delivery lag: 3 shards",
        fmt(three_streams["p99"], "ms"),
        fmt(one_streams["p99"], "ms (1 shard)"),
        fmt(three_streams["p99"] / one_streams["p99"], "x"),
        "-",
        None,
        f"p50 {fmt(three_streams['p50'], 'ms')} vs {fmt(one_streams['p50'], 'ms')}; done "
        f"{three_streams['done']}/{n} and {one_streams['done']}/{n}",
    )
    section.add(
        f"{n} concurrent streams: the busiest shard's share of the Redis commands, 3 shards",
        f"{spread * 100:.0f}%",
        "100% (1 shard)",
        fmt(spread, "x"),
        "<= 0.5x",
        spread <= 0.5,
        "a job's stream, state and blobs live in its own slot, so event traffic spreads over "
        "every shard (even: 33%; the queue's shard also serves claims and leases); commands "
        "per shard "
        + ", ".join(f"{x:.0f}" for x in three_streams["shard"]["commands"])
        + "; redis-server CPU s per shard "
        + ", ".join(f"{x:.2f}" for x in three_streams["shard"]["cpu_s"]),
    )
    section.notes.append(
        "One worker process on a 2-core machine is the limit of both runs (the simulator, the "
        "subscribers and every redis-server share the cores: 6 of them for the cluster, 3 "
        "primaries and 3 replicas). On 3 shards that worker ran "
        f"{three_rate['rate'] / one_rate['rate']:.2f}x the jobs/s of one shard (the cluster "
        "client hashes every key to a slot and sends a publish call per slot) and its streams "
        f"saw {three_streams['p99'] / one_streams['p99']:.2f}x the p99 lag. The command spread "
        "says what the cluster buys: each shard carries about a third of the event traffic, so "
        "workers on more machines scale past one Redis core."
    )
    section.raw = {
        "jobs_per_s": {"1": one_rate, "3": three_rate},
        "streams": {"1": one_streams, "3": three_streams},
    }
    return section
