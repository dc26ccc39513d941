"""`GET /v1/jobs/{id}/events`: a job's stream as Server-Sent Events, fanned out by the hub.

The SSE `id:` is the Redis stream id, so `Last-Event-ID` (or `?after=`) resumes with no gap and
no duplicate. When Redis stops answering, the response ends cleanly (a last `: ` comment says
so) instead of breaking off: the client reconnects with the last id it saw.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from relayq.connection import REDIS_ERRORS
from relayq.gateway.auth import Authenticated
from relayq.gateway.hub import Entry, StreamUnavailable, parse_stream_id
from relayq.gateway.jobs import JobIdPath
from relayq.gateway.problems import NOT_FOUND, Problem, bad_request
from relayq.gateway.records import owned
from relayq.gateway.state import state_of

log = logging.getLogger(__name__)

STREAM_ID_PATTERN = r"^\d{1,20}(-\d{1,20})?$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
_MAX_PART = 2**64 - 1

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _sse(entry: Entry, data: str) -> bytes:
    if "\n" in data:
        data = data.replace("\n", "\ndata: ")
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {data}\n\n".encode()


def _resume_id(value: str) -> str:
    """A stream id Redis accepts (each part at most 2^64-1), or 400."""
    if _STREAM_ID.match(value) and max(parse_stream_id(value)) <= _MAX_PART:
        return value
    raise bad_request(
        "the resume id must be a stream id like 1700000000000-0 (each part below 2^64)"
    )


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
    caller: Authenticated,
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
    start = _resume_id((last_event_id or "").strip() or after or "0")
    stored_id, _ = await owned(pool, caller, job_id)
    metrics = state.metrics
    heartbeat = state.settings.gateway_heartbeat_s
    # events name the job by its stored id: the tenant reads the id it submitted
    stored_ref = f'"job_id":"{stored_id}"'
    visible_ref = f'"job_id":"{job_id}"'

    async def stream() -> AsyncIterator[bytes]:
        metrics.streams.inc()
        try:
            yield b"retry: 2000\n\n"
            async for entry in hub.follow(stored_id, start, idle_s=heartbeat):
                if entry is None:
                    yield b": keep-alive\n\n"
                    continue
                metrics.sse_events.labels(entry.type).inc()
                yield _sse(entry, entry.data.replace(stored_ref, visible_ref, 1))
        except (StreamUnavailable, *REDIS_ERRORS) as e:
            log.warning("event stream of %s ended: Redis unavailable (%s)", stored_id,
                        type(e).__name__)  # fmt: skip
            yield b": redis unavailable; reconnect with Last-Event-ID\n\n"
        finally:
            metrics.streams.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
