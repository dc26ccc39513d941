"""`/v1/jobs`: submit, list, status, screenshots and cancel, for the caller's tenant only."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from relayq.gateway.auth import Tenant
from relayq.gateway.models import Cancelled, JobAccepted, JobList, JobView
from relayq.gateway.problems import (
    NOT_FOUND,
    Problem,
    ProblemError,
    bad_request,
    unprocessable,
)
from relayq.gateway.records import decode_fields, job_view, links, owned
from relayq.gateway.state import state_of
from relayq.schemas.constants import JOBS_INDEX, job_key
from relayq.schemas.jobs import JOB_KINDS, ComputerUseJob
from relayq.schemas.status import STATUS_FIELDS
from relayq.schemas.validation import describe_problems, validation_problems

log = logging.getLogger(__name__)

JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
JobIdPath = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="The job id.")]
_CURSOR = re.compile(r"^(\d{1,20}):([A-Za-z0-9_.:-]{1,128})$")
_LIST_SCAN_LIMIT = 5000

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, "Content Too Large", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "Content Too Large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _idempotent_id(tenant: str, key: str) -> str:
    return "job_" + hashlib.sha256(f"{tenant}\x00{key}".encode()).hexdigest()[:32]


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit a job",
    responses={
        400: {"model": Problem, "description": "The body is not JSON"},
        403: {"model": Problem, "description": "A job option this gateway does not allow"},
        409: {"model": Problem, "description": "The job id belongs to another tenant"},
        413: {"model": Problem, "description": "The body is too large"},
        422: {"model": Problem, "description": "The job is invalid"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        }
    },
)
async def submit_job(
    request: Request,
    tenant: Tenant,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Submitting again with the same key returns the same job, which "
            "runs once (while the job's keys live). Ignored when the body has an `id`.",
        ),
    ] = None,
) -> Response:
    """Body: a job (`kind` `chat`, the default, or `computer_use`) as in CONTRACT.md. A chat
    job takes `prompt` (+ `system`) or `messages`. Returns 202 with the id and links."""
    state = state_of(request)
    pool, client, _ = state.ready()
    raw = await _read_body(request, state.settings.gateway_max_body_bytes)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad_request(f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise unprocessable("the body must be a JSON object")
    kind = data.get("kind", "chat")
    model = JOB_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise unprocessable(
            f"unknown job kind; expected one of {sorted(JOB_KINDS)}",
            [{"loc": ["kind"], "msg": "unknown job kind", "type": "literal_error"}],
        )
    if idempotency_key is not None and "id" not in data:
        data["id"] = _idempotent_id(tenant, idempotency_key)
    try:
        job = model.model_validate_json(json.dumps(data))
    except ValidationError as e:
        errors = validation_problems(e)
        raise unprocessable("invalid job: " + describe_problems(errors), errors) from None
    if (
        isinstance(job, ComputerUseJob)
        and job.allow_private_network
        and not state.settings.gateway_allow_private_network
    ):
        raise ProblemError(
            403,
            "Forbidden",
            "this gateway does not accept allow_private_network "
            "(RELAYQ_GATEWAY_ALLOW_PRIVATE_NETWORK is off)",
        )
    submitted = await client.submit(job, tenant=tenant)
    if not submitted.created:
        owner, stored = await pool.hmget(job_key(job.id), ["tenant", "job"])  # type: ignore[misc]
        if owner is None or owner.decode() != tenant:
            raise ProblemError(409, "Conflict", "this job id is taken; choose another")
        if stored is not None and stored.decode() != job.model_dump_json():
            raise unprocessable(
                "a job with this id or Idempotency-Key exists with a different body"
            )
    state.metrics.submitted.labels(str(kind), str(submitted.created).lower()).inc()
    log.info("job %s (%s) submitted for tenant %s (new: %s)", job.id, kind, tenant,
             submitted.created)  # fmt: skip
    body = JobAccepted(
        id=job.id, status=submitted.status, created=submitted.created, links=links(job.id)
    )
    headers = {"Location": body.links.self}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


@router.get("", response_model=JobList, summary="Recent jobs")
async def list_jobs(
    request: Request,
    tenant: Tenant,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=160, description="`next_cursor` of the previous page")
    ] = None,
    status: Annotated[
        Literal["queued", "running", "retrying", "done", "error", "cancelled"] | None,
        Query(description="Only jobs in this status"),
    ] = None,
) -> JobList:
    """The tenant's jobs, newest first (the recent-jobs index keeps 7 days)."""
    state = state_of(request)
    pool, _, _ = state.ready()
    top, skip_from = "+inf", None
    if cursor is not None:
        m = _CURSOR.match(cursor)
        if m is None:
            raise bad_request("cursor is not a `next_cursor` value")
        top, skip_from = m.group(1), (int(m.group(1)), m.group(2))
    jobs: list[JobView] = []
    last: tuple[int, str] | None = None
    more = True
    offset = scanned = 0
    while len(jobs) < limit and scanned < _LIST_SCAN_LIMIT:
        page: list[tuple[bytes, float]] = await pool.zrevrangebyscore(
            JOBS_INDEX, top, "-inf", start=offset, num=200, withscores=True
        )
        offset += len(page)
        candidates: list[tuple[str, int]] = []
        for raw_id, score in page:
            job_id, created = raw_id.decode(), int(score)
            if skip_from is not None and created == skip_from[0] and job_id >= skip_from[1]:
                continue  # at or before the cursor (same ms: reverse id order)
            candidates.append((job_id, created))
        pipe = pool.pipeline(transaction=False)
        for job_id, _ in candidates:
            pipe.hmget(job_key(job_id), list(STATUS_FIELDS))
        rows: list[list[bytes | None]] = await pipe.execute() if candidates else []
        for (job_id, created), values in zip(candidates, rows, strict=True):
            scanned += 1
            last = (created, job_id)
            f = decode_fields(values)
            if f.get("tenant") != tenant or (status and f.get("status") != status):
                continue
            jobs.append(job_view(job_id, f, state.prices))
            if len(jobs) == limit:
                break
        if len(jobs) < limit and len(page) < 200:
            more = False
            break
    next_cursor = f"{last[0]}:{last[1]}" if last is not None and more else None
    query = f"limit={limit}" + (f"&status={status}" if status else "")
    return JobList(
        jobs=jobs,
        next_cursor=next_cursor,
        next=f"/v1/jobs?{query}&cursor={next_cursor}" if next_cursor else None,
    )


@router.get("/{job_id}", response_model=JobView, summary="A job's status", responses=NOT_FOUND)
async def get_job(request: Request, tenant: Tenant, job_id: JobIdPath) -> JobView:
    state = state_of(request)
    pool, _, _ = state.ready()
    return job_view(job_id, await owned(pool, job_id, tenant), state.prices)


@router.get(
    "/{job_id}/screenshots/{n}",
    summary="A screenshot's image bytes",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        **NOT_FOUND,
    },
)
async def screenshot(
    request: Request,
    tenant: Tenant,
    job_id: JobIdPath,
    n: Annotated[int, PathParam(ge=1, le=1_000_000, description="The event's `blob`")],
) -> Response:
    pool, client, _ = state_of(request).ready()
    await owned(pool, job_id, tenant)
    try:
        data = await client.screenshot(job_id, n)
    except LookupError:
        raise ProblemError(404, "Not Found", f"no screenshot {n} of job {job_id!r}") from None
    return Response(
        data,
        media_type=_image_type(data),
        headers={"Cache-Control": "private, max-age=3600, immutable"},
    )


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=Cancelled,
    summary="Cancel a job",
    responses=NOT_FOUND,
)
async def cancel_job(request: Request, tenant: Tenant, job_id: JobIdPath) -> Cancelled:
    """`cancelled`: it was waiting and ended now; `signalled`: its worker stops it (watch
    for the `cancelled` event); `finished`: it had already ended."""
    pool, client, _ = state_of(request).ready()
    await owned(pool, job_id, tenant)
    outcome = await client.cancel(job_id, reason=f"cancelled through the gateway by {tenant}")
    log.info("job %s cancel requested by tenant %s: %s", job_id, tenant, outcome)
    return Cancelled(id=job_id, outcome=outcome)
