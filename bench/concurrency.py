"""4. Concurrency: one worker process with N concurrent streaming jobs (50 tokens/s each).

For each N: a fresh worker (RELAYQ_MAX_JOBS=N), N jobs enqueued at once, subscribers reading every
stream (50 streams per XREAD connection). Reported: subscriber lag against the simulator's
schedule (see bench.streaming), the start spread (how long until the last job's first token),
the worker's RSS growth per running job, and every process's CPU share over the run so that the
bottleneck is named: the worker, the simulator (its own process), Redis, or the subscribers
(this process).
"""

from __future__ import annotations

import asyncio
import time

import psutil  # type: ignore[import-untyped,unused-ignore]

from bench.common import (
    BenchContext,
    CpuSampler,
    Dist,
    Section,
    Track,
    chat_job,
    fmt,
    processes,
    redis_server,
    start_relayq_worker,
    submit_all,
    watch_streams,
)
from bench.streaming import Shape, sdk_run
from relayq.client import Client
from relayq.schemas.settings import Settings

RATE = 50.0


async def one_level(ctx: BenchContext, n: int, tokens: int) -> dict[str, float]:
    with redis_server() as server, processes() as procs:
        worker = start_relayq_worker(server.url, ctx.simulator_url, max_jobs=n)
        procs.append(worker)
        settings = Settings(redis_url=server.url, stream_ttl_s=600)
        async with Client(settings=settings) as client:
            # warm-up: imports on first use, HTTP pool, scripts
            warm = [chat_job(5, 0)]
            await watch_tracks(server.url, client, warm, 0)
            await asyncio.sleep(0.3)
            rss_idle = worker.rss()
            redis_proc = psutil.Process(server.process.pid)  # type: ignore[union-attr]
            sampler = CpuSampler(
                {
                    "worker": worker.ps,
                    "simulator": ctx.simulator.ps,
                    "redis": redis_proc,
                    "subscribers": psutil.Process(),
                }
            )
            jobs = [chat_job(tokens, RATE) for _ in range(n)]
            peak_rss = 0

            async def sample_rss() -> None:
                nonlocal peak_rss
                while True:
                    peak_rss = max(peak_rss, worker.rss())
                    await asyncio.sleep(0.1)

            sampler.start()
            sampler_task = asyncio.create_task(sample_rss())
            t0 = time.perf_counter()
            try:
                tracks = await watch_tracks(server.url, client, jobs, RATE)
            finally:
                sampler_task.cancel()
            wall = time.perf_counter() - t0
            shares = sampler.shares()
    sdk = await asyncio.to_thread(sdk_run, ctx.simulator_url, Shape("sdk", n, tokens, RATE))
    lags = [x for t in tracks.values() for x in t.lags]
    d = Dist.of(lags)
    firsts = [t.first for t in tracks.values() if t.first == t.first]
    tokens = sum(t.tokens for t in tracks.values())
    ok = sum(t.terminal == "done" for t in tracks.values())
    return {
        "n": n,
        "lag_p50": d.p50,
        "lag_p99": d.p99,
        "lag_max": d.max,
        "start_spread_s": (max(firsts) - min(firsts)) if firsts else float("nan"),
        "rss_per_job_kib": (peak_rss - rss_idle) / n / 1024,
        "rss_idle_mib": rss_idle / 2**20,
        "wall_s": wall,
        "done": ok,
        "tokens": tokens,
        "sdk_lag_p50": sdk["lag_p50_ms"],
        "sdk_lag_p99": sdk["lag_p99_ms"],
        "sdk_cpu_share": sdk["cpu_s"] / sdk["wall_s"],
        "worker_sdk_cpu_ratio": (shares["worker"] * wall / max(tokens, 1))
        / (sdk["cpu_s"] / max(sdk["tokens"], 1)),
        **{f"cpu_{k}": v for k, v in shares.items()},
    }


async def watch_tracks(
    url: str, client: Client, jobs: list[object], rate: float
) -> dict[str, Track]:
    interval = 1.0 / rate if rate else 0.0
    tracks = {j.id: Track(interval) for j in jobs}  # type: ignore[attr-defined]
    watcher = asyncio.create_task(watch_streams(url, tracks, limit_s=180))
    await asyncio.sleep(0.05)
    await submit_all(client, jobs)
    await watcher
    return tracks


def bottleneck(r: dict[str, float]) -> str:
    shares = {k.removeprefix("cpu_"): v for k, v in r.items() if k.startswith("cpu_")}
    top = max(shares, key=lambda k: shares[k])
    text = ", ".join(f"{k} {v * 100:.0f}%" for k, v in shares.items())
    return f"{text} -> {top}" + (" saturated" if shares[top] >= 0.85 else "")


async def run(ctx: BenchContext) -> Section:
    section = Section("concurrency", "4. Concurrency: one worker, N streaming jobs at 50 tok/s")
    levels = ctx.pick([50, 200], [50, 200, 500, 1000])
    tokens = ctx.pick(40, 150)
    results = [await one_level(ctx, n, tokens) for n in levels]
    for r in results:
        n = int(r["n"])
        goal, met = "-", None
        if n == 200:
            goal, met = "p99 <= 100 ms", r["lag_p99"] <= 100
        elif n == 500:
            goal, met = "p99 < bare SDK's p99", r["lag_p99"] < r["sdk_lag_p99"]
        section.add(
            f"N={n}: subscriber lag p50 / p99",
            f"{fmt(r['lag_p50'], 'ms')} / {fmt(r['lag_p99'], 'ms')}",
            f"{fmt(r['sdk_lag_p50'], 'ms')} / {fmt(r['sdk_lag_p99'], 'ms')} (bare SDK, same N)",
            fmt(r["lag_p99"] / r["sdk_lag_p99"], "x"),
            goal,
            met,
            f"max {fmt(r['lag_max'], 'ms')}; {int(r['done'])}/{n} done; worker CPU per token "
            f"{fmt(r['worker_sdk_cpu_ratio'], 'x')} the bare SDK's",
        )
    table = []
    for r in results:
        table.append(
            [
                f"{int(r['n'])}",
                fmt(r["lag_p50"], "ms"),
                fmt(r["lag_p99"], "ms"),
                f"{fmt(r['sdk_lag_p99'], 'ms')} (CPU {r['sdk_cpu_share'] * 100:.0f}%)",
                fmt(r["start_spread_s"], "s"),
                fmt(r["rss_per_job_kib"], "KiB"),
                fmt(r["tokens"] / r["wall_s"], "tok/s"),
                fmt(r["worker_sdk_cpu_ratio"], "x"),
                bottleneck(r),
            ]
        )
    section.table(
        f"Per N ({tokens} tokens per job at 50 tok/s; CPU share: 100% = one core)",
        [
            "N",
            "lag p50",
            "lag p99",
            "bare SDK lag p99 (its CPU)",
            "first-token spread",
            "worker RSS per job",
            "tokens/s delivered",
            "worker CPU per token / SDK's",
            "CPU shares -> busiest",
        ],
        table,
    )
    knee = next((r for r in results if r["lag_p99"] > 100), None)
    section.notes.append(
        "Knee (first N whose p99 lag exceeds 100 ms): "
        + (f"N={int(knee['n'])}." if knee else f"not reached up to N={levels[-1]}.")
        + f" Worker idle RSS {fmt(results[0]['rss_idle_mib'], 'MiB')}."
    )
    section.raw = {"levels": results}
    return section
