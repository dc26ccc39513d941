"""The event publisher: appends one attempt's events to its job stream, in order, fenced.

Coalescing adapts to the stream's pace. The first text delta of an attempt goes out at once. A
later delta waits for the ones after it only while the stream's recent pace says the next delta
will arrive within `HOLD_S` of the oldest one waiting; otherwise the text goes out at once. A fast
stream is written in batches, one at 50 tokens/s in pairs of deltas, and a slow one delta by
delta; no delta waits longer than `HOLD_S`, plus `BATCH_LINGER_S` and a write in flight.
Consecutive deltas become one `text` entry. Every other kind of event goes out at once, with the
text before it.

The writes of every attempt in the process go through one `WriteBatcher` per Redis client: the
writes that are ready together go in one `publish.lua` call (one call per hash slot on a Redis
Cluster), so fifty streams cost one round trip, not fifty. On one server the batcher has a
connection of its own: a burst of job starts queued for the client's pool never delays it.
`publish.lua` refuses a write once another attempt owns the job or a terminal event was written:
a presumed-dead worker that wakes up cannot publish into a job it lost.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from relayq import tracing
from relayq.schemas.constants import job_slot_keys
from relayq.schemas.events import TERMINAL_TYPES, Event, Retry, Text, TokenUsage
from relayq.workers.scripts import WorkerScripts

logger = logging.getLogger(__name__)

HOLD_S = 0.022
"""The longest a text delta waits for the deltas after it before it is written: one gap at 50
tokens/s and 2 ms for jitter, so that such a stream is written in pairs of deltas, and the hold
plus the batch linger stay under 25 ms."""
_PACE_WEIGHT = 0.25  # weight of the newest gap in the running estimate of a stream's pace
BATCH_LINGER_S = 0.002
"""While other attempts are streaming, how long a ready write waits for theirs to share its call."""
MAX_WRITES_PER_CALL = 1024
_CLOCK_SLACK_S = 0.0005  # a timer may fire a hair before its time


class Fenced(Exception):
    """This attempt no longer owns the job: another attempt took over or the job has ended."""


def write_args(
    *,
    attempt: int,
    maxlen: int,
    status: str,
    ttl_s: int,
    usage_json: str,
    seq: int | str,
    events: Sequence[str],
) -> list[str | int]:
    """One job's part of a publish.lua call's ARGV (after the leading keys-per-job count)."""
    return [str(attempt), maxlen, status, ttl_s, usage_json, seq, len(events), *events]


async def publish_once(
    scripts: WorkerScripts, keys: Sequence[str], args: Sequence[str | int]
) -> int:
    """One job's write in a call of its own (`args` from `write_args`): events written, or -1."""
    reply = await scripts.call("publish", keys, [len(keys), *args])
    return _written(reply[0])


def _failover_reply(reply: object) -> bool:
    if isinstance(reply, int):
        return False
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return text.removeprefix("error: ").startswith(_FAILOVER_REPLIES)


def _written(reply: object) -> int:
    if isinstance(reply, int):
        return reply
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    if _failover_reply(text):
        # the node stopped being the primary (or is loading) under this call: Redis went
        # away for this attempt, not a write the job got wrong; another attempt takes over
        raise RedisConnectionError(text)
    raise ResponseError(text)


_FAILOVER_REPLIES = ("READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


@dataclass
class _Write:
    keys: list[str]
    args: list[str | int]
    slot: int
    done: asyncio.Future[int]


class WriteBatcher:
    """Sends the publish writes of every attempt of the process that share a Redis client.

    One call is in flight at a time; the writes that become ready meanwhile go together in the
    next one. On a Redis Cluster a script may touch one hash slot only, so writes are grouped
    by their job's slot and each group is its own call.
    """

    def __init__(self, redis: Redis, scripts: WorkerScripts) -> None:
        self._one_slot_per_call = isinstance(redis, RedisCluster)
        # On one server, a connection of its own (taken from the client's pool once): redis-py's
        # pool hands out connections under one lock, one waiter per loop turn, so a publish
        # queued behind a burst of job starts waited for every one of them (seconds at 500)
        self._own: Redis | None = None if self._one_slot_per_call else redis.client()
        self._scripts = scripts if self._own is None else WorkerScripts(self._own)
        self._queue: list[_Write] = []
        self._sender: asyncio.Task[None] | None = None
        self.calls = 0
        self.streaming = 0  # publishers open on this client

    @classmethod
    def of(cls, redis: Redis, scripts: WorkerScripts) -> WriteBatcher:
        """The batcher of this Redis client (made on first use)."""
        batcher = _BATCHERS.get(redis)
        if batcher is None:
            batcher = _BATCHERS[redis] = cls(redis, scripts)
        return batcher

    @staticmethod
    async def close(redis: Redis) -> None:
        """Gives back the connection of `redis`'s batcher, if it has one."""
        batcher = _BATCHERS.pop(redis, None)
        if batcher is not None and batcher._own is not None:
            await batcher._own.aclose(close_connection_pool=False)

    def submit(self, keys: list[str], args: list[str | int]) -> asyncio.Future[int]:
        """Queues one job's write; the future gives the events written or -1 (fenced)."""
        slot = key_slot(keys[0].encode()) if self._one_slot_per_call else 0
        write = _Write(keys, args, slot, asyncio.get_running_loop().create_future())
        self._queue.append(write)
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not asyncio.get_running_loop():
            self._sender = asyncio.create_task(self._send_all(), name="relayq:publish")
        return write.done

    async def _send_all(self) -> None:
        if self.streaming > 1 and len(self._queue) < self.streaming:
            await asyncio.sleep(BATCH_LINGER_S)
        while self._queue:
            batch = self._queue[:MAX_WRITES_PER_CALL]
            del self._queue[:MAX_WRITES_PER_CALL]
            groups: dict[int, list[_Write]] = {}
            for write in batch:
                groups.setdefault(write.slot, []).append(write)
            if len(groups) == 1:
                await self._send(batch)  # no task to start: one loop turn less under load
            else:
                await asyncio.gather(*(self._send(group) for group in groups.values()))

    async def _send(self, writes: list[_Write]) -> None:
        keys: list[str] = []
        args: list[str | int] = [len(writes[0].keys)]
        for write in writes:
            keys += write.keys
            args += write.args
        try:
            replies = await self._call(keys, args)
        except BaseException as e:
            for write in writes:
                if not write.done.done():
                    write.done.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        if any(_failover_reply(reply) for reply in replies):
            await self._redial()
        for write, reply in zip(writes, replies, strict=True):
            if write.done.done():
                continue
            try:
                write.done.set_result(_written(reply))
            except (ResponseError, RedisConnectionError) as e:
                write.done.set_exception(e)

    async def _redial(self) -> None:
        """The server said, inside the script's reply where redis-py cannot see it, that it is
        no longer the primary: the next call dials again (behind Sentinel: asks the sentinels).
        Kept, the connection would meet the same replica on every call."""
        if self._own is not None and self._own.connection is not None:
            await self._own.connection.disconnect()

    async def _call(self, keys: list[str], args: list[str | int]) -> list[object]:
        # a Redis restart is ridden out by the connection's own retries (relayq.connection);
        # a write sent again is harmless (publish.lua skips a sequence number it applied)
        self.calls += 1
        replies: list[object] = await self._scripts.call("publish", keys, args)
        return replies


_BATCHERS: weakref.WeakKeyDictionary[Redis, WriteBatcher] = weakref.WeakKeyDictionary()


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
        hold_s: float = HOLD_S,
    ) -> None:
        self._batcher = WriteBatcher.of(redis, scripts)
        self._batcher.streaming += 1
        self._keys = job_slot_keys(job_id)
        self.job_id = job_id
        self.attempt = attempt
        self.hold_s = hold_s
        self._maxlen = maxlen
        self._ttl_s = ttl_s
        self._loop = asyncio.get_running_loop()
        # events not written yet; texts after the last one merge into it (see _merged)
        self._pending: list[Event] = []
        self._tail_texts: list[str] = []
        self._pending_usage: TokenUsage | None = None
        self._due = float("inf")  # when the pending events must be written (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._wrote_text = False
        self._last_text_at: float | None = None
        self._pace: float | None = None  # running estimate of the gap between text deltas
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
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RuntimeError("publisher already finished")
        if usage is not None:
            self._pending_usage = usage
        if self.observer is not None:
            self.observer(event)
        self._idle.clear()
        if type(event) is Text:
            self._add_text(event)
        else:
            self._close_tail()
            self._pending.append(event)
            self._due_now()

    def _add_text(self, event: Text) -> None:
        now = self._loop.time()
        if self._last_text_at is not None:
            gap = now - self._last_text_at
            pace = self._pace
            self._pace = gap if pace is None else pace + _PACE_WEIGHT * (gap - pace)
        self._last_text_at = now
        pending = self._pending
        if pending and type(pending[-1]) is Text:
            self._tail_texts.append(event.text)
        else:
            pending.append(event)
        if not self._wrote_text or self._pace is None:
            self._due_now()  # the first delta goes out at once
            return
        if self._due == float("inf"):  # the oldest text waiting: hold it at most hold_s
            self._due = now + self.hold_s
        if now + self._pace > self._due:  # the next delta would come too late to join
            self._due_now()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_at(self._due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._wakeup.set()

    def _due_now(self) -> None:
        self._due = self._loop.time()
        self._wakeup.set()

    def _close_tail(self) -> None:
        if self._tail_texts:
            last = self._pending[-1]
            assert isinstance(last, Text)
            text = last.text + "".join(self._tail_texts)
            self._pending[-1] = last.model_copy(update={"text": text})
            self._tail_texts = []

    async def flush(self) -> None:
        """Writes everything emitted so far (held text included) and waits for it."""
        if self._pending:
            self._due_now()
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
        if not self._closed:
            self._batcher.streaming -= 1
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._flusher.cancel()
        try:
            await self._flusher
        except asyncio.CancelledError:
            pass

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            if self._loop.time() < self._due - _CLOCK_SLACK_S:
                self._arm_timer()
                continue
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close_tail()
            batch, self._pending = self._pending, []
            usage, self._pending_usage = self._pending_usage, None
            self._due = float("inf")
            if not self._fenced:
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
                self._wrote_text = self._wrote_text or any(type(e) is Text for e in batch)
            if self._pending:
                self._wakeup.set()  # what arrived during the write: written now, or held
                if type(self._pending[-1]) is Text and self._due != float("inf"):
                    now = self._loop.time()
                    if self._pace is not None and now + self._pace > self._due:
                        self._due = now
            else:
                self._idle.set()

    async def _write(self, batch: list[Event], usage: TokenUsage | None) -> int:
        last = batch[-1]
        status: str = last.type if last.type in TERMINAL_TYPES else ""
        if isinstance(last, Retry):
            status = "retrying"
        self._seq += 1
        args = write_args(
            attempt=self.attempt,
            maxlen=self._maxlen,
            status=status,
            ttl_s=self._ttl_s,
            usage_json=usage.model_dump_json() if usage is not None else "",
            seq=self._seq,
            events=[event.model_dump_json() for event in batch],
        )
        if not trace.get_current_span(self.trace_context).is_recording():
            written = await self._batcher.submit(self._keys, args)  # not traced: no span to make
        else:
            with tracing.tracer.start_as_current_span(
                "relayq.publish",
                context=self.trace_context,
                attributes={"relayq.events": len(batch), "relayq.status": status},
            ):
                written = await self._batcher.submit(self._keys, args)
        self.writes += 1
        return written
