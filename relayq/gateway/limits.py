"""Per-tenant submit limits, shared by every gateway process through Redis: a token bucket
(`RELAYQ_GATEWAY_SUBMIT_RATE` per second, bursts of `RELAYQ_GATEWAY_SUBMIT_BURST`) and a quota of
jobs created per UTC day (`RELAYQ_GATEWAY_DAILY_QUOTA`). A refused submit is a 429 problem with
`Retry-After`. Every submit takes a token; only a submit that creates a job counts against the
quota (an idempotent replay or a refused job is given back)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from importlib.resources import files

from redis.asyncio import Redis

from relayq.contract import Scripts
from relayq.gateway.problems import ProblemError
from relayq.schemas.constants import tenant_limits_key
from relayq.schemas.settings import Settings

_FOLDER = files(__package__ or "relayq.gateway")


class SubmitLimits:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._scripts = Scripts(redis, ["limits"], _FOLDER)
        self._args = (
            settings.gateway_submit_rate,
            settings.gateway_submit_burst,
            settings.gateway_daily_quota,
        )
        self._rate, self._burst, self._quota = self._args

    @contextlib.asynccontextmanager
    async def admit(self, tenant: str) -> AsyncIterator[Admission]:
        """`async with limits.admit(tenant) as admission:` — 429 unless the tenant may submit
        now; the quota is given back unless `admission.created()` is called in the block."""
        key = tenant_limits_key(tenant)
        ok, reason, retry_ms, _ = await self._scripts.call("limits", [key], ["take", *self._args])
        if not ok:
            raise self._refusal(tenant, reason.decode(), int(retry_ms))
        admission = Admission()
        try:
            yield admission
        finally:
            if not admission.counted:
                await self._scripts.call("limits", [key], ["refund", *self._args])

    def _refusal(self, tenant: str, reason: str, retry_ms: int) -> ProblemError:
        seconds = max(math.ceil(retry_ms / 1000), 1)
        if reason == "quota":
            detail = (
                f"tenant {tenant} created its {self._quota} jobs for today (UTC); "
                f"the quota renews in {seconds} s"
            )
        else:
            detail = (
                f"tenant {tenant} submits faster than {self._rate:g}/s "
                f"(bursts of {self._burst}); retry in {seconds} s"
            )
        return ProblemError(429, "Too Many Requests", detail, headers={"Retry-After": str(seconds)})


class Admission:
    counted = False

    def created(self) -> None:
        """The submit created a job: it stays counted against the quota."""
        self.counted = True
