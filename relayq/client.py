"""The Python client: submit jobs, read their event streams, cancel them.

    async with relayq.Client("redis://localhost:6379") as client:
        job = await client.submit(ChatJob(prompt="Hello"))
        async for entry in client.events(job.id):
            print(entry.id, entry.event)

`events()` reads the job's stream from any stream id (`after="0"`: from the start) and ends
after the terminal event, so a subscriber that lost its connection resumes from the last id it
saw with no gap and no duplicate.

Everything it raises is a `relayq.errors.RelayqError`; Redis errors are translated where they
enter, after the connection's own retries (`relayq.connection`) have run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import ValidationError
from redis.asyncio import Redis

from relayq import tracing
from relayq.connection import REDIS_ERRORS, Ack, ScriptCall, connect, parse_redis_url, replicated
from relayq.contract import Scripts
from relayq.errors import (
    InvalidJob,
    JobNotFound,
    NotConfigured,
    NotReplicated,
    RedisUnavailable,
    ScreenshotGone,
)
from relayq.schemas.constants import (
    CANCEL_CHANNEL,
    CHAT,
    EVENT_FIELD,
    JOBS_INDEX,
    QUEUE_OF_KIND,
    blobs_key,
    envelope_key,
    events_key,
    job_key,
    job_slot_keys,
    queue_keys_of,
    tenant_jobs_key,
)
from relayq.schemas.events import Event, is_terminal, parse_event
from relayq.schemas.jobs import ChatJob, _JobBase
from relayq.schemas.settings import Settings
from relayq.schemas.status import STATUS_FIELDS, job_status_from_hash
from relayq.schemas.status import JobStatus as JobStatus  # re-exported: relayq.JobStatus
from relayq.schemas.validation import error_text

logger = logging.getLogger(__name__)

QUEUED_TTL_S = 24 * 3600
"""A job that no worker has started this long after its submission expires."""
RECENT_INDEX_MS = 7 * 24 * 3600 * 1000
_TERMINAL = ("done", "error", "cancelled")

CancelOutcome = Literal["unknown", "finished", "cancelled", "signalled"]


@contextlib.contextmanager
def _redis_errors_translated() -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as e:
        raise RedisUnavailable(f"Redis did not answer: {e}") from e


@dataclass(frozen=True)
class Submitted:
    id: str
    created: bool
    status: str


@dataclass(frozen=True)
class StreamEntry:
    id: str
    event: Event


class Client:
    def __init__(
        self,
        redis_url: str | None = None,
        *,
        redis: Redis | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings or Settings()
        url = redis_url or self._settings.redis_url
        try:
            # a submission needs `ack.replicas` replicas to confirm it (cluster and sentinel)
            self._ack = parse_redis_url(url).ack if url else Ack()
            if redis is None:
                if url is None:
                    raise NotConfigured("give a redis_url (or set RELAYQ_REDIS_URL)")
                redis = connect(url)
                self._owns_redis = True
            else:
                self._owns_redis = False
        except ValueError as e:
            raise NotConfigured(f"RELAYQ_REDIS_URL / redis_url {url!r}: {e}") from e
        self._redis: Redis = redis
        self._scripts = Scripts(self._redis)

    @property
    def redis(self) -> Redis:
        return self._redis

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_redis:
            await self._redis.aclose()

    async def submit(self, job: _JobBase, *, tenant: str = "") -> Submitted:
        """Enqueues `job` unless a job with its id exists; then returns the existing one.

        Submitting is two steps (CONTRACT.md, Enqueue): the job on its own slot, then its entry
        on the queue's slot. Both are idempotent, so submitting the same id again, after a crash
        or an error between them, completes the first submission and never runs a job twice.
        Raises NotReplicated when the URL asks replicas to confirm it and they did not in time.
        """
        kind = str(getattr(job, "kind", "chat"))
        with (
            tracing.span("relayq.enqueue", {"relayq.job_id": job.id, "relayq.kind": kind}),
            _redis_errors_translated(),
        ):
            return await self._enqueue(tracing.inject(job), kind, tenant)

    async def _enqueue(self, job: _JobBase, kind: str, tenant: str) -> Submitted:
        queue = QUEUE_OF_KIND[kind]
        (reply,) = await self._durably(
            job_key(job.id),
            ScriptCall(
                self._scripts["enqueue"],
                [job_key(job.id), events_key(job.id)],
                [
                    job.id,
                    job.model_dump_json(exclude_defaults=False),
                    kind,
                    job.model,
                    self._settings.stream_maxlen,
                    queue.waiting,
                    tenant,
                    QUEUED_TTL_S,
                ],
            ),
        )
        created, raw_status, created_ms = reply
        status = raw_status.decode()
        if status not in _TERMINAL:
            admit = ScriptCall(
                self._scripts["admit"], [queue.waiting, queue.leases], [job.id, queue.wake]
            )
            await asyncio.gather(
                self._durably(queue.waiting, admit), self._index(job.id, tenant, created_ms)
            )
        return Submitted(id=job.id, created=bool(created), status=status)

    async def _durably(self, slot_key: str, call: ScriptCall) -> list[Any]:
        replies, acked = await replicated(self._redis, slot_key, [call], self._ack)
        if acked < self._ack.replicas:
            raise NotReplicated(
                f"{acked} of {self._ack.replicas} replica(s) confirmed the submission within "
                f"{self._ack.timeout_ms} ms; submit the same job again (safe) or lower "
                "ack_replicas in RELAYQ_REDIS_URL"
            )
        return replies

    async def _index(self, job_id: str, tenant: str, created_ms: int) -> None:
        """The recent-jobs indexes (7 days), each a slot of its own: the shared one (`relayq
        jobs`) and the tenant's own, which the gateway lists (no other tenant's jobs crowd it).
        Scored by the job's created_ms; single commands, not a pipeline: on a cluster they go to
        two shards."""
        await asyncio.gather(
            *(
                command
                for index in (JOBS_INDEX, tenant_jobs_key(tenant))
                for command in (
                    self._redis.zadd(index, {job_id: created_ms}, nx=True),
                    self._redis.zremrangebyscore(index, "-inf", created_ms - RECENT_INDEX_MS),
                )
            )
        )

    async def events(
        self, job_id: str, after: str = "0", *, block_ms: int = 5000
    ) -> AsyncIterator[StreamEntry]:
        """Yields the job's events after stream id `after`, ending after the terminal event.

        Raises JobNotFound if the job does not exist. A dropped connection is re-established
        and the read resumes from the last id yielded (the connection's retries). It raises
        RedisUnavailable when those run out, and also when Redis dies between accepting a new
        connection and answering its greeting (redis-py's pool retries neither the greeting
        nor the command then): either way, call again with the last id you saw.
        """
        key = events_key(job_id)
        # a raw producer's job has only its envelope until a worker starts it
        exists = ("EXISTS", key, job_key(job_id), envelope_key(job_id))  # one slot, one command
        with _redis_errors_translated():
            if not await self._redis.execute_command(*exists):  # type: ignore[no-untyped-call]
                raise JobNotFound(job_id)
        last = after
        while True:
            with _redis_errors_translated():
                reply = await self._redis.xread({key: last}, count=500, block=block_ms)
                if not reply and not await self._redis.execute_command(*exists):  # type: ignore[no-untyped-call]
                    return
            for stream_id, fields in reply[0][1] if reply else ():
                last = stream_id.decode()
                try:
                    event = parse_event(fields[EVENT_FIELD.encode()])
                except (KeyError, ValueError):
                    logger.warning("job %s: skipped unreadable stream entry %s", job_id, last)
                    continue
                yield StreamEntry(id=last, event=event)
                if is_terminal(event):
                    return

    async def cancel(self, job_id: str, reason: str = "cancelled by a client") -> CancelOutcome:
        """Cancels a queued or running job. Unknown or finished jobs: a no-op."""
        with _redis_errors_translated():
            return await self._cancel(job_id, reason)

    async def _cancel(self, job_id: str, reason: str) -> CancelOutcome:
        outcome: bytes = await self._scripts.call(
            "cancel",
            job_slot_keys(job_id),
            [
                job_id,
                reason,
                self._settings.stream_maxlen,
                self._settings.stream_ttl_s,
                CANCEL_CHANNEL,
            ],
        )
        if outcome == b"cancelled":
            # the job's own slot decided; its queue entry is only a leftover now (a worker that
            # claims it finds the job ended), removed here to keep the queue's depth honest
            raw: bytes | None = await self._redis.hget(job_key(job_id), "queue")  # type: ignore[misc]
            with contextlib.suppress(ValueError):
                queue = queue_keys_of(raw.decode()) if raw else CHAT
                await self._redis.zrem(queue.waiting, job_id)
        return outcome.decode()  # type: ignore[return-value]

    async def screenshot(self, job_id: str, blob: int) -> bytes:
        """The image bytes a `screenshot` event refers to. Raises ScreenshotGone once expired."""
        with _redis_errors_translated():
            data: bytes | None = await self._redis.hget(blobs_key(job_id), str(blob))  # type: ignore[misc]
        if data is None:
            raise ScreenshotGone(f"screenshot {blob} of job {job_id} is gone (expired or unknown)")
        return data

    async def status(self, job_id: str) -> JobStatus:
        with _redis_errors_translated():
            values: list[bytes | None] = await self._redis.hmget(  # type: ignore[misc]
                job_key(job_id), list(STATUS_FIELDS)
            )
        fields = {k: v.decode() for k, v in zip(STATUS_FIELDS, values, strict=True) if v}
        if not fields:
            raise JobNotFound(job_id)
        return job_status_from_hash(job_id, fields)

    async def recent(self, *, limit: int = 50, before_ms: int | None = None) -> list[JobStatus]:
        """Most recent jobs first; page with `before_ms` = the last one's created_ms."""
        top = f"({before_ms}" if before_ms is not None else "+inf"
        with _redis_errors_translated():
            ids = await self._redis.zrevrangebyscore(JOBS_INDEX, top, "-inf", start=0, num=limit)
        statuses: list[JobStatus] = []
        for raw in ids:
            with contextlib.suppress(JobNotFound):
                statuses.append(await self.status(raw.decode()))
        return statuses

    async def submit_chat(self, prompt: str, **fields: object) -> Submitted:
        try:
            job = ChatJob.model_validate({"prompt": prompt, **fields})
        except ValidationError as e:
            raise InvalidJob(error_text(e)) from e
        return await self.submit(job)
