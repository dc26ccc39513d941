"""arq workers for relayq's queues, and the process that runs them.

`RelayWorker` is arq's Worker with three changes: it wakes as soon as a job is enqueued (the
enqueue script publishes on `<queue>:wake`; the poll stays as a fallback), its in-progress lease is
short and renewed by a heartbeat (see relayq.workers.runtime), and it never uses pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from arq import Worker
from arq.connections import RedisSettings, create_pool
from arq.utils import timestamp_ms
from arq.worker import Function, func
from redis.exceptions import WatchError

from relayq.connection import REDIS_ERRORS, connect, retry_policy
from relayq.schemas.constants import (
    CHAT_FUNCTION,
    CHAT_QUEUE,
    COMPUTER_FUNCTION,
    QUEUES,
)
from relayq.schemas.settings import Settings
from relayq.workers.chat import chat
from relayq.workers.runtime import Runtime
from relayq.workers.scripts import WorkerScripts

logger = logging.getLogger(__name__)

# Idle workers are woken by the enqueue script; the poll only catches deferred retries and
# producers that skip the wake, so it can be slower than arq's 0.5 s.
POLL_DELAY_S = 1.0

# relayq decides retries itself (workers.retry_policy); arq's own cap must never fire first.
UNLIMITED_TRIES = 1_000_000


def arq_redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.retry = retry_policy()
    settings.retry_on_error = list(REDIS_ERRORS)
    settings.conn_retries = 30
    return settings


def json_serializer(data: dict[str, Any]) -> bytes:
    # arq also serializes failure results (exceptions); relayq keeps none, so a repr will do
    return json.dumps(data, separators=(",", ":"), default=repr).encode()


def json_deserializer(raw: bytes) -> Any:
    return json.loads(raw)


def queue_functions(queue: str, settings: Settings) -> list[Function]:
    match queue:
        case "chat":
            return [
                func(
                    chat,
                    name=CHAT_FUNCTION,
                    timeout=settings.job_timeout_s,
                    max_tries=UNLIMITED_TRIES,
                    keep_result=0,
                )
            ]
        case "computer":
            # Playwright (the `browser` extra) loads only in workers that serve this queue
            from relayq.workers.computer import computer_use

            return [
                func(
                    computer_use,
                    name=COMPUTER_FUNCTION,
                    timeout=settings.job_timeout_s,
                    max_tries=UNLIMITED_TRIES,
                    keep_result=0,
                )
            ]
        case _:
            raise ValueError(f"unknown queue {queue!r}; expected one of {sorted(QUEUES)}")


class RelayWorker(Worker):
    _scripts: WorkerScripts

    def __init__(self, *args: Any, wake: asyncio.Event, lease_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_progress_timeout_s = lease_s
        self._wake = wake
        self._stopping = False

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
        self._scripts = WorkerScripts(self.pool)
        logger.info("worker for queue %s started", self.queue_name)
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            self._wake.clear()
            started = self.loop.time()
            try:
                await self._poll_iteration()
            except (*REDIS_ERRORS, WatchError):
                logger.warning("queue %s: redis unavailable; retrying", self.queue_name)
                await asyncio.sleep(min(1.0, self.poll_delay_s))
                continue
            if self.burst:
                if 0 <= self.max_burst_jobs <= self._jobs_started():
                    await asyncio.gather(*self.tasks.values())
                    return
                if await self.pool.zcard(self.queue_name) == 0:
                    await asyncio.gather(*self.tasks.values())
                    return
            # as arq does: the poll period includes the iteration's own time
            remaining = self.poll_delay_s - (self.loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(remaining, 0.0))

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claims the due jobs it has room for in one round trip (claim.lua), then runs them.

        arq claims one job at a time with WATCH/EXISTS/ZSCORE/MULTI; with hundreds of jobs
        arriving together the last one would start seconds after the first."""
        room = self.max_jobs - self.job_counter
        # a running job stays at the head of the queue until it ends: skip our own here, and
        # let the script skip those running elsewhere while it fills the room we have
        candidates = [i for i in (j.decode() for j in job_ids) if i not in self.tasks]
        if room <= 0 or not candidates:
            return
        reply = await self._scripts.call(
            "claim",
            [self.queue_name],
            [int(self.in_progress_timeout_s * 1000), timestamp_ms(), room, *candidates],
        )
        for raw_id, raw_score in zip(reply[::2], reply[1::2], strict=True):
            await self.sem.acquire()
            self.job_counter += 1
            job_id = raw_id.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    def handle_sig(self, signum: signal.Signals) -> None:
        """Cancels the running attempts once; they hand their jobs back (bounded, see
        workers.attempts). Later calls (a second SIGTERM, or arq's `close()`, which signals
        again when it does not own the handlers) only stop the worker: cancelling again would
        cut the hand-back short and leave the job to the slower `worker_lost` recovery."""
        if self._stopping:
            if self.main_task is not None:
                self.main_task.cancel()
            return
        self._stopping = True
        super().handle_sig(signum)

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._wake.set()

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq gave up on a job before our function saw it (missing or unreadable envelope,
        unknown function): say so on the job's stream rather than drop it silently."""
        await super().finish_failed_job(job_id, result_data)
        runtime: Runtime = self.ctx["relayq"]
        await runtime.reject(
            job_id,
            "the queued job could not be read: its arq envelope is missing, is not JSON, "
            "or names an unknown function",
        )


def build_worker(
    queue: str,
    runtime: Runtime,
    wake: asyncio.Event,
    *,
    settings: Settings,
    redis_url: str,
    burst: bool = False,
    max_jobs: int | None = None,
    poll_delay: float = POLL_DELAY_S,
) -> RelayWorker:
    return RelayWorker(
        functions=queue_functions(queue, settings),
        queue_name=QUEUES[queue],
        redis_settings=arq_redis_settings(redis_url),
        job_serializer=json_serializer,
        job_deserializer=json_deserializer,
        max_jobs=max_jobs
        or (settings.computer_max_jobs if queue == "computer" else settings.max_jobs),
        keep_result=0,
        poll_delay=poll_delay,
        burst=burst,
        handle_signals=False,
        job_completion_wait=int(settings.shutdown_grace_s),
        allow_abort_jobs=False,
        ctx={"relayq": runtime},
        wake=wake,
        lease_s=settings.lease_s,
    )


async def run_workers(
    queues: Sequence[str],
    settings: Settings,
    *,
    redis_url: str,
    burst: bool = False,
    max_jobs: int | None = None,
    poll_delay: float = POLL_DELAY_S,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Runs one worker per queue until SIGTERM/SIGINT (or, with `burst`, until they are empty)."""
    redis = connect(redis_url)
    for q in queues:
        queue_functions(q, settings)  # an unknown queue name fails here, before anything starts
    runtime = await Runtime.start(redis, settings, queues=[QUEUES[q] for q in queues])
    if "computer" in queues:
        from relayq.workers.browser.pool import BrowserPool

        runtime.browser_pool = BrowserPool(size=settings.browser_pool_size)
        await runtime.browser_pool.start()
    workers = [
        build_worker(
            q,
            runtime,
            runtime.wake_event(QUEUES[q]),
            settings=settings,
            redis_url=redis_url,
            burst=burst,
            max_jobs=max_jobs,
            poll_delay=poll_delay,
        )
        for q in queues
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _graceful_stop, workers, sig)
    if on_ready is not None:
        on_ready()
    try:
        # a signal ends each worker by cancelling its main task: that is a normal exit
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(w.async_run() for w in workers))
    finally:
        for w in workers:
            await w.close()
        await runtime.aclose()
        await redis.aclose()


def _graceful_stop(workers: list[RelayWorker], sig: signal.Signals) -> None:
    for w in workers:
        if w._job_completion_wait:
            w.handle_sig_wait_for_completion(sig)
        else:
            w.handle_sig(sig)


class WorkerSettings:
    """For `arq relayq.workers.worker.WorkerSettings`: the chat queue with JSON, as relayq
    runs it."""

    functions = queue_functions("chat", Settings())
    queue_name = CHAT_QUEUE
    job_serializer = staticmethod(json_serializer)
    job_deserializer = staticmethod(json_deserializer)
    keep_result = 0
    allow_abort_jobs = False
    redis_settings = RedisSettings.from_dsn(Settings().redis_url or "redis://localhost:6379")

    @staticmethod
    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["relayq"] = await Runtime.start(ctx["redis"], Settings(), queues=[CHAT_QUEUE])

    @staticmethod
    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await ctx["relayq"].aclose()
