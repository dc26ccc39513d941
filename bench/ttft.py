"""2. Time to first token seen by a subscriber vs the bare anthropic SDK, same simulator, same run.

SDK: `messages.create(stream=True)` on a reused AsyncAnthropic client, clock from just before the
call to the first `text_delta`. relayq: clock from just before `Client.submit` to the first `text`
event a subscriber (`Client.events`, XREAD BLOCK) receives; the job is picked up, started,
requested from the simulator, published and read back. Samples alternate SDK / relayq so that
machine load hits both alike.
"""

from __future__ import annotations

import asyncio
import random
import time

import anthropic

from bench.common import (
    BenchContext,
    Dist,
    Repeated,
    Section,
    chat_job,
    fmt,
    processes,
    redis_server,
    sim_prompt,
    start_relayq_worker,
)
from relayq.client import Client
from relayq.schemas.settings import Settings

TOKENS = 8
RATE = 50.0


async def sdk_ttft(client: anthropic.AsyncAnthropic) -> float:
    t0 = time.perf_counter()
    first = float("nan")
    stream = await client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=TOKENS + 64,
        messages=[{"role": "user", "content": sim_prompt(TOKENS, RATE)}],
        stream=True,
    )
    async for event in stream:
        if (
            first != first
            and event.type == "content_block_delta"
            and event.delta.type == "text_delta"
        ):
            first = (time.perf_counter() - t0) * 1000
    return first


async def llm_ttft(client: anthropic.AsyncAnthropic) -> float:
    """The worker's model layer alone, in this process: llm.LLM on a shared SDK client, from
    building the LLM and its ChatContext to the first ChatChunk with text."""
    from livekit.agents import APIConnectOptions
    from livekit.agents.llm import ChatContext

    from relayq.llm import LLM

    t0 = time.perf_counter()
    model = LLM(model="claude-sonnet-4-6", client=client, max_tokens=TOKENS + 64)
    chat_ctx = ChatContext()
    chat_ctx.add_message(role="user", content=sim_prompt(TOKENS, RATE))
    first = float("nan")
    stream = model.chat(chat_ctx=chat_ctx, conn_options=APIConnectOptions(max_retry=0))
    try:
        async with stream:
            async for chunk in stream:
                if first != first and chunk.delta is not None and chunk.delta.content:
                    first = (time.perf_counter() - t0) * 1000
    finally:
        await model.aclose()
    return first


STAGES = ("enqueue -> started", "started -> first text event", "text event -> subscriber")


async def relayq_ttft(client: Client, stages: dict[str, list[float]] | None = None) -> float:
    job = chat_job(TOKENS, RATE)
    t0 = time.perf_counter()
    wall0 = time.time()
    await client.submit(job)
    first = float("nan")
    started_ts = float("nan")
    async for entry in client.events(job.id):
        if entry.event.type == "started":
            started_ts = entry.event.ts
        if first != first and entry.event.type == "text":
            first = (time.perf_counter() - t0) * 1000
            seen = time.time()
            if stages is not None:
                text_ts = entry.event.ts
                for name, value in zip(
                    STAGES,
                    (started_ts - wall0, text_ts - started_ts, seen - text_ts),
                    strict=True,
                ):
                    stages[name].append(value * 1000)
    return first


async def run(ctx: BenchContext) -> Section:
    section = Section("ttft", "2. Time to first token seen by a subscriber")
    n = ctx.pick(10, 60)
    repeats = ctx.pick(1, 3)
    sdk_runs: list[list[float]] = []
    rq_runs: list[list[float]] = []
    llm_samples: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    with redis_server() as server, processes() as procs:
        procs.append(start_relayq_worker(server.url, ctx.simulator_url))
        sdk = anthropic.AsyncAnthropic(
            base_url=ctx.simulator_url, api_key="sk-bench", max_retries=0
        )
        settings = Settings(redis_url=server.url, stream_ttl_s=600)
        try:
            async with Client(settings=settings) as client:
                await relayq_ttft(client)  # warm-up: worker's HTTP connection, script cache
                await sdk_ttft(sdk)
                await llm_ttft(sdk)
                for _ in range(repeats):
                    sdk_samples: list[float] = []
                    rq_samples: list[float] = []
                    for _ in range(n):
                        sdk_samples.append(await sdk_ttft(sdk))
                        await asyncio.sleep(random.uniform(0.01, 0.03))
                        rq_samples.append(await relayq_ttft(client, stages))
                        await asyncio.sleep(random.uniform(0.01, 0.03))
                        llm_samples.append(await llm_ttft(sdk))
                        await asyncio.sleep(random.uniform(0.01, 0.03))
                    sdk_runs.append(sdk_samples)
                    rq_runs.append(rq_samples)
        finally:
            await sdk.close()

    sdk_d = Dist.of([x for r in sdk_runs for x in r])
    rq_d = Dist.of([x for r in rq_runs for x in r])
    added = Repeated(
        tuple(Dist.of(r).p50 - Dist.of(s).p50 for r, s in zip(rq_runs, sdk_runs, strict=True))
    )
    section.add(
        "TTFT p50",
        fmt(rq_d.p50, "ms"),
        fmt(sdk_d.p50, "ms"),
        fmt(rq_d.p50 / sdk_d.p50, "x"),
        "-",
        None,
        f"n={rq_d.n} each",
    )
    section.add(
        "TTFT p99",
        fmt(rq_d.p99, "ms"),
        fmt(sdk_d.p99, "ms"),
        fmt(rq_d.p99 / sdk_d.p99, "x"),
        "-",
        None,
    )
    section.add(
        "added by relayq (p50 - SDK p50)",
        fmt(rq_d.p50 - sdk_d.p50, "ms"),
        "0 ms",
        "-",
        "<= 10 ms",
        rq_d.p50 - sdk_d.p50 <= 10,
        f"per-run added p50: {added.spread}",
    )
    section.add(
        "added by relayq at p99",
        fmt(rq_d.p99 - sdk_d.p99, "ms"),
        "0 ms",
        "-",
        "-",
        None,
    )
    section.table(
        "Where relayq's TTFT goes (worker and subscriber clocks are the same machine's)",
        ["stage", "p50", "p90", "p99"],
        [
            [name, fmt(d.p50, "ms"), fmt(d.p90, "ms"), fmt(d.p99, "ms")]
            for name, d in ((name, Dist.of(v)) for name, v in stages.items())
        ]
        + [
            [
                "llm.LLM in-process (the worker's model layer): build -> first text chunk",
                fmt(Dist.of(llm_samples).p50, "ms"),
                fmt(Dist.of(llm_samples).p90, "ms"),
                fmt(Dist.of(llm_samples).p99, "ms"),
            ],
            [
                "bare SDK: request -> first text_delta",
                fmt(sdk_d.p50, "ms"),
                fmt(sdk_d.p90, "ms"),
                fmt(sdk_d.p99, "ms"),
            ],
        ],
    )
    section.notes.append(
        "relayq's TTFT includes, after the SDK's part: the enqueue script, the wake-up and "
        "pickup (benchmark 1), arq's job fetch, the start script, building the LLM and its "
        "ChatContext, publishing the first delta at once, and the subscriber's XREAD wake-up."
    )
    section.raw = {"sdk": sdk_runs, "relayq": rq_runs, "stages": stages, "llm": llm_samples}
    return section
