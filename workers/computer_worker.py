"""The arq entry point for browser jobs:

    arq relayq.workers.computer_worker.ComputerWorkerSettings

Its own module, so that importing the chat entry point (relayq.workers.worker) never loads
Playwright."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings

from relayq.schemas.constants import COMPUTER_QUEUE
from relayq.schemas.settings import Settings
from relayq.workers.browser.pool import BrowserPool
from relayq.workers.runtime import Runtime
from relayq.workers.worker import json_deserializer, json_serializer, queue_functions


class ComputerWorkerSettings:
    """Browser jobs, on their own queue so that their long timeouts never touch the chat
    queue's workers."""

    functions = queue_functions("computer", Settings())
    queue_name = COMPUTER_QUEUE
    job_serializer = staticmethod(json_serializer)
    job_deserializer = staticmethod(json_deserializer)
    keep_result = 0
    allow_abort_jobs = False
    max_jobs = Settings().computer_max_jobs
    redis_settings = RedisSettings.from_dsn(Settings().redis_url or "redis://localhost:6379")

    @staticmethod
    async def on_startup(ctx: dict[str, Any]) -> None:
        runtime = await Runtime.start(ctx["redis"], Settings(), queues=[COMPUTER_QUEUE])
        runtime.browser_pool = BrowserPool(size=Settings().browser_pool_size)
        await runtime.browser_pool.start()
        ctx["relayq"] = runtime

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await ctx["relayq"].aclose()
