"""What the jobs of one worker process share: Redis, scripts, the Anthropic client, running jobs.

A single pub/sub connection delivers cancel requests for every job of the process and the wake-ups
of its queues (on a cluster, from any one node: classic pub/sub reaches them all; after a
connection error it subscribes again, elsewhere if need be). A heartbeat task keeps the worker's
self-description fresh for `relayq status` and samples queue metrics; each queue's worker loop
renews its own leases (relayq.workers.worker).
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
from redis.asyncio import Redis

from relayq.connection import Ack, pubsub
from relayq.schemas.constants import (
    CANCEL_CHANNEL,
    QueueKeys,
    blobs_key,
    job_key,
    job_slot_keys,
    worker_key,
)
from relayq.schemas.events import Error, ErrorInfo
from relayq.schemas.settings import Settings
from relayq.workers import metrics
from relayq.workers.publisher import Fenced, WriteBatcher, publish_once, write_args
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
    ack: Ack = field(default_factory=Ack)
    """What a terminal event needs before the worker releases its job (RELAYQ_REDIS_URL)."""
    running: dict[str, RunningJob] = field(default_factory=dict)
    browser_pool: BrowserPool | None = None
    # cancels that arrived before their job registered here (pub/sub races the start script)
    early_cancels: dict[str, float] = field(default_factory=dict)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _queues: list[QueueKeys] = field(default_factory=list)
    _wake_events: dict[str, asyncio.Event] = field(default_factory=dict)

    @classmethod
    async def start(
        cls,
        redis: Redis,
        settings: Settings,
        *,
        queues: Sequence[QueueKeys] = (),
        ack: Ack | None = None,
    ) -> Runtime:
        runtime = cls(
            redis=redis,
            settings=settings,
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000) % 100000}",
            scripts=WorkerScripts(redis),
            anthropic_client=anthropic_client(settings),
            ack=ack or Ack(),
        )
        runtime._queues = list(queues)
        runtime._wake_events = {q.wake: asyncio.Event() for q in queues}
        subscribed = asyncio.Event()
        runtime._background = [
            asyncio.create_task(runtime._listen(subscribed), name="relayq:pubsub"),
            asyncio.create_task(runtime._heartbeat(), name="relayq:heartbeat"),
        ]
        # ready only once wake-ups and cancels reach this process
        await asyncio.wait_for(subscribed.wait(), timeout=30)
        return runtime

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.redis.delete(worker_key(self.worker_id))
        await WriteBatcher.close(self.redis)
        await self.anthropic_client.close()
        if self.browser_pool is not None:
            await self.browser_pool.aclose()

    def wake_event(self, queue: QueueKeys) -> asyncio.Event:
        """Set whenever a job becomes due at once on `queue`."""
        return self._wake_events[queue.wake]

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
            "blob", [job_key(job_id), blobs_key(job_id)], [str(attempt), data, ttl]
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
            job_slot_keys(job_id),
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

    def _sample_queues(self, queues: list[QueueKeys], replies: list[Any]) -> None:
        now_ms = time.time() * 1000
        for i, queue in enumerate(queues):
            depth, oldest = replies[2 * i], replies[2 * i + 1]
            metrics.QUEUE_DEPTH.labels(queue.name).set(depth)
            metrics.OLDEST_AGE.labels(queue.name).set(
                (now_ms - oldest[0][1]) / 1000 if oldest else 0
            )
        if self.browser_pool is not None:
            metrics.CONTEXTS_LIVE.set(self.browser_pool.contexts_live)

    def _remember_early_cancel(self, job_id: str) -> None:
        now = time.monotonic()
        if len(self.early_cancels) > 10_000:
            self.early_cancels = {k: t for k, t in self.early_cancels.items() if now - t < 60}
        self.early_cancels[job_id] = now

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """Cancel requests and wake-ups, for the life of the process."""
        while True:
            channel = pubsub(self.redis)
            try:
                await channel.subscribe(*self._channels())
                if subscribed.is_set():
                    # wake-ups may have been missed while away: every queue looks again
                    for wake in self._wake_events.values():
                        wake.set()
                subscribed.set()
                async for message in channel.listen():
                    if message.get("type") != "message":
                        continue
                    name = message["channel"].decode()
                    if name == CANCEL_CHANNEL:
                        job_id = message["data"].decode()
                        if self.request_cancel(job_id):
                            logger.info("cancel requested for running job %s", job_id)
                    elif (woken := self._wake_events.get(name)) is not None:
                        woken.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("pub/sub connection lost; subscribing again")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await channel.aclose()  # type: ignore[no-untyped-call]

    def describe(self) -> dict[str, object]:
        """What `relayq status` shows of this worker; refreshed in Redis by the heartbeat."""
        pool = self.browser_pool
        return {
            "id": self.worker_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": [q.waiting for q in self._queues],
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
        interval = self.settings.lease_s / 3
        failing = False
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(
                        worker_key(self.worker_id),
                        json.dumps(self.describe()),
                        px=int(interval * 3000),
                    )
                    queues = self._queues if metrics.serving() else []
                    for queue in queues:
                        pipe.zcard(queue.waiting)
                        pipe.zrangebyscore(
                            queue.waiting,
                            "-inf",
                            int(time.time() * 1000),
                            start=0,
                            num=1,
                            withscores=True,
                        )
                    replies = await pipe.execute()
                self._sample_queues(queues, replies[-2 * len(queues) :] if queues else [])
                failing = False
            except Exception as e:
                if not failing:  # once per outage
                    logger.warning("heartbeat could not reach redis: %s", e)
                failing = True
            await asyncio.sleep(interval)


def anthropic_client(settings: Settings) -> anthropic.AsyncAnthropic:
    """One client per worker process, SDK retries off: relayq is the only retry layer.

    Its transport is the SDK's aiohttp one (`DefaultAioHttpClient`), which maps aiohttp's errors
    to httpx's, so the SDK and `llm.errors` see the same ones. The default httpx transport opens
    an anyio cancel scope and a timer on every socket read; at 50 tokens/s every token is a read
    of its own, and the aiohttp transport cut the worker's CPU per token there by about a third
    (bench section 3 measures the bare SDK on both transports)."""
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
        http_client=anthropic.DefaultAioHttpClient(
            timeout=httpx2.Timeout(60.0, connect=10.0),
            limits=httpx2.Limits(
                max_connections=2000, max_keepalive_connections=200, keepalive_expiry=120
            ),
        ),
    )
