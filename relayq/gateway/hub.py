"""Fan-out of job streams to many subscribers over a few Redis connections.

A gateway holding thousands of open SSE responses cannot afford a Redis connection (a blocked
`XREAD`) per response. `StreamHub` runs a few reader tasks instead; each owns one connection and
issues one blocking multi-key `XREAD` for every job its subscribers follow, from the hub's own
cursor per job, and hands each entry to every subscriber of that job.

A subscriber (`StreamHub.follow`) joins in three moves, so that it sees every entry after its
resume id exactly once whatever the hub was doing meanwhile:

1. catch-up: `XRANGE` from its resume id on the shared pool (a finished job's replay never
   touches a reader);
2. join: registers with the reader (synchronously, so no entry can slip between) and learns the
   reader's cursor for the job; if that cursor is ahead of what it has seen, it reads the gap
   with `XRANGE` itself;
3. tail: takes entries from the reader, skipping any at or before what it has already seen.

A subscriber that falls more than `queue_limit` entries behind is dropped by the reader (which
never waits for anyone) and goes back to step 1 from the last entry it delivered.

When a reader's Redis fails, its subscribers end with `StreamUnavailable` (their callers close
their responses cleanly and clients resume from the last id), rather than waiting out an outage.

A new job for a reader wakes it out of its blocking `XREAD` through a per-reader wake stream
included in every read (an `XADD` to it makes the read return at once, with no race between the
wake and the read being issued).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from relayq.connection import REDIS_ERRORS, connect, is_cluster
from relayq.schemas.constants import EVENT_FIELD, events_key, gateway_wake_key, job_key
from relayq.schemas.events import TERMINAL_TYPES

log = logging.getLogger(__name__)

StreamPos = tuple[int, int]
_ZERO: StreamPos = (0, 0)
_MAX_PART = 2**64 - 1


class StreamUnavailable(Exception):
    """The hub lost Redis while a subscriber waited: resume from the last entry later."""


def parse_stream_id(value: str) -> StreamPos:
    """`"1700000000000-3"` -> (1700000000000, 3); `"0"` and `"1700000000000"` are accepted."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def format_stream_id(pos: StreamPos) -> str:
    return f"{pos[0]}-{pos[1]}"


def _after(pos: StreamPos) -> str | None:
    """The smallest stream id greater than `pos` (an exclusive XRANGE start on any Redis);
    None when there is none."""
    if pos[1] < _MAX_PART:
        return format_stream_id((pos[0], pos[1] + 1))
    return format_stream_id((pos[0] + 1, 0)) if pos[0] < _MAX_PART else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: the id, the event JSON as stored, and what the gateway needs of it."""

    id: str
    pos: StreamPos
    data: str
    type: str
    ts: float

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES


def _entry(raw_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    stream_id = raw_id.decode()
    data = fields.get(EVENT_FIELD.encode(), b"{}").decode("utf-8", errors="replace")
    kind, ts = "unknown", 0.0
    with contextlib.suppress(ValueError):
        parsed = json.loads(data)
        if isinstance(parsed, dict):
            kind = str(parsed.get("type", "unknown"))
            raw_ts = parsed.get("ts")
            ts = float(raw_ts) if isinstance(raw_ts, int | float) else 0.0
    return Entry(stream_id, parse_stream_id(stream_id), data, kind, ts)


class _Subscription:
    __slots__ = ("failed", "items", "job_id", "limit", "overflowed", "ready")

    def __init__(self, job_id: str, limit: int) -> None:
        self.job_id = job_id
        self.limit = limit
        self.items: deque[Entry] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.failed = False

    def fail(self) -> None:
        self.failed = True
        self.ready.set()

    def push(self, entry: Entry) -> bool:
        if len(self.items) >= self.limit:
            self.overflowed = True
            self.ready.set()
            return False
        self.items.append(entry)
        self.ready.set()
        return True


@dataclass(eq=False)
class _Followed:
    """A job some subscribers follow, with the reader's cursor in its stream."""

    cursor: StreamPos
    subscribers: set[_Subscription] = field(default_factory=set)


class _Reader:
    """One connection, one task, one blocking multi-key XREAD at a time."""

    def __init__(self, hub: StreamHub, index: int) -> None:
        self.hub = hub
        self.index = index
        self.redis: Redis = connect(
            hub.redis_url,
            single_connection_client=True,
            client_name=f"{hub.client_name}-reader",
        )
        self.jobs: dict[str, _Followed] = {}
        self.wake_key = gateway_wake_key(hub.instance, index)
        self.wake_cursor = "0-0"
        self.wake_pending = False
        self.task: asyncio.Task[None] | None = None

    def join(self, job_id: str, seen: StreamPos, limit: int) -> tuple[_Subscription, StreamPos]:
        sub = _Subscription(job_id, limit)
        followed = self.jobs.get(job_id)
        if followed is None:
            followed = self.jobs[job_id] = _Followed(cursor=seen)
            self._wake()
        followed.subscribers.add(sub)
        return sub, followed.cursor

    def leave(self, sub: _Subscription) -> None:
        followed = self.jobs.get(sub.job_id)
        if followed is None:
            return
        followed.subscribers.discard(sub)
        if not followed.subscribers:
            del self.jobs[sub.job_id]

    def _wake(self) -> None:
        if self.wake_pending or self.task is None:
            return
        self.wake_pending = True
        self.hub._spawn(self._send_wake())

    async def _send_wake(self) -> None:
        try:
            pipe = self.hub.pool.pipeline(transaction=False)
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=16, approximate=True)
            pipe.pexpire(self.wake_key, 3_600_000)
            await pipe.execute()
        except REDIS_ERRORS:
            # the reader's own read times out within block_ms and picks the job up then
            self.wake_pending = False

    async def run(self) -> None:
        failures = 0
        while True:
            self.wake_pending = False
            snapshot = dict(self.jobs)
            streams: dict[str, str] = {self.wake_key: self.wake_cursor}
            job_of_key: dict[str, str] = {}
            for job_id, followed in snapshot.items():
                key = events_key(job_id)
                job_of_key[key] = job_id
                streams[key] = format_stream_id(followed.cursor)
            try:
                reply = await self.redis.xread(
                    streams,  # type: ignore[arg-type]
                    count=self.hub.count,
                    block=self.hub.block_ms,
                )
                failures = 0
            except REDIS_ERRORS as e:
                failures += 1
                for followed in snapshot.values():
                    for sub in list(followed.subscribers):
                        sub.fail()
                delay = min(0.05 * 2**failures, 2.0)
                log.warning(
                    "stream reader %d: Redis error (%s); retrying in %.2fs",
                    self.index,
                    type(e).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            received = time.time()
            for raw_key, raw_entries in reply or []:
                key = raw_key.decode()
                if key == self.wake_key:
                    self.wake_cursor = raw_entries[-1][0].decode()
                    continue
                job_id = job_of_key.get(key, "")
                current = snapshot.get(job_id)
                # a job left and followed anew meanwhile reads again from its own cursor
                if current is None or self.jobs.get(job_id) is not current:
                    continue
                followed = current
                for raw_id, fields in raw_entries:
                    entry = _entry(raw_id, fields)
                    if entry.pos <= followed.cursor:
                        continue
                    followed.cursor = entry.pos
                    for sub in list(followed.subscribers):
                        if not sub.push(entry):
                            self.leave(sub)
                    self.hub._on_read(entry, received)


class StreamHub:
    """`async with StreamHub(url) as hub: async for entry in hub.follow(job_id, "0"): ...`"""

    def __init__(
        self,
        redis_url: str,
        *,
        pool: Redis,
        readers: int = 1,
        count: int = 500,
        block_ms: int = 5000,
        queue_limit: int = 10_000,
        client_name: str = "relayq-gateway",
        on_read: Callable[[Entry, float], None] | None = None,
    ) -> None:
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.redis_url = redis_url
        self.pool = pool
        self.count = count
        self.block_ms = block_ms
        self.queue_limit = queue_limit
        self.client_name = client_name
        self.instance = secrets.token_hex(6)
        self._on_read_cb = on_read
        # on a cluster every job's stream has a slot of its own and no multi-key XREAD can
        # span them: each follower then reads its job's stream itself (see _tail)
        self._direct = is_cluster(pool)
        self._readers = [] if self._direct else [_Reader(self, i) for i in range(readers)]
        self._tails = 0
        self._background: set[asyncio.Task[None]] = set()
        self.subscribers = 0

    async def __aenter__(self) -> StreamHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        for reader in self._readers:
            reader.task = asyncio.create_task(reader.run(), name=f"relayq-hub-{reader.index}")

    async def aclose(self) -> None:
        tasks = [r.task for r in self._readers if r.task is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await self.pool.delete(reader.wake_key)
            await reader.redis.aclose()

    @property
    def followed_jobs(self) -> int:
        return self._tails + sum(len(r.jobs) for r in self._readers)

    def _reader_of(self, job_id: str) -> _Reader:
        return self._readers[zlib.crc32(job_id.encode()) % len(self._readers)]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_read(self, entry: Entry, received: float) -> None:
        if self._on_read_cb is not None:
            self._on_read_cb(entry, received)

    async def _range(
        self, job_id: str, seen: StreamPos, until: StreamPos | None = None
    ) -> AsyncIterator[Entry]:
        """Entries after `seen` (up to `until` inclusive) read directly, in pages."""
        key = events_key(job_id)
        end = format_stream_id(until) if until is not None else "+"
        while True:
            start = _after(seen)
            if start is None:
                return
            page = await self.pool.xrange(key, start, end, count=self.count)
            for raw_id, fields in page:
                entry = _entry(raw_id, fields)
                seen = entry.pos
                yield entry
            if len(page) < self.count:
                return

    async def follow(
        self, job_id: str, after: str = "0", *, idle_s: float = 15.0
    ) -> AsyncIterator[Entry | None]:
        """Entries of the job's stream after id `after`, ending after the terminal event.

        Yields None after `idle_s` without an entry (a heartbeat for the caller). Ends early
        when the job's keys are gone (expired or never existed) while waiting.
        """
        seen = parse_stream_id(after)
        if self._direct:
            self.subscribers += 1
            try:
                async for entry in self._tail(job_id, seen, idle_s):
                    yield entry
            finally:
                self.subscribers -= 1
            return
        reader = self._reader_of(job_id)
        self.subscribers += 1
        try:
            while True:
                async for entry in self._range(job_id, seen):
                    seen = entry.pos
                    yield entry
                    if entry.terminal:
                        return
                sub, cursor = reader.join(job_id, seen, self.queue_limit)
                try:
                    if cursor > seen:
                        async for entry in self._range(job_id, seen, cursor):
                            seen = entry.pos
                            yield entry
                            if entry.terminal:
                                return
                    while True:
                        if sub.failed:
                            raise StreamUnavailable(job_id)
                        if not sub.items and not sub.overflowed:
                            sub.ready.clear()
                            try:
                                await asyncio.wait_for(sub.ready.wait(), idle_s)
                            except TimeoutError:
                                if not await self.pool.exists(events_key(job_id), job_key(job_id)):
                                    return
                                yield None
                                continue
                        while sub.items:
                            entry = sub.items.popleft()
                            if entry.pos <= seen:
                                continue
                            seen = entry.pos
                            yield entry
                            if entry.terminal:
                                return
                        if sub.overflowed:
                            break  # dropped by the reader: catch up from `seen` directly
                finally:
                    reader.leave(sub)
        finally:
            self.subscribers -= 1

    async def _tail(
        self, job_id: str, seen: StreamPos, idle_s: float
    ) -> AsyncIterator[Entry | None]:
        """One follower's own blocking XREAD of its job's stream (a pool connection while it
        waits): the hub's way on Redis Cluster."""
        key = events_key(job_id)
        self._tails += 1
        try:
            while True:
                try:
                    reply = await self.pool.xread(
                        {key: format_stream_id(seen)}, count=self.count, block=int(idle_s * 1000)
                    )
                    if not reply:
                        exists = ("EXISTS", key, job_key(job_id))  # one slot, one command
                        if not await self.pool.execute_command(*exists):  # type: ignore[no-untyped-call]
                            return
                except REDIS_ERRORS as e:
                    raise StreamUnavailable(job_id) from e
                if not reply:
                    yield None
                    continue
                received = time.time()
                for raw_id, fields in reply[0][1]:
                    entry = _entry(raw_id, fields)
                    seen = entry.pos
                    self._on_read(entry, received)
                    yield entry
                    if entry.terminal:
                        return
        finally:
            self._tails -= 1
