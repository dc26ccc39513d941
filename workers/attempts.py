"""One attempt of any job: claim it, run the job body, and end with exactly one final event.

The body publishes its own terminal event (or a `retry`). This frame handles what cuts across
every kind of job: a job that already ended or was cancelled while queued, a cancel request
(`cancelled`), a worker shutdown (`retry`, reason `shutdown`, the job goes back to the queue), a
lost ownership (fenced: stay silent), and a bug in the body (an `error` event, never a dead worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from arq import Retry as ArqRetry
from opentelemetry import context as otel_context

from relayq import tracing
from relayq.connection import REDIS_ERRORS
from relayq.schemas.constants import cancel_key, events_key, job_key
from relayq.schemas.events import Cancelled, Error, ErrorInfo, Retry, Started
from relayq.schemas.jobs import _JobBase, parse_job
from relayq.schemas.validation import error_text
from relayq.workers.logs import job_context
from relayq.workers.metrics import AttemptMetrics
from relayq.workers.publisher import Fenced, Publisher
from relayq.workers.runtime import Runtime

logger = logging.getLogger(__name__)


@dataclass
class AttemptContext:
    runtime: Runtime
    job_id: str
    number: int
    payload: str
    publisher: Publisher
    metrics: AttemptMetrics
    deferred_by: float | None = None
    _spans: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def retry_after(self, delay: float) -> None:
        """Ask for another attempt `delay` seconds from now (after a `retry` event)."""
        self.deferred_by = delay

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
ATTEMPT_TIMEOUT_MARGIN_S = 2.0
JobT = TypeVar("JobT", bound=_JobBase)


async def run_attempt(ctx: dict[str, Any], payload: object, body: JobBody, *, queue: str) -> None:
    try:
        await _run_attempt(ctx, payload, body, queue)
    except REDIS_ERRORS as e:
        # Redis went away for longer than the clients' own retries: keep the job rather than
        # let arq count it as failed. The next attempt voids this one (reason worker_lost).
        logger.warning("job %s: redis unavailable (%s); handing the job back", ctx["job_id"], e)
        raise ArqRetry(defer=1.0) from e
    except ArqRetry:
        raise
    except Exception as e:
        # a bug outside the job body: never leave the job without a terminal event
        logger.exception("job %s: attempt frame failed", ctx["job_id"])
        runtime: Runtime = ctx["relayq"]
        await runtime.reject(ctx["job_id"], f"{type(e).__name__}: {e}", kind="internal_error")


async def _run_attempt(ctx: dict[str, Any], payload: object, body: JobBody, queue: str) -> None:
    runtime: Runtime = ctx["relayq"]
    job_id: str = ctx["job_id"]
    number: int = ctx["job_try"]
    job_context.set({"job_id": job_id, "attempt": number, "queue": queue})
    settings = runtime.settings
    keys = [job_key(job_id), events_key(job_id), cancel_key(job_id)]
    state = await runtime.scripts.call(
        "start",
        keys,
        [
            str(number),
            runtime.worker_id,
            Started(job_id=job_id, attempt=number, worker=runtime.worker_id).model_dump_json(),
            settings.stream_maxlen,
            job_id,
            Cancelled(
                job_id=job_id, attempt=number, reason="cancelled before start"
            ).model_dump_json(),
            settings.stream_ttl_s,
        ],
    )
    if state != b"run":
        logger.info("job %s attempt %d not run: %s", job_id, number, state.decode())
        return
    if number > settings.max_attempts:
        await runtime.reject(
            job_id, f"gave up after {settings.max_attempts} attempts", kind="too_many_attempts"
        )
        return

    publisher = Publisher(
        runtime.redis,
        runtime.scripts,
        job_id=job_id,
        attempt=number,
        maxlen=settings.stream_maxlen,
        ttl_s=settings.stream_ttl_s,
    )
    metrics = AttemptMetrics(queue)
    metrics.observe(Started(job_id=job_id, attempt=number, worker=runtime.worker_id))
    publisher.observer = metrics.observe
    attempt = AttemptContext(runtime, job_id, number, _as_text(payload), publisher, metrics)
    with runtime.track(job_id) as running:
        try:
            # our own limit, a little inside arq's job_timeout: arq's would end the job with a
            # TimeoutError it never retries and no event on the stream
            async with asyncio.timeout(settings.job_timeout_s - ATTEMPT_TIMEOUT_MARGIN_S):
                await body(attempt)
        except TimeoutError:
            with contextlib.suppress(Fenced):
                await publisher.finish(
                    Error(
                        job_id=job_id,
                        attempt=number,
                        error=ErrorInfo(
                            type="APITimeoutError",
                            message=f"the attempt ran longer than RELAYQ_JOB_TIMEOUT_S "
                            f"({settings.job_timeout_s:g} s)",
                        ),
                    )
                )
            return
        except asyncio.CancelledError:
            if not running.cancel_requested:
                await _hand_back(publisher)
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            with contextlib.suppress(Fenced):
                await publisher.finish(Cancelled(job_id=job_id, attempt=number))
            return
        except Fenced:
            logger.warning("job %s attempt %d lost the job to another attempt", job_id, number)
            return
        except REDIS_ERRORS:
            raise
        except Exception as e:
            logger.exception("job %s attempt %d failed unexpectedly", job_id, number)
            with contextlib.suppress(Fenced):
                await publisher.finish(
                    Error(
                        job_id=job_id,
                        attempt=number,
                        error=ErrorInfo(type="internal_error", message=f"{type(e).__name__}: {e}"),
                    )
                )
            return
        finally:
            await publisher.aclose()
            attempt._spans.close()
    if attempt.deferred_by is not None:
        raise ArqRetry(defer=attempt.deferred_by)


async def _hand_back(publisher: Publisher) -> None:
    """The worker is shutting down: void this attempt so the next one starts cleanly."""
    retry = Retry(job_id=publisher.job_id, attempt=publisher.attempt, reason="shutdown", delay=0)
    finishing = asyncio.ensure_future(publisher.finish(retry))
    try:
        await asyncio.wait_for(asyncio.shield(finishing), timeout=2.0)
    except BaseException:
        # Redis is unreachable (or we are cancelled again): the next attempt's start script
        # voids this one with reason worker_lost instead
        finishing.cancel()


def _as_text(payload: object) -> str:
    match payload:
        case str():
            return payload
        case bytes():
            return payload.decode("utf-8", errors="replace")
        case _:
            return json.dumps(payload)
