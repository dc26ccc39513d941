"""What every request handler shares: settings, keys, metrics and, while the app runs, the Redis
pool, the client and the stream hub."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from redis.asyncio import Redis

from relayq.client import Client
from relayq.gateway.problems import ProblemError
from relayq.schemas.settings import Settings

if TYPE_CHECKING:
    from relayq.gateway.auth import ApiKeys
    from relayq.gateway.hub import StreamHub
    from relayq.gateway.limits import SubmitLimits
    from relayq.gateway.metrics import GatewayMetrics
    from relayq.gateway.summaries import Summaries
    from relayq.pricing import Price


@dataclass
class GatewayState:
    settings: Settings
    prices: dict[str, Price]
    keys: ApiKeys
    metrics: GatewayMetrics
    redis_url: str
    pool: Redis | None = None
    client: Client | None = None
    hub: StreamHub | None = None
    limits: SubmitLimits | None = None
    summaries: Summaries | None = None

    def ready(self) -> tuple[Redis, Client, StreamHub]:
        if self.pool is None or self.client is None or self.hub is None:
            raise ProblemError(503, "Service Unavailable", "the gateway is starting or stopping")
        return self.pool, self.client, self.hub

    def submit_limits(self) -> SubmitLimits:
        if self.limits is None:
            raise ProblemError(503, "Service Unavailable", "the gateway is starting or stopping")
        return self.limits

    def job_summaries(self) -> Summaries:
        if self.summaries is None:
            raise ProblemError(503, "Service Unavailable", "the gateway is starting or stopping")
        return self.summaries


def state_of(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.relayq
    return state
