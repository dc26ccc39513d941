"""The HTTP/SSE gateway: jobs over HTTP for any service in any language, and the dashboard.

    app = create_app(Settings(), redis_url="redis://localhost:6379/0")
    serve("127.0.0.1", 8080, Settings())          # what `relayq gateway` runs

Endpoints (OpenAPI at `/openapi.json`, browsable at `/docs`):

    POST   /v1/jobs                      submit ({"kind": "chat" | "computer_use", ...}) -> 202
    GET    /v1/jobs                      the tenant's recent jobs, newest first, paginated
    GET    /v1/jobs/{id}                 status, attempt, timestamps, usage so far, cost estimate
    GET    /v1/jobs/{id}/events          Server-Sent Events; `id:` is the Redis stream id
    GET    /v1/jobs/{id}/screenshots/{n} a computer-use screenshot's bytes
    DELETE /v1/jobs/{id}                 cancel
    GET    /healthz, /metrics            liveness (Redis ping) and Prometheus metrics (no key)
    GET    /, /jobs/{id}                 the dashboard (the key is entered in the page)

Every `/v1` request needs `Authorization: Bearer <key>` with a key from `RELAYQ_API_KEYS`
(`tenant:key,...`). A tenant sees and cancels only its own jobs: anyone else's answer 404.
Errors are `application/problem+json` (RFC 9457). SSE subscribers share a few Redis connections
(`relayq.gateway_hub`), so one process holds thousands of open streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayq.client import Client, job_status_from_hash
from relayq.connection import REDIS_ERRORS
from relayq.gateway_auth import ApiKeys
from relayq.gateway_hub import Entry, StreamHub
from relayq.pricing import Price, estimate_cost, price_of, price_table
from relayq.schemas.constants import JOBS_INDEX, job_key
from relayq.schemas.events import TokenUsage
from relayq.schemas.jobs import ChatJob, ComputerUseJob, _JobBase
from relayq.schemas.settings import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
JOB_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
STREAM_ID_PATTERN = r"^\d{1,20}(-\d{1,20})?$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
_CURSOR = re.compile(r"^(\d{1,20}):([A-Za-z0-9_.:-]{1,128})$")
PROBLEM = "application/problem+json"
JOB_KINDS: dict[str, type[_JobBase]] = {"chat": ChatJob, "computer_use": ComputerUseJob}
_HASH_FIELDS = (
    "tenant", "kind", "model", "status", "attempt", "created_ms", "started_ms", "finished_ms",
    "usage", "worker",
)  # fmt: skip
_LIST_SCAN_LIMIT = 5000


# --------------------------------------------------------------------------- wire models


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class JobLinks(BaseModel):
    self: str
    events: str
    dashboard: str


class JobAccepted(BaseModel):
    id: str
    status: str
    created: bool = Field(description="False when a job with this id (or key) already existed.")
    links: JobLinks


class JobView(BaseModel):
    id: str
    kind: str
    model: str
    status: str
    attempt: int
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    usage: TokenUsage | None = Field(description="Usage so far (the current attempt).")
    cost_usd: float = Field(description="Estimate from the model's list price.")
    pricing: Price = Field(description="USD per million tokens used for the estimate.")
    links: JobLinks


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")
    next: str | None = Field(description="The next page's URL, if there may be more jobs.")


class Cancelled(BaseModel):
    id: str
    outcome: Literal["cancelled", "signalled", "finished", "unknown"]


class Health(BaseModel):
    status: str
    redis: str


JobRequest = Annotated[ChatJob | ComputerUseJob, Field(discriminator="kind")]


# --------------------------------------------------------------------------- problems


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(title=title, status=status, detail=detail, errors=errors)
        self.headers = headers or {}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=headers,
    )


def _not_found(job_id: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"no job {job_id!r} (unknown, expired or not yours)")


def _clean_errors(e: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Validation errors without the input values (a job may carry secrets)."""
    raw = (
        e.errors(include_input=False, include_url=False, include_context=False)
        if isinstance(e, ValidationError)
        else list(e.errors())
    )
    return [
        {
            "loc": [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in raw
    ]


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in errors[:5]
    ]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


# --------------------------------------------------------------------------- state and metrics


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "relayq_gateway_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "relayq_gateway_request_seconds",
            "Time to the response's first byte",
            ["route"],
            registry=r,
        )
        self.streams = Gauge("relayq_gateway_sse_streams", "Open SSE responses", registry=r)
        self.sse_events = Counter(
            "relayq_gateway_sse_events", "Events written to SSE responses", ["type"], registry=r
        )
        self.read_lag = Histogram(
            "relayq_gateway_event_read_lag_seconds",
            "From an event's timestamp to the gateway reading it from Redis (live tail)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.submitted = Counter(
            "relayq_gateway_jobs_submitted", "Jobs submitted", ["kind", "created"], registry=r
        )
        self.auth_failures = Counter(
            "relayq_gateway_auth_failures", "Requests refused for a missing/unknown key", registry=r
        )
        self.followed = Gauge(
            "relayq_gateway_followed_jobs", "Jobs the stream readers follow", registry=r
        )


@dataclass
class _State:
    settings: Settings
    prices: dict[str, Price]
    keys: ApiKeys
    metrics: _Metrics
    redis_url: str
    pool: Redis | None = None
    client: Client | None = None
    hub: StreamHub | None = None

    def ready(self) -> tuple[Redis, Client, StreamHub]:
        if self.pool is None or self.client is None or self.hub is None:
            raise ProblemError(503, "Service Unavailable", "the gateway is starting or stopping")
        return self.pool, self.client, self.hub


def _state(request: Request) -> _State:
    state: _State = request.app.state.relayq
    return state


_bearer = HTTPBearer(auto_error=False, description="An API key from RELAYQ_API_KEYS.")


async def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    state = _state(request)
    tenant = state.keys.tenant_of(credentials.credentials) if credentials else None
    if tenant is None:
        state.metrics.auth_failures.inc()
        raise ProblemError(
            401,
            "Unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="relayq"'},
        )
    return tenant


Tenant = Annotated[str, Depends(_tenant)]
JobIdPath = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="The job id.")]


def _links(job_id: str) -> JobLinks:
    return JobLinks(
        self=f"/v1/jobs/{job_id}",
        events=f"/v1/jobs/{job_id}/events",
        dashboard=f"/jobs/{job_id}",
    )


def _job_view(job_id: str, f: dict[str, str], prices: Mapping[str, Price]) -> JobView:
    job = job_status_from_hash(job_id, f)
    return JobView(
        id=job.id,
        kind=job.kind,
        model=job.model,
        status=job.status,
        attempt=job.attempt,
        created_ms=job.created_ms,
        started_ms=job.started_ms,
        finished_ms=job.finished_ms,
        usage=job.usage,
        cost_usd=estimate_cost(job.model, job.usage, prices),
        pricing=price_of(job.model, prices),
        links=_links(job_id),
    )


async def _fields(pool: Redis, job_id: str) -> dict[str, str]:
    values: list[bytes | None] = await pool.hmget(job_key(job_id), list(_HASH_FIELDS))  # type: ignore[misc]
    return {k: v.decode() for k, v in zip(_HASH_FIELDS, values, strict=True) if v is not None}


async def _owned(pool: Redis, job_id: str, tenant: str) -> dict[str, str]:
    """The job's hash fields, or 404 when it is unknown, expired or another tenant's."""
    fields = await _fields(pool, job_id)
    if not fields or fields.get("tenant") != tenant:
        raise _not_found(job_id)
    return fields


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _sse(entry: Entry) -> bytes:
    data = entry.data if "\n" not in entry.data else entry.data.replace("\n", "\ndata: ")
    return f"id: {entry.id}\nevent: {entry.type}\ndata: {data}\n\n".encode()


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


def _pool(redis_url: str, size: int) -> Redis:
    """A bounded pool (requests wait for a free connection) that rides out Redis restarts."""
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=size,
        timeout=10,
        client_name="relayq-gateway",
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=10),
        retry_on_error=list(REDIS_ERRORS),
        socket_keepalive=True,
        health_check_interval=15,
    )
    return Redis(connection_pool=pool)


def _idempotent_id(tenant: str, key: str) -> str:
    return "job_" + hashlib.sha256(f"{tenant}\x00{key}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- the app


def create_app(settings: Settings, *, redis_url: str) -> FastAPI:
    """The gateway as an ASGI app. Its Redis connections open and close with the app's lifespan.

    Raises ValueError when no API keys are configured (`RELAYQ_API_KEYS`).
    """
    gateway = settings
    spec = gateway.api_keys.get_secret_value() if gateway.api_keys else ""
    state = _State(
        settings=settings,
        prices=price_table(settings.prices),
        keys=ApiKeys.parse(spec),
        metrics=_Metrics(),
        redis_url=redis_url,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = _pool(redis_url, gateway.gateway_pool_size)
        state.pool = pool
        state.client = Client(redis=pool, settings=settings)
        metrics = state.metrics

        def on_read(entry: Entry, received: float) -> None:
            if entry.ts:
                metrics.read_lag.observe(max(received - entry.ts, 0.0))

        hub = StreamHub(redis_url, pool=pool, readers=gateway.gateway_readers, on_read=on_read)
        state.hub = hub
        metrics.followed.set_function(lambda: hub.followed_jobs)
        await hub.start()
        log.info(
            "gateway ready: %d tenant(s), %d stream reader(s)",
            len(state.keys.tenants),
            gateway.gateway_readers,
        )
        try:
            yield
        finally:
            state.hub = state.client = state.pool = None
            await hub.aclose()
            await pool.aclose()
            await pool.connection_pool.disconnect()

    app = FastAPI(
        title="relayq gateway",
        version="1",
        summary="Submit Claude chat and computer-use jobs, follow their events, cancel them.",
        lifespan=lifespan,
        responses={401: {"model": Problem, "description": "No valid API key"}},
    )
    app.state.relayq = state
    _install_error_handlers(app)
    app.add_middleware(_RequestMetrics, metrics=state.metrics)
    _add_api_routes(app)
    _add_ops_routes(app)
    _add_dashboard_routes(app)
    _add_openapi(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.problem, exc.headers)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            Problem(title=title, status=exc.status_code, detail=detail), dict(exc.headers or {})
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(exc)
        return problem_response(
            Problem(
                title="Unprocessable Content", status=422, detail=_summary(errors), errors=errors
            )
        )

    async def on_redis(request: Request, exc: Exception) -> Response:
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return problem_response(
            Problem(title="Service Unavailable", status=503, detail="Redis is unavailable"),
            {"Retry-After": "1"},
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(title="Internal Server Error", status=500, detail="internal error")
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    for error in REDIS_ERRORS:
        app.add_exception_handler(error, on_redis)
    app.add_exception_handler(Exception, on_error)


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown, expired or another tenant's job"},
}


def _add_api_routes(app: FastAPI) -> None:
    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobAccepted,
        tags=["jobs"],
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
        state = _state(request)
        pool, client, _ = state.ready()
        raw = await _read_body(request, state.settings.gateway_max_body_bytes)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProblemError(400, "Bad Request", f"the body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ProblemError(422, "Unprocessable Content", "the body must be a JSON object")
        kind = data.get("kind", "chat")
        model = JOB_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise ProblemError(
                422,
                "Unprocessable Content",
                f"unknown job kind; expected one of {sorted(JOB_KINDS)}",
                errors=[{"loc": ["kind"], "msg": "unknown job kind", "type": "literal_error"}],
            )
        if idempotency_key is not None and "id" not in data:
            data["id"] = _idempotent_id(tenant, idempotency_key)
        try:
            job = model.model_validate_json(json.dumps(data))
        except ValidationError as e:
            errors = _clean_errors(e)
            raise ProblemError(
                422, "Unprocessable Content", "invalid job: " + _summary(errors), errors=errors
            ) from None
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
                raise ProblemError(
                    422,
                    "Unprocessable Content",
                    "a job with this id or Idempotency-Key exists with a different body",
                )
        state.metrics.submitted.labels(str(kind), str(submitted.created).lower()).inc()
        log.info("job %s (%s) submitted for tenant %s (new: %s)", job.id, kind, tenant,
                 submitted.created)  # fmt: skip
        body = JobAccepted(
            id=job.id, status=submitted.status, created=submitted.created, links=_links(job.id)
        )
        headers = {"Location": body.links.self}
        if not submitted.created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(body.model_dump(), status_code=202, headers=headers)

    @app.get("/v1/jobs", response_model=JobList, tags=["jobs"], summary="Recent jobs")
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
        pool, _, _ = _state(request).ready()
        top, skip_from = "+inf", None
        if cursor is not None:
            m = _CURSOR.match(cursor)
            if m is None:
                raise ProblemError(400, "Bad Request", "cursor is not a `next_cursor` value")
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
                pipe.hmget(job_key(job_id), list(_HASH_FIELDS))
            rows: list[list[bytes | None]] = await pipe.execute() if candidates else []
            for (job_id, created), values in zip(candidates, rows, strict=True):
                scanned += 1
                last = (created, job_id)
                f = {k: v.decode() for k, v in zip(_HASH_FIELDS, values, strict=True) if v}
                if f.get("tenant") != tenant or (status and f.get("status") != status):
                    continue
                jobs.append(_job_view(job_id, f, _state(request).prices))
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

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobView,
        tags=["jobs"],
        summary="A job's status",
        responses=_PROBLEMS,
    )
    async def get_job(request: Request, tenant: Tenant, job_id: JobIdPath) -> JobView:
        pool, _, _ = _state(request).ready()
        return _job_view(job_id, await _owned(pool, job_id, tenant), _state(request).prices)

    @app.get(
        "/v1/jobs/{job_id}/events",
        tags=["jobs"],
        summary="The job's events as Server-Sent Events",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "`id:` the stream id, `event:` the type, `data:` the event JSON; "
                "`: keep-alive` comments while idle; the response ends after the terminal event.",
            },
            400: {"model": Problem, "description": "Bad resume id"},
            **_PROBLEMS,
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
        state = _state(request)
        pool, _, hub = state.ready()
        start = (last_event_id or "").strip() or after or "0"
        if not _STREAM_ID.match(start):
            raise ProblemError(
                400, "Bad Request", "the resume id must be a stream id like 1700000000000-0"
            )
        await _owned(pool, job_id, tenant)
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

    @app.get(
        "/v1/jobs/{job_id}/screenshots/{n}",
        tags=["jobs"],
        summary="A screenshot's image bytes",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
            **_PROBLEMS,
        },
    )
    async def screenshot(
        request: Request,
        tenant: Tenant,
        job_id: JobIdPath,
        n: Annotated[int, PathParam(ge=1, le=1_000_000, description="The event's `blob`")],
    ) -> Response:
        pool, client, _ = _state(request).ready()
        await _owned(pool, job_id, tenant)
        try:
            data = await client.screenshot(job_id, n)
        except LookupError:
            raise ProblemError(404, "Not Found", f"no screenshot {n} of job {job_id!r}") from None
        return Response(
            data,
            media_type=_image_type(data),
            headers={"Cache-Control": "private, max-age=3600, immutable"},
        )

    @app.delete(
        "/v1/jobs/{job_id}",
        status_code=202,
        response_model=Cancelled,
        tags=["jobs"],
        summary="Cancel a job",
        responses=_PROBLEMS,
    )
    async def cancel_job(request: Request, tenant: Tenant, job_id: JobIdPath) -> Cancelled:
        """`cancelled`: it was waiting and ended now; `signalled`: its worker stops it (watch
        for the `cancelled` event); `finished`: it had already ended."""
        pool, client, _ = _state(request).ready()
        await _owned(pool, job_id, tenant)
        outcome = await client.cancel(job_id, reason=f"cancelled through the gateway by {tenant}")
        log.info("job %s cancel requested by tenant %s: %s", job_id, tenant, outcome)
        return Cancelled(id=job_id, outcome=outcome)


def _add_ops_routes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        response_model=Health,
        tags=["ops"],
        responses={503: {"model": Problem}},
        openapi_extra={"security": []},
    )
    async def healthz(request: Request) -> Health:
        pool, _, _ = _state(request).ready()
        await pool.ping()
        return Health(status="ok", redis="ok")

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
        openapi_extra={"security": []},
    )
    async def metrics(request: Request) -> Response:
        registry = _state(request).metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _add_dashboard_routes(app: FastAPI) -> None:
    template = Template((STATIC_DIR / "dashboard.html").read_text(encoding="utf-8"))
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

    def page(name: str, job_id: str = "") -> HTMLResponse:
        title = f"Job {job_id} — relayq" if job_id else "Jobs — relayq"
        body = template.substitute(
            title=html.escape(title),
            page=name,
            job_id=html.escape(job_id),
            jobs_hidden="" if name == "jobs" else "hidden",
            job_hidden="" if name == "job" else "hidden",
        )
        return HTMLResponse(body, headers=headers)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return page("jobs")

    @app.get("/jobs/{job_id}", include_in_schema=False)
    async def dashboard_job(job_id: JobIdPath) -> HTMLResponse:
        return page("job", job_id)

    for name, media_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        content = (STATIC_DIR / name).read_bytes()

        def asset(content: bytes = content, media_type: str = media_type) -> Response:
            return Response(
                content, media_type=media_type, headers={"Cache-Control": "no-cache", **headers}
            )

        app.add_api_route(f"/static/{name}", asset, methods=["GET"], include_in_schema=False)


def _add_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=__doc__,
                routes=app.routes,
            )
            job_schema = TypeAdapter(JobRequest).json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(job_schema.pop("$defs", {}))
            components["Job"] = job_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class _RequestMetrics:
    """Counts requests by route template and status; times them to the first response byte."""

    def __init__(
        self,
        app: Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]],
        metrics: _Metrics,
    ) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                route = scope.get("route")
                self.metrics.request_seconds.labels(getattr(route, "path", "unmatched")).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            self.metrics.requests.labels(
                scope.get("method", ""), getattr(route, "path", "unmatched"), str(status)
            ).inc()


# --------------------------------------------------------------------------- running it


def _redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ValueError("the gateway needs RELAYQ_REDIS_URL (or a settings.redis_url)")
    return settings.redis_url


def serve(host: str, port: int, settings: Settings) -> None:
    """Runs the gateway on uvicorn until interrupted (what `relayq gateway` runs)."""
    app = create_app(settings, redis_url=_redis_url(settings))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """`with serve_in_thread(app) as base_url:` — uvicorn on its own loop in a thread."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def main(argv: list[str] | None = None) -> None:
    """`python -m relayq.gateway [--host H] [--port P]` (until `relayq gateway` exists)."""
    import argparse

    parser = argparse.ArgumentParser(prog="relayq-gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    serve(args.host, args.port, settings)


if __name__ == "__main__":
    main()
