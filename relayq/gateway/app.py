"""`create_app`: the gateway's routers, error handlers and middleware on one FastAPI app whose
Redis pool, client and stream hub open and close with its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from redis.asyncio import Redis

from relayq.client import Client
from relayq.connection import connect
from relayq.gateway import auth, dashboard, docs, events, fleet, jobs, ops
from relayq.gateway.auth import ApiKeys
from relayq.gateway.docs import API_DESCRIPTION, install_openapi
from relayq.gateway.hub import Entry, StreamHub
from relayq.gateway.limits import SubmitLimits
from relayq.gateway.metrics import GatewayMetrics, RequestMetrics
from relayq.gateway.problems import Problem, install_problem_handlers
from relayq.gateway.state import GatewayState
from relayq.gateway.summaries import Summaries
from relayq.pricing import price_table
from relayq.schemas.settings import Settings

log = logging.getLogger(__name__)


def _pool(redis_url: str, size: int) -> Redis:
    """A bounded pool (requests wait for a free connection) that rides out Redis restarts."""
    return connect(redis_url, max_connections=size, client_name="relayq-gateway")


def create_app(settings: Settings, *, redis_url: str) -> FastAPI:
    """The gateway as an ASGI app. Its Redis connections open and close with the app's lifespan.

    Raises ValueError when no API keys are configured (`RELAYQ_API_KEYS`).
    """
    spec = settings.api_keys.get_secret_value() if settings.api_keys else ""
    state = GatewayState(
        settings=settings,
        prices=price_table(settings.prices),
        keys=ApiKeys.parse(spec),
        metrics=GatewayMetrics(),
        redis_url=redis_url,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = _pool(redis_url, settings.gateway_pool_size)
        state.pool = pool
        state.client = Client(redis=pool, settings=settings)
        state.limits = SubmitLimits(pool, settings)
        state.summaries = Summaries(pool)
        metrics = state.metrics

        def on_read(entry: Entry, received: float) -> None:
            if entry.ts:
                metrics.read_lag.observe(max(received - entry.ts, 0.0))

        hub = StreamHub(redis_url, pool=pool, readers=settings.gateway_readers, on_read=on_read)
        state.hub = hub
        metrics.followed.set_function(lambda: hub.followed_jobs)
        await hub.start()
        log.info(
            "gateway ready: %d tenant(s), %d stream reader(s)",
            len(state.keys.tenants),
            settings.gateway_readers,
        )
        try:
            yield
        finally:
            state.hub = state.client = state.pool = state.limits = state.summaries = None
            await hub.aclose()
            await pool.aclose()  # and its connections (connect() gives the pool to the client)

    app = FastAPI(
        title="relayq gateway",
        version="1",
        summary="Submit Claude chat and computer-use jobs, follow their events, cancel them.",
        lifespan=lifespan,
        docs_url=None,  # relayq.gateway.docs serves /docs without third-party scripts
        redoc_url=None,
        responses={401: {"model": Problem, "description": "No valid API key"}},
    )
    app.state.relayq = state
    install_problem_handlers(app)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    app.include_router(auth.router)
    app.include_router(jobs.router)
    app.include_router(fleet.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    install_openapi(app, API_DESCRIPTION)
    return app
