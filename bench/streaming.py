"""3. Streaming cost: worker CPU per 1,000 tokens vs the bare SDK's CPU to receive and parse the
same streams; Redis commands and Redis CPU per token; what coalescing adds to delivery.

For each load shape (streams x tokens at a rate) the bare SDK (bench.sdk_client, its own process)
and relayq (one worker process, subscribers reading every stream) receive the same replies from
the same simulator. Worker CPU is the worker process's user+system time over the batch (per-job
work - pickup, start, finish - included); the SDK's is its process time over the streams. The
goal's baseline is the SDK as it comes (its default httpx transport); a second row compares with
the SDK on the aiohttp transport that relayq's worker uses.

Redis commands are INFO deltas over the batch, less the subscribers' XREAD, the probes' INFO and
the producer's enqueue (one EVALSHA + 9 commands inside enqueue.lua per job): what the worker
causes, counted the strict way (commands run inside Lua scripts included). "Publish writes" are
the worker's EVALSHA round trips less one start script per job: the publisher's appends (each one
or more events), plus the few claim.lua calls (one per poll or wake that finds due jobs).

Redis cost at 50 tokens/s is also measured against a naive relay in the same run: the bare SDK
process appending every token to its stream as it arrives (one XADD per token), read by the same
subscribers. Redis CPU is the redis-server process's user+system time over the batch.

Delivery lag: for each text entry a subscriber reads, arrival minus when its oldest token was due
by the simulator's schedule, anchored at the stream's first token; the SDK's lag is the same
measure on its own receipt of each token. The difference is what the worker, Redis and the
subscriber add (coalescing included).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench.common import (
    BenchContext,
    Dist,
    Repeated,
    Section,
    Track,
    chat_job,
    command_count,
    fmt,
    processes,
    redis_client,
    redis_server,
    start_relayq_worker,
    submit_all,
    watch_streams,
)
from bench.sdk_client import run_sdk_client
from relayq.client import Client
from relayq.schemas.constants import events_key
from relayq.schemas.settings import Settings

# enqueue.lua: EVALSHA HMGET TIME HSET XADD EXPIRE EXPIRE; admit.lua: EVALSHA ZSCORE ZSCORE
# TIME ZADD PUBLISH; the recent-jobs indexes: 2 x (ZADD ZREMRANGEBYSCORE)
ENQUEUE_COMMANDS = 17
LAG_GOAL_MS = 25.0  # issue 13: at most 25 ms added p99 lag
COST_SHAPE = "50"  # the shape whose Redis cost is compared with the naive relay's


@dataclass(frozen=True)
class Shape:
    name: str
    streams: int
    tokens: int
    rate: float

    @property
    def label(self) -> str:
        rate = "max rate" if self.rate == 0 else f"{self.rate:g} tok/s"
        return f"{self.streams} x {self.tokens} tok @ {rate}"


@dataclass
class Outcome:
    worker_cpu_per_1k: float
    sdk_cpu_per_1k: float
    sdk_aiohttp_cpu_per_1k: float
    commands_per_token: float
    script_calls_per_token: float
    writes_per_token: float
    redis_cpu_per_1k: float
    lag_p50: float
    lag_p99: float
    sdk_lag_p50: float
    sdk_lag_p99: float
    first_entry_single: float
    tokens: int
    by_command: dict[str, float] = field(default_factory=dict)
    naive: dict[str, float] = field(default_factory=dict)


@dataclass
class RedisCost:
    """What a batch cost Redis: commands (strict: those run inside scripts included), script
    calls, and the server's CPU seconds."""

    commands: int
    script_calls: int
    cpu_s: float
    by_command: dict[str, int]


def sdk_run(base_url: str, shape: Shape, *extra: str) -> dict[str, float]:
    streams, tokens, rate = str(shape.streams), str(shape.tokens), str(shape.rate)
    return run_sdk_client(
        base_url, "--streams", streams, "--tokens", tokens, "--rate", rate, *extra
    )


def server_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


async def relayq_run(
    url: str, client: Client, worker_cpu: object, redis_proc: psutil.Process, shape: Shape
) -> tuple[float, RedisCost, dict[str, Track]]:
    """Returns (worker CPU s, what the batch cost Redis, tracks)."""
    assert callable(worker_cpu)
    jobs = [chat_job(shape.tokens, shape.rate) for _ in range(shape.streams)]
    interval = 1.0 / shape.rate if shape.rate else 0.0
    tracks = {j.id: Track(interval) for j in jobs}
    async with redis_client(url) as redis:
        before = await command_count(redis)
        cpu0, redis_cpu0 = worker_cpu(), server_cpu(redis_proc)
        watcher = asyncio.create_task(watch_streams(url, tracks, limit_s=300))
        await asyncio.sleep(0.05)  # subscribers blocked in XREAD before the first job exists
        await submit_all(client, jobs)
        await watcher
        cpu, redis_cpu = worker_cpu() - cpu0, server_cpu(redis_proc) - redis_cpu0
        delta = await command_count(redis) - before
    by = delta.by_command
    commands = delta.total - by.get("info", 0) - by.get("xread", 0) - ENQUEUE_COMMANDS * len(jobs)
    # less enqueue, admit, start and release (Lua) per job; claim.lua calls stay in (docstring)
    calls = by.get("evalsha", 0) + by.get("eval", 0) - 4 * len(jobs)
    worker_by = dict(by)
    worker_by.pop("info", None)
    worker_by.pop("xread", None)
    return cpu, RedisCost(commands, calls, redis_cpu, worker_by), tracks


async def naive_relay_run(
    ctx: BenchContext, url: str, redis_proc: psutil.Process, shape: Shape
) -> dict[str, float]:
    """The same shape through the naive relay (one XADD per token), read by the same
    subscribers: Redis commands and CPU per token, and the subscribers' lag."""
    run_id = uuid.uuid4().hex[:8]
    ids = [f"relay-{run_id}-{i}" for i in range(shape.streams)]
    tracks = {i: Track(1.0 / shape.rate if shape.rate else 0.0) for i in ids}
    key_template = events_key(f"relay-{run_id}-%d")
    async with redis_client(url) as redis:
        before = await command_count(redis)
        redis_cpu0 = server_cpu(redis_proc)
        watcher = asyncio.create_task(watch_streams(url, tracks, limit_s=300))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(
            sdk_run, ctx.simulator_url, shape, "--relay-redis", url, "--relay-key", key_template
        )
        await watcher
        redis_cpu = server_cpu(redis_proc) - redis_cpu0
        delta = await command_count(redis) - before
    tokens = sum(t.tokens for t in tracks.values())
    commands = delta.total - delta.by_command.get("info", 0) - delta.by_command.get("xread", 0)
    lags = Dist.of([x for t in tracks.values() for x in t.lags])
    return {
        "commands_per_token": commands / tokens,
        "redis_cpu_per_1k": redis_cpu / tokens * 1000,
        "lag_p50": lags.p50,
        "lag_p99": lags.p99,
        "tokens": tokens,
    }


async def run(ctx: BenchContext) -> Section:
    section = Section("streaming", "3. Streaming cost, commands per token, coalescing delay")
    shapes = [
        Shape("max", 10, ctx.pick(200, 1000), 0),
        Shape("1k", 1, ctx.pick(500, 3000), 1000),
        Shape("200", ctx.pick(10, 20), ctx.pick(100, 600), 200),
        Shape(COST_SHAPE, ctx.pick(20, 50), ctx.pick(100, 250), 50),
    ]
    repeats = ctx.pick(1, 3)
    outcomes = await measure(ctx, shapes, repeats)
    report(section, shapes, outcomes)
    return section


async def measure(ctx: BenchContext, shapes: list[Shape], repeats: int) -> dict[str, list[Outcome]]:
    """Runs every shape `repeats` times on one worker, each against its own bare-SDK run (and,
    for the cost shape, its own naive-relay run)."""
    outcomes: dict[str, list[Outcome]] = {s.name: [] for s in shapes}
    with redis_server() as server, processes() as procs:
        worker = start_relayq_worker(server.url, ctx.simulator_url)
        procs.append(worker)
        redis_proc = psutil.Process(server.process.pid)  # type: ignore[union-attr]
        settings = Settings(redis_url=server.url, stream_ttl_s=600)
        async with Client(settings=settings) as client:
            await relayq_run(
                server.url, client, worker.cpu_seconds, redis_proc, Shape("warm", 2, 20, 0)
            )
            for _ in range(repeats):
                for shape in shapes:
                    sdk = await asyncio.to_thread(sdk_run, ctx.simulator_url, shape)
                    sdk_aiohttp = await asyncio.to_thread(
                        sdk_run, ctx.simulator_url, shape, "--transport", "aiohttp"
                    )
                    naive: dict[str, float] = {}
                    if shape.name == COST_SHAPE:
                        naive = await naive_relay_run(ctx, server.url, redis_proc, shape)
                    cpu, cost, tracks = await relayq_run(
                        server.url, client, worker.cpu_seconds, redis_proc, shape
                    )
                    tokens = sum(t.tokens for t in tracks.values())
                    lags = [x for t in tracks.values() for x in t.lags]
                    d = Dist.of(lags)
                    outcomes[shape.name].append(
                        Outcome(
                            worker_cpu_per_1k=cpu / tokens * 1000,
                            sdk_cpu_per_1k=sdk["cpu_s"] / sdk["tokens"] * 1000,
                            sdk_aiohttp_cpu_per_1k=sdk_aiohttp["cpu_s"]
                            / sdk_aiohttp["tokens"]
                            * 1000,
                            commands_per_token=cost.commands / tokens,
                            script_calls_per_token=cost.script_calls / tokens,
                            writes_per_token=sum(t.entries for t in tracks.values()) / tokens,
                            redis_cpu_per_1k=cost.cpu_s / tokens * 1000,
                            lag_p50=d.p50,
                            lag_p99=d.p99,
                            sdk_lag_p50=sdk["lag_p50_ms"],
                            sdk_lag_p99=sdk["lag_p99_ms"],
                            first_entry_single=sum(
                                t.first_entry_tokens == 1 for t in tracks.values()
                            )
                            / len(tracks),
                            tokens=tokens,
                            by_command={k: v / tokens for k, v in cost.by_command.items()},
                            naive=naive,
                        )
                    )
    return outcomes


def report(
    section: Section,
    shapes: list[Shape],
    outcomes: dict[str, list[Outcome]],
) -> None:
    detail: list[list[str]] = []
    for shape in shapes:
        runs = outcomes[shape.name]

        def med(attr: str, runs: list[Outcome] = runs) -> Repeated:
            return Repeated(tuple(getattr(o, attr) for o in runs))

        cpu, sdk_cpu = med("worker_cpu_per_1k"), med("sdk_cpu_per_1k")
        cpu_ratio = Repeated(tuple(o.worker_cpu_per_1k / o.sdk_cpu_per_1k for o in runs))
        section.add(
            f"worker CPU per 1,000 tokens ({shape.label})",
            fmt(cpu.median * 1000, "ms"),
            fmt(sdk_cpu.median * 1000, "ms (SDK)"),
            fmt(cpu_ratio.median, "x"),
            "<= 1.0x",
            cpu_ratio.median <= 1.0,
            f"ratio {cpu_ratio.spread}",
        )
        same = Repeated(tuple(o.worker_cpu_per_1k / o.sdk_aiohttp_cpu_per_1k for o in runs))
        sdk_aiohttp_cpu = med("sdk_aiohttp_cpu_per_1k")
        section.add(
            f"worker CPU per 1,000 tokens vs the SDK on aiohttp ({shape.label})",
            fmt(cpu.median * 1000, "ms"),
            fmt(sdk_aiohttp_cpu.median * 1000, "ms (SDK, aiohttp)"),
            fmt(same.median, "x"),
            "report",
            None,
            "the worker's HTTP transport is the SDK's aiohttp one (DefaultAioHttpClient); this "
            f"row compares like with like; ratio {same.spread}",
        )
        cmds, calls = med("commands_per_token"), med("script_calls_per_token")
        redis_cpu = med("redis_cpu_per_1k")
        if shape.name == COST_SHAPE:
            naive_cmds = Repeated(tuple(o.naive["commands_per_token"] for o in runs))
            naive_cpu = Repeated(tuple(o.naive["redis_cpu_per_1k"] for o in runs))
            naive_lag99 = Repeated(tuple(o.naive["lag_p99"] for o in runs))
            section.add(
                f"publish.lua calls per token ({shape.label})",
                fmt(calls.median),
                f"{fmt(naive_cmds.median)} XADD (naive relay)",
                fmt(calls.median / naive_cmds.median, "x"),
                "<= 0.3",
                calls.median <= 0.3,
                "the commands the worker sends while streaming, from INFO commandstats (evalsha "
                f"less one start.lua per job); {calls.spread}",
            )
            section.add(
                f"Redis commands run per token, script-internal included ({shape.label})",
                fmt(cmds.median),
                f"{fmt(naive_cmds.median)} (naive relay)",
                fmt(cmds.median / naive_cmds.median, "x"),
                "<= 0.3",
                cmds.median <= 0.3,
                f"by command per token, enqueue.lua's included: {_breakdown(runs)}; {cmds.spread}",
            )
            section.add(
                f"Redis CPU per 1,000 tokens ({shape.label})",
                fmt(redis_cpu.median * 1000, "ms"),
                f"{fmt(naive_cpu.median * 1000, 'ms')} (naive relay)",
                fmt(redis_cpu.median / naive_cpu.median, "x"),
                "report",
                None,
                "redis-server user+system CPU over the batch, subscribers' XREADs included; "
                f"naive relay's subscriber lag p99 {fmt(naive_lag99.median, 'ms')}",
            )
        else:
            high_rate = shape.rate == 0 or shape.rate >= 200
            section.add(
                f"Redis commands per token ({shape.label})",
                fmt(cmds.median),
                "1 (one XADD per token)",
                fmt(cmds.median, "x"),
                "<= 0.2" if high_rate else "-",
                cmds.median <= 0.2 if high_rate else None,
                f"publish.lua calls/token {fmt(calls.median)}; Redis CPU "
                f"{fmt(redis_cpu.median * 1000, 'ms')} per 1,000 tokens; {cmds.spread}",
            )
        if shape.rate:
            lag50, lag99 = med("lag_p50"), med("lag_p99")
            sdk50, sdk99 = med("sdk_lag_p50"), med("sdk_lag_p99")
            added99 = lag99.median - sdk99.median
            section.add(
                f"delivery lag added, p50 / p99 ({shape.label})",
                f"{fmt(lag50.median - sdk50.median, 'ms')} / {fmt(added99, 'ms')}",
                "0 ms",
                "-",
                f"<= {LAG_GOAL_MS:g} ms",
                added99 <= LAG_GOAL_MS,
                f"subscriber lag p50 {fmt(lag50.median, 'ms')} p99 {fmt(lag99.median, 'ms')}; "
                f"SDK p50 {fmt(sdk50.median, 'ms')} p99 {fmt(sdk99.median, 'ms')}",
            )
        single = med("first_entry_single")
        detail.append(
            [
                shape.label,
                f"{sum(o.tokens for o in runs):,}",
                fmt(single.median * 100, "%"),
                fmt(cmds.median),
                fmt(calls.median),
                fmt(med("writes_per_token").median),
                fmt(redis_cpu.median * 1000, "ms"),
            ]
        )
    section.table(
        "Per shape: tokens seen by subscribers, first text entry = exactly the first token "
        "(published at once), Redis commands run, publish.lua calls and text entries per token, "
        "Redis CPU per 1,000 tokens",
        [
            "shape",
            "tokens",
            "first entry single-token",
            "commands/token",
            "calls/token",
            "entries/token",
            "Redis CPU",
        ],
        detail,
    )
    section.raw = {k: [o.__dict__ for o in v] for k, v in outcomes.items()}


def _breakdown(runs: list[Outcome]) -> str:
    """Commands per token by command, the median run's (largest first)."""
    run = sorted(runs, key=lambda o: o.commands_per_token)[len(runs) // 2]
    top = sorted(run.by_command.items(), key=lambda kv: -kv[1])[:6]
    return ", ".join(f"{name} {fmt(n, digits=2)}" for name, n in top)
