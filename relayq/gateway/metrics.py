"""The gateway's Prometheus metrics (served at /metrics) and the middleware that counts and times
every request by route template."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
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


ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class RequestMetrics:
    """Counts requests by route template and status; times them to the first response byte."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
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
