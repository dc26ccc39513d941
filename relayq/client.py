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

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from pydantic import ValidationError
from redis.asyncio import Redis

from relayq import tracing
from relayq.connection import REDIS_ERRORS, connect
from relayq.contract import Scripts
from relayq.errors import (
    InvalidJob,
    JobNotFound,
    NotConfigured,
    RedisUnavailable,
    ScreenshotGone,
)
from relayq.schemas.constants import (
    CANCEL_CHANNEL,
    EVENT_FIELD,
    JOBS_INDEX,
    QUEUES,
    blob_key,
    cancel_key,
    events_key,
    job_key,
    tenant_jobs_key,
)
from relayq.schemas.events import Event, is_terminal, parse_event
from relayq.schemas.jobs import ChatJob, _JobBase
from relayq.schemas.settings import Settings
from relayq.schemas.status import STATUS_FIELDS, job_status_from_hash
from relayq.schemas.status import JobStatus as JobStatus  # re-exported: relayq.JobStatus
from relayq.schemas.validation import error_text

logger = logging.getLogger(__name__)

ARQ_JOB_TTL_MS = 24 * 3600 * 1000
RECENT_INDEX_MS = 7 * 24 * 3600 * 1000
_FUNCTIONS = {"chat": "chat", "computer_use": "computer_use"}
_QUEUE_OF_KIND = {"chat": "chat", "computer_use": "computer"}

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
        if redis is None:
            if url is None:
                raise NotConfigured("give a redis_url (or set RELAYQ_REDIS_URL)")
            try:
                redis = connect(url)
            except ValueError as e:
                raise NotConfigured(f"RELAYQ_REDIS_URL / redis_url {url!r}: {e}") from e
            self._owns_redis = True
        else:
            self._owns_redis = False
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
        """Enqueues `job` unless a job with its id exists; then returns the existing one."""
        kind = str(getattr(job, "kind", "chat"))
        queue = QUEUES[_QUEUE_OF_KIND[kind]]
        with (
            tracing.span("relayq.enqueue", {"relayq.job_id": job.id, "relayq.kind": kind}),
            _redis_errors_translated(),
        ):
            return await self._enqueue(tracing.inject(job), kind, queue, tenant)

    async def _enqueue(self, job: _JobBase, kind: str, queue: str, tenant: str) -> Submitted:
        created, status = await self._scripts.call(
            "enqueue",
            [job_key(job.id), events_key(job.id), f"arq:job:{job.id}", queue, JOBS_INDEX],
            [
                job.id,
                job.model_dump_json(exclude_defaults=False),
                kind,
                _FUNCTIONS[kind],
                job.model,
                self._settings.stream_maxlen,
                ARQ_JOB_TTL_MS,
                tenant,
            ],
        )
        if created:
            await self._index_for_tenant(job.id, tenant)
        return Submitted(id=job.id, created=bool(created), status=status.decode())

    async def _index_for_tenant(self, job_id: str, tenant: str) -> None:
        """The tenant's own recent-jobs index, which the gateway lists (7 days, like the shared
        one): no other tenant's jobs can crowd it."""
        now_ms = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(tenant_jobs_key(tenant), {job_id: now_ms})
        pipe.zremrangebyscore(tenant_jobs_key(tenant), "-inf", now_ms - RECENT_INDEX_MS)
        await pipe.execute()

    async def events(
        self, job_id: str, after: str = "0", *, block_ms: int = 5000
    ) -> AsyncIterator[StreamEntry]:
        """Yields the job's events after stream id `after`, ending after the terminal event.

        Raises JobNotFound if the job does not exist. A dropped connection is re-established
        and the read resumes from the last id yielded (the connection's retries); after those
        run out, RedisUnavailable: call again with the last id you saw.
        """
        key = events_key(job_id)
        with _redis_errors_translated():
            if not await self._redis.exists(key, job_key(job_id)):
                raise JobNotFound(job_id)
        last = after
        while True:
            with _redis_errors_translated():
                reply = await self._redis.xread({key: last}, count=500, block=block_ms)
                if not reply and not await self._redis.exists(key, job_key(job_id)):
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
        raw: bytes | None = await self._redis.hget(job_key(job_id), "queue")  # type: ignore[misc]
        queue = raw.decode() if raw else QUEUES["chat"]
        outcome: bytes = await self._scripts.call(
            "cancel",
            [
                job_key(job_id),
                events_key(job_id),
                cancel_key(job_id),
                f"arq:job:{job_id}",
                queue,
                CANCEL_CHANNEL,
            ],
            [job_id, reason, self._settings.stream_maxlen, self._settings.stream_ttl_s],
        )
        return outcome.decode()  # type: ignore[return-value]

    async def screenshot(self, job_id: str, blob: int) -> bytes:
        """The image bytes a `screenshot` event refers to. Raises ScreenshotGone once expired."""
        with _redis_errors_translated():
            data: bytes | None = await self._redis.get(blob_key(job_id, blob))
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
