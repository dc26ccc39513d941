"""relayq's worker loop: one `QueueWorker` per queue, in the process that `run_workers` runs.

relayq owns this loop (it was arq's Worker, with overrides of its private methods; arq's
pipelines and MULTI span hash slots, so it cannot run on Redis Cluster). Per queue:

- claim: while there is room, one claim.lua round trip on the queue's slot takes jobs whose
  lease ran out (their worker is gone) and then due waiting jobs, however many at once;
- run: each claimed job runs one attempt (relayq.workers.attempts) in a task of its own;
- release: the attempt's outcome decides the lease: ended (the job has its terminal event,
  confirmed on a replica when RELAYQ_REDIS_URL asks for it), requeued after the retry's delay,
  requeued at once (a shutdown), or left to run out (the attempt lost the job);
- renew: a task renews the leases this worker holds every lease/3;
- wake: enqueue publishes on the queue's wake channel, a finished attempt frees room, a retry's
  delay is timed here; the poll is only the fallback;
- stop: the first SIGTERM/SIGINT stops claiming and lets running attempts finish for
  RELAYQ_SHUTDOWN_GRACE_S, then cancels them once: each hands its job back (bounded); a second
  signal ends the grace at once, and never cuts a hand-back short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relayq.connection import connect, parse_redis_url, replicated
from relayq.schemas.constants import (
    FUNCTION_OF_QUEUE,
    QUEUE_KEYS,
    QueueKeys,
    job_key,
)
from relayq.schemas.settings import Settings
from relayq.workers.attempts import (
    HAND_BACK_TIMEOUT_S,
    AttemptResult,
    JobBody,
    JobType,
    Outcome,
    run_attempt,
)
from relayq.workers.leases import Claim, QueueLeases
from relayq.workers.runtime import Runtime

logger = logging.getLogger(__name__)

# Idle workers are woken by the enqueue script; the poll only catches producers that skip the
# wake-up and jobs whose lease ran out.
POLL_DELAY_S = 1.0
# after a Redis error, the claim loop tries again after this long (Redis' own retries come first)
PAUSE_AFTER_ERROR_S = 0.5
TERMINAL = (b"done", b"error", b"cancelled")


def job_type(queue: str) -> JobType:
    """What `queue` runs. Playwright (the `browser` extra) loads only for the computer queue."""
    body: JobBody
    match queue:
        case "chat":
            from relayq.workers.chat import chat

            body = chat
        case "computer":
            from relayq.workers.computer import computer_use

            body = computer_use
        case _:
            raise ValueError(f"unknown queue {queue!r}; expected one of {sorted(QUEUE_KEYS)}")
    return JobType(queue, FUNCTION_OF_QUEUE[queue], body)


@dataclass
class _Running:
    claim: Claim
    task: asyncio.Task[None]


class QueueWorker:
    def __init__(
        self,
        runtime: Runtime,
        job: JobType,
        *,
        max_jobs: int,
        poll_delay: float = POLL_DELAY_S,
        burst: bool = False,
    ) -> None:
        self.runtime = runtime
        self.job = job
        self.queue: QueueKeys = QUEUE_KEYS[job.queue]
        self.max_jobs = max_jobs
        self.poll_delay = poll_delay
        self.burst = burst
        self.leases = QueueLeases(
            runtime.scripts,
            self.queue,
            worker_id=runtime.worker_id,
            lease_s=runtime.settings.lease_s,
        )
        self.running: dict[str, _Running] = {}
        self._wake = runtime.wake_event(self.queue)
        self._stopping = asyncio.Event()
        self._grace_over = asyncio.Event()
        self._redis_down = False

    def request_stop(self) -> None:
        """First call: stop claiming, finish within the grace. Later calls: end the grace now."""
        if self._stopping.is_set():
            self._grace_over.set()
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        logger.info("worker for queue %s started", self.queue.waiting)
        renewing = asyncio.create_task(self._renew_leases(), name=f"leases:{self.job.queue}")
        try:
            await self._claim_until_stopped()
            await self._stop_running()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _claim_until_stopped(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            room = self.max_jobs - len(self.running)
            claims: list[Claim] = []
            if room > 0:
                try:
                    claims = await self.leases.claim(room, self.running)
                except Exception as e:  # never a dead worker: Redis or not, try again
                    self._note_redis_down(e)
                    await self._sleep(PAUSE_AFTER_ERROR_S)
                    continue
                self._note_redis_up()
                for claim in claims:
                    self._start(claim)
            if len(claims) == room > 0:
                continue  # full: more may be due
            if self.burst and not self.running and await self._queue_is_empty():
                return
            await self._sleep(self.poll_delay)

    def _start(self, claim: Claim) -> None:
        if claim.reclaimed:
            logger.info("job %s: its lease ran out; taking it over", claim.job_id)
        task = asyncio.create_task(self._attempt(claim), name=f"job:{claim.job_id}")
        self.running[claim.job_id] = _Running(claim, task)

    async def _attempt(self, claim: Claim) -> None:
        try:
            try:
                result = await run_attempt(self.runtime, claim, self.job)
            except asyncio.CancelledError:
                # cancelled (by a shutdown) before the attempt began: its lease runs out
                result = AttemptResult(Outcome.LOST)
            await self._release(claim, result)
        except Exception as e:
            logger.warning("job %s: could not release its lease (%s); it runs out", claim.job_id, e)
        finally:
            del self.running[claim.job_id]
            self._wake.set()

    async def _release(self, claim: Claim, result: AttemptResult) -> None:
        match result.outcome:
            case Outcome.ENDED:
                if await self._ended_durably(claim.job_id):
                    await self.leases.ack(claim)
            case Outcome.DEFERRED:
                await self.leases.requeue(claim, result.delay_s)
                asyncio.get_running_loop().call_later(result.delay_s, self._wake.set)
            case Outcome.HANDED_BACK:
                # bounded: a stopping worker does not wait out a Redis outage
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.leases.requeue(claim, 0), HAND_BACK_TIMEOUT_S)
            case Outcome.LOST:
                pass

    async def _ended_durably(self, job_id: str) -> bool:
        """True once the job's terminal event is on its slot's primary and, when the URL asks
        for it, on `ack.replicas` replicas. False when the primary has no terminal event (a
        failover lost it): the lease then runs out and another attempt ends the job."""
        ack = self.runtime.ack
        if not ack.required:
            return True
        key = job_key(job_id)
        (status,), acked = await replicated(self.runtime.redis, key, [("HGET", key, "status")], ack)
        if status not in TERMINAL:
            logger.warning("job %s: its terminal event is gone (a failover?); re-running", job_id)
            return False
        if acked < ack.replicas:
            # no replica answered in time (a shard left without one): release all the same
            logger.warning(
                "job %s ended, confirmed on %d of %d replica(s)", job_id, acked, ack.replicas
            )
        return True

    async def _renew_leases(self) -> None:
        interval = self.runtime.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await self.leases.renew(r.claim for r in list(self.running.values()))
            except Exception as e:  # a renewal that stopped would lose every running job
                self._note_redis_down(e)
                continue
            for job_id in lost:
                logger.warning("job %s: another worker took its lease over", job_id)

    async def _stop_running(self) -> None:
        if not self.running:
            return
        grace = self.runtime.settings.shutdown_grace_s
        logger.info(
            "queue %s: stopping; %d job(s) running, %.0f s to finish",
            self.queue.waiting,
            len(self.running),
            grace,
        )
        tasks = [r.task for r in self.running.values()]
        grace_over = asyncio.create_task(self._grace_over.wait())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_all_or(tasks, grace_over), grace)
        grace_over.cancel()
        remaining = [t for t in tasks if not t.done()]
        for task in remaining:
            task.cancel()  # once: each attempt hands its job back, within its own bound
        if remaining:
            await asyncio.wait(remaining, timeout=2 * HAND_BACK_TIMEOUT_S + 1)

    async def _queue_is_empty(self) -> bool:
        redis = self.runtime.redis
        waiting, leased = await asyncio.gather(
            redis.zcard(self.queue.waiting), redis.zcard(self.queue.leases)
        )
        return int(waiting) + int(leased) == 0

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _note_redis_down(self, e: Exception) -> None:
        if not self._redis_down:
            logger.warning(
                "queue %s: redis unavailable (%s: %s); retrying",
                self.queue.waiting,
                type(e).__name__,
                e,
            )
        self._redis_down = True

    def _note_redis_up(self) -> None:
        if self._redis_down:
            logger.warning("queue %s: redis is back", self.queue.waiting)
        self._redis_down = False


async def _all_or(tasks: list[asyncio.Task[None]], stop: asyncio.Task[bool]) -> None:
    """Returns when every task is done, or when `stop` is."""
    pending: set[asyncio.Task[Any]] = {*tasks, stop}
    while not stop.done() and any(not t.done() for t in tasks):
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)


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
    jobs = [job_type(q) for q in queues]  # an unknown queue name fails here, before anything
    redis = connect(redis_url)
    runtime = await Runtime.start(
        redis,
        settings,
        queues=[QUEUE_KEYS[j.queue] for j in jobs],
        ack=parse_redis_url(redis_url).ack,
    )
    if "computer" in queues:
        from relayq.workers.browser.pool import BrowserPool

        runtime.browser_pool = BrowserPool(size=settings.browser_pool_size)
        await runtime.browser_pool.start()
    workers = [
        QueueWorker(
            runtime,
            job,
            max_jobs=max_jobs
            or (settings.computer_max_jobs if job.queue == "computer" else settings.max_jobs),
            poll_delay=poll_delay,
            burst=burst,
        )
        for job in jobs
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop_all, workers)
    if on_ready is not None:
        on_ready()
    try:
        await asyncio.gather(*(w.run() for w in workers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runtime.aclose()
        await redis.aclose()


def _stop_all(workers: list[QueueWorker]) -> None:
    for w in workers:
        w.request_stop()


def __getattr__(name: str) -> object:
    if name == "WorkerSettings":
        raise ImportError(
            "relayq no longer runs under arq's CLI: it runs its own worker loop (Redis Cluster "
            "ready, leased, fenced). Start a worker with `relayq worker --queues chat`."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
