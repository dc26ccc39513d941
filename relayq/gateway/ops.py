"""Operations endpoints, no key needed: `/healthz` (Redis ping) and `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relayq.gateway.models import Health
from relayq.gateway.problems import Problem
from relayq.gateway.state import state_of

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Problem}},
    openapi_extra={"security": []},
)
async def healthz(request: Request) -> Health:
    pool, _, _ = state_of(request).ready()
    await pool.ping()
    return Health(status="ok", redis="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    openapi_extra={"security": []},
)
async def metrics(request: Request) -> Response:
    registry = state_of(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
