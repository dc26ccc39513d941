"""`GET /v1/jobs/{id}/events`: a job's stream as Server-Sent Events, fanned out by the hub.

The SSE `id:` is the Redis stream id, so `Last-Event-ID` (or `?after=`) resumes with no gap and
no duplicate.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from relayq.gateway.auth import Tenant
from relayq.gateway.hub import Entry
from relayq.gateway.jobs import JobIdPath
from relayq.gateway.problems import NOT_FOUND, Problem, bad_request
from relayq.gateway.records import owned
from relayq.gateway.state import state_of

STREAM_ID_PATTERN = r"^\d{1,20}(-\d{1,20})?$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _sse(entry: Entry) -> bytes:
    data = entry.data if "\n" not in entry.data else entry.data.replace("\n", "\ndata: ")
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {data}\n\n".encode()


@router.get(
    "/{job_id}/events",
    summary="The job's events as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`id:` the stream id, `event:` the type, `data:` the event JSON; "
            "`: keep-alive` comments while idle; the response ends after the terminal event.",
        },
        400: {"model": Problem, "description": "Bad resume id"},
        **NOT_FOUND,
    },
)
async def job_events(
    request: Request,
    tenant: Tenant,
    job_id: JobIdPath,
    after: Annotated[
        str | None,
        Query(max_length=41, description="Resume after this stream id (`0`: from the start)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=41, description="Wins over `after`."),
    ] = None,
) -> StreamingResponse:
    state = state_of(request)
    pool, _, hub = state.ready()
    start = (last_event_id or "").strip() or after or "0"
    if not _STREAM_ID.match(start):
        raise bad_request("the resume id must be a stream id like 1700000000000-0")
    await owned(pool, job_id, tenant)
    metrics = state.metrics
    heartbeat = state.settings.gateway_heartbeat_s

    async def stream() -> AsyncIterator[bytes]:
        metrics.streams.inc()
        try:
            yield b"retry: 2000\n\n"
            async for entry in hub.follow(job_id, start, idle_s=heartbeat):
                if entry is None:
                    yield b": keep-alive\n\n"
                    continue
                metrics.sse_events.labels(entry.type).inc()
                yield _sse(entry)
        finally:
            metrics.streams.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
