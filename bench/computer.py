"""7. Computer use: per-step overhead, warm lease vs cold launch, memory per browser context,
and Redis memory per screenshot.

One step as the computer job runs it: `ComputerTool.tool_result` (action, settle, screenshot,
base64 image block) plus publishing (blob.lua stores the PNG, an `action` and a `screenshot`
event are appended through the Publisher). Baseline: a bare Playwright `page.screenshot()` of the
same page. The demo page (relayq/static/demo_signup.html) comes from relayq.static_server; the
browser is the pool's Chromium (relayq.workers.browser.pool.BrowserPool).

Browser memory is PSS (proportional set size) summed over Chromium's processes, so memory shared
between them is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
from playwright.async_api import async_playwright
from redis.asyncio import Redis

from bench.common import (
    BenchContext,
    Dist,
    Section,
    fmt,
    redis_client,
    redis_server,
    used_memory,
)
from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import ImageFormat, PageActions, launch_chromium
from relayq.schemas.constants import blobs_key, job_key
from relayq.schemas.events import Action, Screenshot
from relayq.static_server import serve_directory
from relayq.workers.browser.policy import NetworkPolicy
from relayq.workers.browser.pool import BrowserPool
from relayq.workers.publisher import Publisher
from relayq.workers.scripts import WorkerScripts

TARGETS = ((940, 236), (940, 316))  # the demo page's Name and Email fields
LOCAL = NetworkPolicy(allow_private_network=True)  # the demo page is served on loopback


def pss_of(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            total += int(getattr(info, "pss", info.rss))
    return total


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = await fn()
    return (time.perf_counter() - t0) * 1000, value


async def publish_step(
    redis: Redis, scripts: WorkerScripts, publisher: Publisher, job_id: str, step: int, image: bytes
) -> None:
    blob = await scripts.call("blob", [job_key(job_id), blobs_key(job_id)], ["1", image, 600])
    publisher.emit(
        Action(
            job_id=job_id,
            attempt=1,
            step=step,
            tool_use_id=f"toolu_{step}",
            action="left_click",
            input={"action": "left_click", "coordinate": list(TARGETS[step % 2])},
        )
    )
    publisher.emit(
        Screenshot(
            job_id=job_id,
            attempt=1,
            step=step,
            blob=int(blob),
            media_type="image/png",
            width=1280,
            height=720,
            size=len(image),
        )
    )
    await publisher.flush()


FORMATS: tuple[tuple[ImageFormat, int | None], ...] = (("png", None), ("jpeg", 80), ("webp", 80))


async def measure_steps(
    pool: BrowserPool,
    url: str,
    redis: Redis,
    scripts: WorkerScripts,
    publisher: Publisher,
    job_id: str,
    steps: int,
    image_format: ImageFormat,
    quality: int | None,
) -> tuple[Dist, Dist, dict[str, list[float]], bytes]:
    async with pool.lease(policy=LOCAL) as lease:
        actions = PageActions(page=lease.page, image_format=image_format, image_quality=quality)
        tool = ComputerTool(actions=actions, width=1280, height=720)
        await actions.navigate(url)
        await actions.settle()
        await actions.screenshot()
        bare: list[float] = []
        step_total: list[float] = []
        parts: dict[str, list[float]] = {
            "action (click)": [],
            "settle": [],
            "screenshot": [],
            "publish (blob.lua + 2 events)": [],
        }
        image = b""
        for i in range(steps):
            x, y = TARGETS[i % 2]
            ms, _ = await timed(
                lambda: lease.page.screenshot(
                    type=image_format, quality=None if image_format == "png" else quality
                )
            )
            bare.append(ms)
            t_step = time.perf_counter()
            await tool.tool_result(f"toolu_{i}", {"action": "left_click", "coordinate": [x, y]})
            image = actions.last_frame or b""
            await publish_step(redis, scripts, publisher, job_id, i + 1, image)
            step_total.append((time.perf_counter() - t_step) * 1000)
            # the same step again, piece by piece
            x, y = TARGETS[(i + 1) % 2]
            t0 = time.perf_counter()
            await actions.left_click(x, y)
            t1 = time.perf_counter()
            await actions.settle()
            t2 = time.perf_counter()
            await actions.screenshot()
            t3 = time.perf_counter()
            await publish_step(redis, scripts, publisher, job_id, 1000 + i, image)
            t4 = time.perf_counter()
            for name, start, end in (
                ("action (click)", t0, t1),
                ("settle", t1, t2),
                ("screenshot", t2, t3),
                ("publish (blob.lua + 2 events)", t3, t4),
            ):
                parts[name].append((end - start) * 1000)
        await tool.aclose()
    return Dist.of(step_total), Dist.of(bare), parts, image


async def run(ctx: BenchContext) -> Section:
    section = Section("computer", "7. Computer use: step overhead, leases, memory")
    steps = ctx.pick(5, 40)
    leases = ctx.pick(3, 15)
    colds = ctx.pick(1, 5)
    contexts = ctx.pick(2, 8)
    raw: dict[str, Any] = {}
    with redis_server() as server, serve_directory() as base_url:
        url = f"{base_url}/demo_signup.html"
        async with redis_client(server.url) as redis:
            scripts = WorkerScripts(redis)
            job_id = "bench_computer"
            await redis.hset(job_key(job_id), mapping={"status": "running", "attempt": "1"})  # type: ignore[misc]
            publisher = Publisher(
                redis, scripts, job_id=job_id, attempt=1, maxlen=100_000, ttl_s=600
            )
            t0 = time.perf_counter()
            pool = BrowserPool(size=2)
            await pool.start()
            pool_start_ms = (time.perf_counter() - t0) * 1000
            try:
                # -- per-step overhead, in one leased context on the demo page, per format
                image = b""
                for fmt_name, quality in FORMATS:
                    step_d, bare_d, parts, last = await measure_steps(
                        pool, url, redis, scripts, publisher, job_id, steps, fmt_name, quality
                    )
                    if fmt_name == "png":
                        image = last
                    label = fmt_name + (f" q{quality}" if quality else "")
                    section.add(
                        f"step ({label}): action + settle + screenshot + publish, p50",
                        fmt(step_d.p50, "ms"),
                        fmt(bare_d.p50, "ms (bare screenshot)"),
                        fmt(step_d.p50 / bare_d.p50, "x"),
                        "report",
                        None,
                        f"n={step_d.n}; p90 {fmt(step_d.p90, 'ms')} vs {fmt(bare_d.p90, 'ms')}; "
                        f"overhead {fmt(step_d.p50 - bare_d.p50, 'ms')} per step; "
                        f"image {fmt(len(last) / 1024, 'KiB')}",
                    )
                    section.table(
                        f"One {label} step, piece by piece (p50 / p90)",
                        ["piece", "p50", "p90"],
                        [
                            [name, fmt(Dist.of(v).p50, "ms"), fmt(Dist.of(v).p90, "ms")]
                            for name, v in parts.items()
                        ]
                        + [
                            [
                                "bare page.screenshot() (baseline)",
                                fmt(bare_d.p50, "ms"),
                                fmt(bare_d.p90, "ms"),
                            ]
                        ],
                    )
                    raw[label] = {"parts": parts, "step": step_d.p50, "bare": bare_d.p50}
                await publisher.aclose()

                # -- lease from the warm pool vs cold launch
                warm: list[float] = []
                for _ in range(leases):
                    await pool.settle()
                    t0 = time.perf_counter()
                    async with pool.lease(policy=LOCAL) as lease:
                        warm.append((time.perf_counter() - t0) * 1000)
                        await lease.page.goto(url)
                await pool.settle()

                # -- memory per live context (PSS over Chromium's processes)
                await asyncio.sleep(0.5)
                base_pss = pss_of(pool.browser_pids())
                async with contextlib.AsyncExitStack() as stack:
                    for _ in range(contexts):
                        lease = await stack.enter_async_context(pool.lease(policy=LOCAL))
                        await lease.page.goto(url)
                    await pool.settle()
                    await asyncio.sleep(0.5)
                    loaded_pss = pss_of(pool.browser_pids())
                per_context = (loaded_pss - base_pss) / contexts
            finally:
                await pool.aclose()

            cold: list[float] = []
            async with async_playwright() as playwright:
                for _ in range(colds):
                    t0 = time.perf_counter()
                    browser = await launch_chromium(playwright)
                    context = await browser.new_context(viewport={"width": 1280, "height": 720})
                    await context.new_page()
                    cold.append((time.perf_counter() - t0) * 1000)
                    await browser.close()

            # -- Redis memory per screenshot (the PNG just taken, stored as the job does)
            blob_job = "bench_blobs"
            await redis.hset(job_key(blob_job), mapping={"status": "running", "attempt": "1"})  # type: ignore[misc]
            k = 50
            mem0 = await used_memory(redis)
            for _ in range(k):
                await scripts.call(
                    "blob", [job_key(blob_job), blobs_key(blob_job)], ["1", image, 600]
                )
            per_shot = (await used_memory(redis) - mem0) / k

    warm_d, cold_d = Dist.of(warm), Dist.of(cold)
    section.add(
        "context lease from the warm pool, p50",
        fmt(warm_d.p50, "ms"),
        fmt(cold_d.p50, "ms (cold launch)"),
        fmt(warm_d.p50 / cold_d.p50, "x"),
        "report",
        None,
        f"n={warm_d.n} leases / {cold_d.n} cold launches (browser + context + page); "
        f"pool start with 2 warm contexts {fmt(pool_start_ms, 'ms')}",
    )
    section.add(
        "memory per live browser context (demo page loaded)",
        fmt(per_context / 2**20, "MiB"),
        fmt(base_pss / 2**20, "MiB (browser + 2 warm)"),
        "-",
        "report",
        None,
        f"PSS over Chromium's processes, {contexts} contexts",
    )
    section.add(
        "Redis memory per screenshot (1280x720 PNG)",
        fmt(per_shot / 1024, "KiB"),
        fmt(len(image) / 1024, "KiB (image bytes)"),
        fmt(per_shot / max(len(image), 1), "x"),
        "report",
        None,
        "blob.lua: a field of the job's blobs hash, as the computer job stores it",
    )
    raw.update(warm_ms=warm, cold_ms=cold, per_context=per_context, per_shot=per_shot)
    section.raw = raw
    return section
