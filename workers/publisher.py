"""The event publisher: appends one attempt's events to its job stream, in order, fenced.

The first event goes out at once; events that arrive while a write is in flight, and text that
arrives within LINGER_S of the previous write, go out together with the next write (consecutive
text deltas merged into one entry). A fast stream then costs at most one round trip per LINGER_S
rather than one per token, and a slow one adds no delay.
Every write runs `publish.lua`, which refuses it once another attempt owns the job or a terminal
event was written: a presumed-dead worker that wakes up cannot publish into a job it lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from opentelemetry import context as otel_context
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relayq import tracing
from relayq.schemas.constants import cancel_key, events_key, job_key
from relayq.schemas.events import TERMINAL_TYPES, Event, Retry, Text, TokenUsage
from relayq.workers.scripts import WorkerScripts

logger = logging.getLogger(__name__)

# Text that arrives within this long of the previous write waits for the next one; the first
# delta of a turn, and every other kind of event, goes out at once.
LINGER_S = 0.010
_REDIS_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 5.0, 5.0)


class Fenced(Exception):
    """This attempt no longer owns the job: another attempt took over or the job has ended."""


class Publisher:
    def __init__(
        self,
        redis: Redis,
        scripts: WorkerScripts,
        *,
        job_id: str,
        attempt: int,
        maxlen: int,
        ttl_s: int,
        linger_s: float = LINGER_S,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = [job_key(job_id), events_key(job_id), cancel_key(job_id)]
        self.job_id = job_id
        self.attempt = attempt
        self.linger_s = linger_s
        self._maxlen = maxlen
        self._ttl_s = ttl_s
        self._pending: list[Event] = []
        self._pending_usage: TokenUsage | None = None
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._fenced = False
        self._closed = False
        self._failure: BaseException | None = None
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"publisher:{job_id}")
        self.writes = 0
        self.observer: Callable[[Event], None] | None = None
        self.trace_context: otel_context.Context | None = None
        self._seq = 0

    @property
    def fenced(self) -> bool:
        return self._fenced

    def emit(self, event: Event, *, usage: TokenUsage | None = None) -> None:
        """Queue an event; `usage` (job usage so far) is stored on the job for status readers."""
        if self._fenced:
            raise Fenced(self.job_id)
        if self._closed:
            raise RuntimeError("publisher already finished")
        if usage is not None:
            self._pending_usage = usage
        if self.observer is not None:
            self.observer(event)
        self._pending.append(event)
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        await self._idle.wait()
        if self._failure is not None:
            raise self._failure
        if self._fenced:
            raise Fenced(self.job_id)

    async def finish(self, event: Event, *, usage: TokenUsage | None = None) -> None:
        """Publish the attempt's last event (a terminal event or a `retry`) and wait for it.

        The publisher stays open: if this wait is cancelled (a cancel request racing the end of
        the job), the caller can still publish `cancelled`, and publish.lua keeps whichever
        terminal event came first."""
        self.emit(event, usage=usage)
        await self.flush()

    async def aclose(self) -> None:
        self._closed = True
        self._flusher.cancel()
        try:
            await self._flusher
        except asyncio.CancelledError:
            pass

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_write = float("-inf")
        while True:
            await self._wakeup.wait()
            linger = last_write + self.linger_s - loop.time()
            if linger > 0 and all(isinstance(e, Text) for e in self._pending):
                await asyncio.sleep(linger)  # let more deltas join this write
            self._wakeup.clear()
            batch, self._pending = _coalesce(self._pending), []
            usage, self._pending_usage = self._pending_usage, None
            if batch and not self._fenced:
                last_write = loop.time()
                try:
                    written = await self._write(batch, usage)
                except Exception as e:
                    self._failure = e
                    self._idle.set()
                    return
                if written < 0:
                    self._fenced = True
                    logger.warning(
                        "job %s attempt %d was fenced off: another attempt owns it or it ended",
                        self.job_id,
                        self.attempt,
                    )
            if not self._pending:
                self._idle.set()

    async def _write(self, batch: list[Event], usage: TokenUsage | None) -> int:
        last = batch[-1]
        status: str = last.type if last.type in TERMINAL_TYPES else ""
        if isinstance(last, Retry):
            status = "retrying"
        args: list[str | int | float] = [
            str(self.attempt),
            self._maxlen,
            status,
            self._ttl_s,
            usage.model_dump_json() if usage is not None else "",
            self._next_seq(),
            *(event.model_dump_json() for event in batch),
        ]
        for delay in (*_REDIS_RETRY_DELAYS, None):
            try:
                with tracing.tracer.start_as_current_span(
                    "relayq.publish",
                    context=self.trace_context,
                    attributes={"relayq.events": len(batch), "relayq.status": status},
                ):
                    written: int = await self._scripts.call("publish", self._keys, args)
                self.writes += 1
                return written
            except (RedisConnectionError, RedisTimeoutError):
                if delay is None:
                    raise
                logger.warning("redis unavailable while publishing %s; retrying", self.job_id)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq


def _coalesce(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        previous = merged[-1] if merged else None
        if isinstance(event, Text) and isinstance(previous, Text):
            merged[-1] = previous.model_copy(update={"text": previous.text + event.text})
        else:
            merged.append(event)
    return merged
