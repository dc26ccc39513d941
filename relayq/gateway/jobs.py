"""`/v1/jobs`: submit, list, status, request, re-run, screenshots and cancel, for the caller's
tenant only (`relayq.gateway.tenancy` maps its ids)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from relayq.gateway.auth import Authenticated
from relayq.gateway.limits import Admission
from relayq.gateway.models import Cancelled, JobAccepted, JobList, JobView
from relayq.gateway.problems import (
    NOT_FOUND,
    Problem,
    ProblemError,
    bad_request,
    unprocessable,
)
from relayq.gateway.records import decode_fields, job_view, links, owned
from relayq.gateway.state import GatewayState, state_of
from relayq.gateway.tenancy import Caller
from relayq.schemas.constants import job_key, tenant_jobs_key
from relayq.schemas.jobs import JOB_KINDS, ComputerUseJob, _JobBase, new_job_id, parse_job
from relayq.schemas.status import STATUS_FIELDS
from relayq.schemas.validation import describe_problems, error_text, validation_problems

log = logging.getLogger(__name__)

JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
JobIdPath = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="The job id.")]
_CURSOR = re.compile(r"^(\d{1,15}):([A-Za-z0-9_.:-]{1,128})$")
_PAGE = 200
_LIST_SCAN_LIMIT = 5000
MASK = "***"

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON, or nests too deeply"},
    403: {"model": Problem, "description": "A job option this gateway does not allow"},
    413: {"model": Problem, "description": "The body is too large"},
    422: {"model": Problem, "description": "The job is invalid"},
    429: {"model": Problem, "description": "Over the tenant's submit rate or daily quota"},
}


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


def _parse_job(raw: bytes) -> tuple[_JobBase, bool]:
    """The body as a job, and whether it named its id: 400 or 422 when it is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad_request(f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise bad_request("the body nests too deeply") from None
    if not isinstance(data, dict):
        raise unprocessable("the body must be a JSON object")
    kind = data.get("kind", "chat")
    model = JOB_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise unprocessable(
            f"unknown job kind; expected one of {sorted(JOB_KINDS)}",
            [{"loc": ["kind"], "msg": "unknown job kind", "type": "literal_error"}],
        )
    try:
        return model.model_validate_json(raw), "id" in data
    except ValidationError as e:
        errors = validation_problems(e)
        raise unprocessable("invalid job: " + describe_problems(errors), errors) from None
    except RecursionError:
        raise bad_request("the body nests too deeply") from None


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


async def _enqueue(
    state: GatewayState, caller: Caller, job: _JobBase, visible_id: str, admission: Admission
) -> Response:
    """Submits `job` (already under its stored id): 202 and its links."""
    pool, client, _ = state.ready()
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
    submitted = await client.submit(job, tenant=caller.owner)
    if submitted.created:
        admission.created()
    if not submitted.created:
        owner, stored = await pool.hmget(job_key(job.id), ["tenant", "job"])  # type: ignore[misc]
        if owner is None or owner.decode() != caller.owner:
            # only a producer writing to Redis directly can have taken an id of the local tenant
            raise ProblemError(409, "Conflict", "this job id is taken; choose another")
        if stored is not None and stored.decode() != job.model_dump_json():
            raise unprocessable(
                "a job with this id or Idempotency-Key exists with a different body"
            )
    kind = str(getattr(job, "kind", "chat"))
    state.metrics.submitted.labels(kind, str(submitted.created).lower()).inc()
    log.info("job %s (%s) submitted for tenant %s (new: %s)", job.id, kind, caller.tenant,
             submitted.created)  # fmt: skip
    body = JobAccepted(
        id=visible_id, status=submitted.status, created=submitted.created, links=links(visible_id)
    )
    headers = {"Location": body.links.self}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit a job",
    responses=_ACCEPTED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        }
    },
)
async def submit_job(
    request: Request,
    caller: Authenticated,
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
    async with state.submit_limits().admit(caller.tenant) as admission:
        raw = await _read_body(request, state.settings.gateway_max_body_bytes)
        job, named = _parse_job(raw)
        if idempotency_key is not None and not named:
            job = job.model_copy(update={"id": _idempotent_id(caller.tenant, idempotency_key)})
        stored_id = caller.stored_id(job.id)
        if stored_id is None:
            problem = [{"loc": ["id"], "msg": caller.id_problem(job.id), "type": "value_error"}]
            raise unprocessable("invalid job: id: " + caller.id_problem(job.id), problem)
        stored = job.model_copy(update={"id": stored_id})
        return await _enqueue(state, caller, stored, job.id, admission)


@router.get("", response_model=JobList, summary="Recent jobs")
async def list_jobs(
    request: Request,
    caller: Authenticated,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=160, description="`next_cursor` of the previous page")
    ] = None,
    status: Annotated[
        Literal["queued", "running", "retrying", "done", "error", "cancelled"] | None,
        Query(description="Only jobs in this status"),
    ] = None,
    kind: Annotated[
        Literal["chat", "computer_use"] | None, Query(description="Only jobs of this kind")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Only jobs whose id, model or prompt/task (its start) has this text",
        ),
    ] = None,
) -> JobList:
    """The tenant's jobs, newest first, from the tenant's own index (7 days)."""
    state = state_of(request)
    pool, _, _ = state.ready()
    index = tenant_jobs_key(caller.owner)
    top, skip_from = "+inf", None
    if cursor is not None:
        m = _CURSOR.match(cursor)
        stored = caller.stored_id(m.group(2)) if m else None
        if m is None or stored is None:
            raise bad_request("cursor is not a `next_cursor` value")
        top, skip_from = m.group(1), (int(m.group(1)), stored)
    needle = q.lower() if q else None
    jobs: list[JobView] = []
    last: tuple[int, str] | None = None
    more = True
    offset = scanned = 0
    while len(jobs) < limit and scanned < _LIST_SCAN_LIMIT:
        page: list[tuple[bytes, float]] = await pool.zrevrangebyscore(
            index, top, "-inf", start=offset, num=_PAGE, withscores=True
        )
        offset += len(page)
        candidates = [
            (job_id, created)
            for job_id, created in ((raw.decode(), int(score)) for raw, score in page)
            # at or before the cursor (same ms: reverse id order)
            if skip_from is None or created != skip_from[0] or job_id < skip_from[1]
        ]
        pipe = pool.pipeline(transaction=False)
        for job_id, _ in candidates:
            pipe.hmget(job_key(job_id), list(STATUS_FIELDS))
        rows: list[list[bytes | None]] = await pipe.execute() if candidates else []
        live = [job_id for (job_id, _), values in zip(candidates, rows, strict=True) if any(values)]
        summaries = await state.job_summaries().of(live)
        expired: list[str] = []
        for (job_id, created), values in zip(candidates, rows, strict=True):
            scanned += 1
            last = (created, job_id)
            fields = decode_fields(values)
            if not fields:
                expired.append(job_id)
                continue
            view = job_view(caller, job_id, fields, state.prices, summaries.get(job_id))
            searched = (view.id, view.model, view.summary or "")
            if (
                fields.get("tenant") != caller.owner
                or caller.stored_id(view.id) != job_id
                or (status and view.status != status)
                or (kind and view.kind != kind)
                or (needle and not any(needle in text.lower() for text in searched))
            ):
                continue
            jobs.append(view)
            if len(jobs) == limit:
                break
        if expired:
            await pool.zrem(index, *expired)
            offset -= len(expired)
        if len(jobs) < limit and len(page) < _PAGE:
            more = False
            break
    next_cursor = f"{last[0]}:{caller.visible_id(last[1])}" if last is not None and more else None
    query = {"limit": limit, "status": status, "kind": kind, "q": q, "cursor": next_cursor}
    return JobList(
        jobs=jobs,
        next_cursor=next_cursor,
        next="/v1/jobs?" + urlencode({k: v for k, v in query.items() if v is not None})
        if next_cursor
        else None,
    )


@router.get("/{job_id}", response_model=JobView, summary="A job's status", responses=NOT_FOUND)
async def get_job(request: Request, caller: Authenticated, job_id: JobIdPath) -> JobView:
    state = state_of(request)
    pool, _, _ = state.ready()
    stored_id, fields = await owned(pool, caller, job_id)
    summary = (await state.job_summaries().of([stored_id])).get(stored_id)
    return job_view(caller, stored_id, fields, state.prices, summary)


async def _stored_job(pool: Any, caller: Caller, job_id: str) -> _JobBase:
    stored_id, _ = await owned(pool, caller, job_id)
    raw: bytes | None = await pool.hget(job_key(stored_id), "job")
    if raw is None:
        raise ProblemError(404, "Not Found", f"job {job_id!r} has no request stored")
    try:
        return parse_job(raw)
    except ValueError as e:
        raise unprocessable(f"the stored request is not a valid job: {error_text(e)}") from None


@router.get(
    "/{job_id}/request",
    summary="The job as submitted (secrets masked)",
    responses={
        200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
        **NOT_FOUND,
    },
)
async def job_request(request: Request, caller: Authenticated, job_id: JobIdPath) -> Response:
    """The job's body with the id the tenant knows; a computer-use job's `secrets` and every
    occurrence of them in its text are masked as `***`."""
    pool, _, _ = state_of(request).ready()
    job = await _stored_job(pool, caller, job_id)
    body = job.model_dump(mode="json", exclude={"trace_context"})
    body["id"] = job_id
    secrets: list[str] = list(getattr(job, "secrets", []))
    if secrets:
        body["secrets"] = [MASK] * len(secrets)
        for name in ("task", "system", "start_url"):
            if isinstance(body.get(name), str):
                for secret in sorted(secrets, key=len, reverse=True):
                    body[name] = body[name].replace(secret, MASK)
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})


@router.post(
    "/{job_id}/rerun",
    status_code=202,
    response_model=JobAccepted,
    summary="Run the job's request again as a new job",
    responses={**_ACCEPTED, **NOT_FOUND},
)
async def rerun_job(request: Request, caller: Authenticated, job_id: JobIdPath) -> Response:
    """Submits the same body (secrets included, never sent back) under a new id."""
    state = state_of(request)
    pool, _, _ = state.ready()
    async with state.submit_limits().admit(caller.tenant) as admission:
        job = await _stored_job(pool, caller, job_id)
        visible_id = new_job_id()
        update = {"id": caller.prefix + visible_id, "trace_context": None}
        return await _enqueue(state, caller, job.model_copy(update=update), visible_id, admission)


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
    caller: Authenticated,
    job_id: JobIdPath,
    n: Annotated[int, PathParam(ge=1, le=1_000_000, description="The event's `blob`")],
) -> Response:
    pool, client, _ = state_of(request).ready()
    stored_id, _ = await owned(pool, caller, job_id)
    try:
        data = await client.screenshot(stored_id, n)
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
async def cancel_job(request: Request, caller: Authenticated, job_id: JobIdPath) -> Cancelled:
    """`cancelled`: it was waiting and ended now; `signalled`: its worker stops it (watch
    for the `cancelled` event); `finished`: it had already ended."""
    pool, client, _ = state_of(request).ready()
    stored_id, _ = await owned(pool, caller, job_id)
    outcome = await client.cancel(
        stored_id, reason=f"cancelled through the gateway by {caller.tenant}"
    )
    log.info("job %s cancel requested by tenant %s: %s", stored_id, caller.tenant, outcome)
    return Cancelled(id=job_id, outcome=outcome)
