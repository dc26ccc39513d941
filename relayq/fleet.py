"""What the fleet is doing, read from Redis: queue depth and a job's place in its queue, and the
workers alive. Producer-safe (redis + the key names of relayq.schemas.constants), for `relayq
status`, `relayq watch` and anything else that shows the fleet.

A queue holds three kinds of jobs: waiting (due, in its waiting set), delayed (in the waiting
set, due later: a retry's backoff) and running (moved to the queue's leases by the worker that
claimed them). Depth is the waiting ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from relayq.schemas.constants import (
    EVENT_FIELD,
    QUEUE_KEYS,
    QUEUES,
    WORKERS_PATTERN,
    events_key,
)
from relayq.schemas.events import Error, ErrorInfo, parse_event


@dataclass(frozen=True)
class QueueDepth:
    name: str
    key: str
    waiting: int
    running: int
    delayed: int
    oldest_wait_s: float
    """How long the oldest waiting job has been due (0.0 when none waits)."""


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    """Queue names (`chat`, `computer`), not keys."""
    running: tuple[str, ...]
    seen_s_ago: float
    browser_contexts: int | None

    def serves(self, queue: str) -> bool:
        return queue in self.queues


def queue_name_of(key: str) -> str:
    """`chat` for the chat queue's key; the key itself when it is no queue of ours."""
    for name, queue_key in QUEUES.items():
        if queue_key == key:
            return name
    return key


async def queue_depth(redis: Redis, name: str) -> QueueDepth:
    queue = QUEUE_KEYS[name]
    now_ms = time.time() * 1000
    total: int = await redis.zcard(queue.waiting)
    due: int = await redis.zcount(queue.waiting, "-inf", now_ms)
    running: int = await redis.zcard(queue.leases)
    oldest = await redis.zrangebyscore(
        queue.waiting, "-inf", now_ms, start=0, num=1, withscores=True
    )
    return QueueDepth(
        name=name,
        key=queue.waiting,
        waiting=due,
        running=running,
        delayed=total - due,
        oldest_wait_s=round((now_ms - oldest[0][1]) / 1000, 3) if oldest else 0.0,
    )


async def queue_position(redis: Redis, name: str, job_id: str) -> int | None:
    """1 when `job_id` is the next waiting job a worker of queue `name` takes; None when it
    is not waiting there (running, delayed, finished, or on another queue)."""
    key = QUEUES[name]
    score = await redis.zscore(key, job_id)
    if score is None or score > time.time() * 1000:
        return None
    rank: int | None = await redis.zrank(key, job_id)  # workers claim in this order
    return None if rank is None else rank + 1


async def live_workers(redis: Redis) -> list[WorkerInfo]:
    """Every worker whose self-description has not expired (it is refreshed by the worker's
    heartbeat and lapses a few heartbeats after the worker stops)."""
    keys = [key async for key in redis.scan_iter(match=WORKERS_PATTERN, count=500)]
    # one GET each: on a cluster the workers' keys are in many slots, which MGET cannot span
    raws = await asyncio.gather(*(redis.get(key) for key in keys))
    now = time.time()
    workers = []
    for raw in raws:
        if not raw:
            continue
        try:
            described = json.loads(raw)
            browser = described.get("browser") or {}
            workers.append(
                WorkerInfo(
                    id=str(described["id"]),
                    host=str(described.get("host", "")),
                    pid=int(described.get("pid", 0)),
                    queues=tuple(queue_name_of(str(q)) for q in described.get("queues", [])),
                    running=tuple(str(j) for j in described.get("running", [])),
                    seen_s_ago=round(max(0.0, now - float(described.get("ts", now))), 1),
                    browser_contexts=browser.get("contexts_live"),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # another version's description: not ours to read
    return sorted(workers, key=lambda w: w.id)


async def final_errors(redis: Redis, job_ids: list[str]) -> dict[str, ErrorInfo]:
    """What failed, for those of `job_ids` whose stream ends with an `error` event."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.xrevrange(events_key(job_id), count=1)
        lasts = await pipe.execute()
    errors: dict[str, ErrorInfo] = {}
    for job_id, last in zip(job_ids, lasts, strict=True):
        if not last:
            continue
        try:
            event = parse_event(last[0][1][EVENT_FIELD.encode()])
        except (KeyError, ValueError):
            continue
        if isinstance(event, Error):
            errors[job_id] = event.error
    return errors
