"""One attempt of any job: start it on the job's slot, run the job body, end with one final event.

The body publishes its own terminal event (or a `retry`). This frame handles what cuts across
every kind of job: a job that already ended or was cancelled while queued, input that cannot be
run (an `error` event), a cancel request (`cancelled`), a worker shutdown (`retry`, reason
`shutdown`, the job goes back to the queue), a lost ownership (fenced: stay silent), a body that
ends without a final event, and a bug in the body (an `error` event, never a dead worker).

It reports an `Outcome`, which tells the worker loop what to do with the job's lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from arq import Retry as ArqRetry
from opentelemetry import context as otel_context

from relayq import tracing
from relayq.connection import REDIS_ERRORS
from relayq.schemas.constants import job_key, job_slot_keys
from relayq.schemas.events import Cancelled, Error, ErrorInfo, Event, Retry, Started
from relayq.schemas.jobs import _JobBase, parse_job
from relayq.schemas.validation import error_text
from relayq.workers.job_input import UnreadableJob, job_input
from relayq.workers.leases import Claim
from relayq.workers.logs import job_context
from relayq.workers.metrics import AttemptMetrics
from relayq.workers.publisher import Fenced, Publisher
from relayq.workers.runtime import RunningJob, Runtime

logger = logging.getLogger(__name__)

HAND_BACK_TIMEOUT_S = 2.0


class Outcome(enum.Enum):
    ENDED = "ended"
    """The job has its terminal event (or had one already): release the lease."""
    DEFERRED = "deferred"
    """A `retry` event was published: the job waits again for `delay_s`."""
    HANDED_BACK = "handed_back"
    """The worker is stopping; a `retry` (reason `shutdown`) was published: requeue at once."""
    LOST = "lost"
    """The attempt did not end the job (fenced off, or Redis went away): keep the lease
    unrenewed, so that once it runs out another attempt takes over and voids this one."""


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    delay_s: float = 0.0


@dataclass
class AttemptContext:
    runtime: Runtime
    job_id: str
    number: int
    payload: str
    publisher: Publisher
    metrics: AttemptMetrics
    final_event: Event | None = None
    _spans: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def observe(self, event: Event) -> None:
        if event.type in ("done", "error", "cancelled", "retry"):
            self.final_event = event
        self.metrics.observe(event)

    async def parse(self, kind: type[JobT]) -> JobT | None:
        """The payload as a `kind` job; None (after an `error` event) when it is not one."""
        try:
            job = parse_job(self.payload)
            if not isinstance(job, kind):
                raise ValueError(f"this queue runs {kind.__name__}s, not {type(job).__name__}s")
        except ValueError as e:
            error = ErrorInfo(type="invalid_request", message=error_text(e))
            await self.publisher.finish(Error(job_id=self.job_id, attempt=self.number, error=error))
            return None
        self.metrics.model = job.model
        self._spans.enter_context(
            tracing.tracer.start_as_current_span(
                "relayq.run",
                context=tracing.extract(job),
                attributes={
                    "relayq.job_id": self.job_id,
                    "relayq.attempt": self.number,
                    "relayq.kind": str(getattr(job, "kind", "")),
                    "gen_ai.request.model": job.model,
                },
            )
        )
        # the publisher writes from its own task: hand it the run span's context
        self.publisher.trace_context = otel_context.get_current()
        return job


JobBody = Callable[[AttemptContext], Awaitable[None]]
"""Ends the job with a terminal event, or publishes a `retry` event and raises arq's
`Retry(defer=...)`, as an arq job function asks for another try."""
JobT = TypeVar("JobT", bound=_JobBase)


@dataclass(frozen=True)
class JobType:
    """What one queue runs: its function name (as raw envelopes name it) and the job body."""

    queue: str
    function: str
    body: JobBody


async def run_attempt(runtime: Runtime, claim: Claim, job_type: JobType) -> AttemptResult:
    try:
        return await _run_attempt(runtime, claim, job_type)
    except REDIS_ERRORS as e:
        # Redis went away for longer than the client's own retries: the lease runs out and
        # the next attempt voids this one (reason worker_lost)
        logger.warning("job %s: redis unavailable (%s); leaving it to its lease", claim.job_id, e)
        return AttemptResult(Outcome.LOST)
    except Exception as e:
        # a bug outside the job body: never leave the job without a terminal event
        logger.exception("job %s: attempt frame failed", claim.job_id)
        try:
            await runtime.reject(claim.job_id, f"{type(e).__name__}: {e}", kind="internal_error")
        except REDIS_ERRORS:
            return AttemptResult(Outcome.LOST)
        return AttemptResult(Outcome.ENDED)


async def _run_attempt(runtime: Runtime, claim: Claim, job_type: JobType) -> AttemptResult:
    settings = runtime.settings
    job_id = claim.job_id
    state, number, source, raw = await runtime.scripts.call(
        "start",
        job_slot_keys(job_id),
        [claim.token, runtime.worker_id, settings.stream_maxlen, settings.stream_ttl_s, job_id],
    )
    if state != b"run":
        logger.info("job %s not run: %s", job_id, state.decode())
        return AttemptResult(Outcome.ENDED)
    job_context.set({"job_id": job_id, "attempt": number, "queue": job_type.queue})

    publisher = Publisher(
        runtime.redis,
        runtime.scripts,
        job_id=job_id,
        attempt=number,
        maxlen=settings.stream_maxlen,
        ttl_s=settings.stream_ttl_s,
    )
    metrics = AttemptMetrics(job_type.queue)
    metrics.observe(Started(job_id=job_id, attempt=number, worker=runtime.worker_id))
    attempt = AttemptContext(runtime, job_id, number, "", publisher, metrics)
    publisher.observer = attempt.observe
    try:
        with runtime.track(job_id) as running:
            return await _run_body(attempt, job_type, source.decode(), raw, running)
    finally:
        await publisher.aclose()
        attempt._spans.close()


async def _run_body(
    attempt: AttemptContext, job_type: JobType, source: str, raw: bytes, running: RunningJob
) -> AttemptResult:
    settings = attempt.runtime.settings
    job_id, number = attempt.job_id, attempt.number
    try:
        attempt.payload = job_input(source, raw, job_type.function)
        if number > settings.max_attempts:
            message = f"gave up after {settings.max_attempts} attempts"
            return await _end_with_error(attempt, "too_many_attempts", message)
        async with asyncio.timeout(settings.job_timeout_s):
            await job_type.body(attempt)
    except UnreadableJob as e:
        return await _end_with_error(attempt, "invalid_request", str(e))
    except ArqRetry as e:
        # the body published its `retry` event and asks, as arq job functions do, to run again
        return AttemptResult(Outcome.DEFERRED, (e.defer_score or 0) / 1000)
    except TimeoutError:
        message = f"the attempt ran longer than RELAYQ_JOB_TIMEOUT_S ({settings.job_timeout_s:g} s)"
        return await _end_with_error(attempt, "APITimeoutError", message)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if not running.cancel_requested:
            handed_back = await _hand_back(attempt.publisher)
            return AttemptResult(Outcome.HANDED_BACK if handed_back else Outcome.LOST)
        return await _finish(attempt, Cancelled(job_id=job_id, attempt=number))
    except Fenced:
        logger.warning("job %s attempt %d lost the job to another attempt", job_id, number)
        return AttemptResult(Outcome.LOST)
    except REDIS_ERRORS:
        raise
    except Exception as e:
        logger.exception("job %s attempt %d failed unexpectedly", job_id, number)
        return await _end_with_error(attempt, "internal_error", f"{type(e).__name__}: {e}")
    if attempt.final_event is None:
        # a body must end with a terminal event or a retry; this one did not
        return await _end_with_error(
            attempt, "internal_error", "the job ended without a final event"
        )
    return AttemptResult(Outcome.ENDED)


async def _end_with_error(attempt: AttemptContext, kind: str, message: str) -> AttemptResult:
    error = Error(
        job_id=attempt.job_id, attempt=attempt.number, error=ErrorInfo(type=kind, message=message)
    )
    return await _finish(attempt, error)


async def _finish(attempt: AttemptContext, event: Event) -> AttemptResult:
    try:
        await attempt.publisher.finish(event)
    except Fenced:
        # the job ended already (a cancel racing this attempt's own terminal event), or another
        # attempt owns it: stay silent, and keep the lease only in the second case
        status, number = await attempt.runtime.redis.hmget(  # type: ignore[misc]
            job_key(attempt.job_id), ["status", "attempt"]
        )
        ended = (
            status in (b"done", b"error", b"cancelled") and number == str(attempt.number).encode()
        )
        return AttemptResult(Outcome.ENDED if ended else Outcome.LOST)
    return AttemptResult(Outcome.ENDED)


async def _hand_back(publisher: Publisher) -> bool:
    """The worker is shutting down: void this attempt so the next one starts at once. False
    when Redis did not take the `retry` in time: the next attempt's start voids this one."""
    retry = Retry(job_id=publisher.job_id, attempt=publisher.attempt, reason="shutdown", delay=0)
    finishing = asyncio.ensure_future(publisher.finish(retry))
    try:
        await asyncio.wait_for(asyncio.shield(finishing), timeout=HAND_BACK_TIMEOUT_S)
    except BaseException:
        finishing.cancel()
        return False
    return True
