"""What the jobs of one worker process share: Redis, scripts, the Anthropic client, running jobs.

A single pub/sub connection delivers cancel requests for every job of the process, and a single
heartbeat task keeps the arq in-progress lease of each running job short while the process lives,
so a dead worker's jobs are picked up again within seconds, whatever their timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from relayq.schemas.constants import (
    CANCEL_CHANNEL,
    cancel_key,
    events_key,
    job_key,
    wake_channel,
    worker_key,
)
from relayq.schemas.events import Error, ErrorInfo
from relayq.schemas.settings import Settings
from relayq.workers import metrics
from relayq.workers.publisher import Fenced, publish_once, write_args
from relayq.workers.scripts import WorkerScripts

if TYPE_CHECKING:  # chat-only workers run without Playwright (the `browser` extra)
    from relayq.workers.browser.pool import BrowserPool

logger = logging.getLogger(__name__)

SIMULATOR_API_KEY = "relayq-simulator"


@dataclass
class RunningJob:
    task: asyncio.Task[object]
    cancel_requested: bool = False


@dataclass
class Runtime:
    redis: Redis
    settings: Settings
    worker_id: str
    scripts: WorkerScripts
    anthropic_client: anthropic.AsyncAnthropic
    running: dict[str, RunningJob] = field(default_factory=dict)
    browser_pool: BrowserPool | None = None
    # cancels that arrived before their job registered here (pub/sub races the start script)
    early_cancels: dict[str, float] = field(default_factory=dict)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _pubsub: PubSub | None = None
    _wake_events: dict[str, asyncio.Event] = field(default_factory=dict)

    @classmethod
    async def start(
        cls, redis: Redis, settings: Settings, *, queues: Sequence[str] = ()
    ) -> Runtime:
        runtime = cls(
            redis=redis,
            settings=settings,
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000) % 100000}",
            scripts=WorkerScripts(redis),
            anthropic_client=anthropic_client(settings),
        )
        runtime._wake_events = {wake_channel(q): asyncio.Event() for q in queues}
        runtime._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        await runtime._pubsub.subscribe(*runtime._channels())
        runtime._background = [
            asyncio.create_task(runtime._listen_for_cancels(), name="relayq:cancels"),
            asyncio.create_task(runtime._heartbeat(), name="relayq:heartbeat"),
        ]
        return runtime

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self.redis.delete(worker_key(self.worker_id))
        await self.anthropic_client.close()
        if self.browser_pool is not None:
            await self.browser_pool.aclose()

    def wake_event(self, queue: str) -> asyncio.Event:
        """Set whenever a job is enqueued on `queue`."""
        return self._wake_events[wake_channel(queue)]

    def _channels(self) -> list[str]:
        return [CANCEL_CHANNEL, *self._wake_events]

    @contextlib.contextmanager
    def track(self, job_id: str) -> Iterator[RunningJob]:
        """Registers the current task as the runner of `job_id` so a cancel can reach it."""
        task = asyncio.current_task()
        assert task is not None
        running = RunningJob(task=task)
        self.running[job_id] = running
        early = self.early_cancels.pop(job_id, None)
        if early is not None and time.monotonic() - early < 30:
            self.request_cancel(job_id)
        try:
            yield running
        finally:
            if self.running.get(job_id) is running:
                del self.running[job_id]

    def request_cancel(self, job_id: str) -> bool:
        running = self.running.get(job_id)
        if running is None or running.task.done():
            self._remember_early_cancel(job_id)
            return False
        running.cancel_requested = True
        running.task.cancel()
        return True

    async def store_blob(self, job_id: str, attempt: int, data: bytes) -> int:
        """Stores bytes (a screenshot) under the job's key space; returns the blob number."""
        # until the terminal event shortens it, a blob outlives the longest possible attempt
        ttl = int(self.settings.job_timeout_s) + self.settings.stream_ttl_s
        n: int = await self.scripts.call(
            "blob", [job_key(job_id)], [str(attempt), data, ttl, job_id]
        )
        if n < 0:
            raise Fenced(job_id)
        return n

    async def reject(self, job_id: str, message: str, *, kind: str = "invalid_request") -> None:
        """Ends a job that never reached a job function with an `error` event, if it exists."""
        raw: bytes | None = await self.redis.hget(job_key(job_id), "attempt")  # type: ignore[misc]
        if raw is None:
            logger.warning("dropped queue entry %r: no such job", job_id)
            return
        attempt = raw.decode()
        error = Error(
            job_id=job_id,
            attempt=int(attempt),
            error=ErrorInfo(type=kind, message=message),
        )
        await publish_once(
            self.scripts,
            [job_key(job_id), events_key(job_id), cancel_key(job_id)],
            write_args(
                attempt=int(attempt),
                maxlen=self.settings.stream_maxlen,
                status="error",
                ttl_s=self.settings.stream_ttl_s,
                usage_json="",
                seq="",
                events=[error.model_dump_json()],
            ),
        )

    def _sample_queues(self, queues: list[str], replies: list[Any]) -> None:
        now_ms = time.time() * 1000
        for i, queue in enumerate(queues):
            depth, oldest = replies[2 * i], replies[2 * i + 1]
            metrics.QUEUE_DEPTH.labels(queue).set(depth)
            metrics.OLDEST_AGE.labels(queue).set((now_ms - oldest[0][1]) / 1000 if oldest else 0)
        if self.browser_pool is not None:
            metrics.CONTEXTS_LIVE.set(self.browser_pool.contexts_live)

    def _remember_early_cancel(self, job_id: str) -> None:
        now = time.monotonic()
        if len(self.early_cancels) > 10_000:
            self.early_cancels = {k: t for k, t in self.early_cancels.items() if now - t < 60}
        self.early_cancels[job_id] = now

    async def _listen_for_cancels(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    channel = message["channel"].decode()
                    if channel == CANCEL_CHANNEL:
                        job_id = message["data"].decode()
                        if self.request_cancel(job_id):
                            logger.info("cancel requested for running job %s", job_id)
                    elif (wake := self._wake_events.get(channel)) is not None:
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("cancel listener lost its connection; resubscribing")
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    await self._pubsub.subscribe(*self._channels())

    def describe(self) -> dict[str, object]:
        """What `relayq status` shows of this worker; refreshed in Redis by the heartbeat."""
        pool = self.browser_pool
        return {
            "id": self.worker_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": [q.removesuffix(":wake") for q in self._wake_events],
            "running": sorted(self.running),
            "ts": time.time(),
            "browser": None
            if pool is None
            else {
                "contexts_live": pool.contexts_live,
                "warm": pool.warm_count,
                "leases_served": pool.leases_served,
                "relaunches": pool.relaunches,
            },
        }

    async def _heartbeat(self) -> None:
        lease_ms = int(self.settings.lease_s * 1000)
        interval = self.settings.lease_s / 3
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for job_id in self.running:
                        pipe.pexpire(in_progress_key_prefix + job_id, lease_ms)
                    pipe.set(
                        worker_key(self.worker_id),
                        json.dumps(self.describe()),
                        px=int(interval * 3000),
                    )
                    queues = (
                        [q.removesuffix(":wake") for q in self._wake_events]
                        if metrics.serving()
                        else []
                    )
                    for queue in queues:
                        pipe.zcard(queue)
                        pipe.zrangebyscore(
                            queue, "-inf", int(time.time() * 1000), start=0, num=1, withscores=True
                        )
                    replies = await pipe.execute()
                self._sample_queues(queues, replies[-2 * len(queues) :] if queues else [])
            except Exception:
                logger.warning("heartbeat could not reach redis", exc_info=True)
            await asyncio.sleep(interval)


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic:
    """One client per worker process, SDK retries off: relayq is the only retry layer."""
    api_key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    if api_key is None and settings.anthropic_base_url is None:
        raise ValueError(
            "no Anthropic API: set ANTHROPIC_API_KEY, or ANTHROPIC_BASE_URL to a simulator "
            "(`relayq simulator`)"
        )
    return anthropic.AsyncAnthropic(
        api_key=api_key or SIMULATOR_API_KEY,
        base_url=settings.anthropic_base_url,
        max_retries=0,
        http_client=httpx2.AsyncClient(
            timeout=httpx2.Timeout(60.0, connect=10.0),
            limits=httpx2.Limits(
                max_connections=2000, max_keepalive_connections=200, keepalive_expiry=120
            ),
        ),
    )
