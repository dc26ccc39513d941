"""Reading a job's hash for a tenant: its status view, or 404 when it is not the tenant's."""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from relayq.gateway.models import JobLinks, JobView
from relayq.gateway.problems import not_found
from relayq.gateway.tenancy import Caller
from relayq.pricing import Price, estimate_cost, price_of
from relayq.schemas.constants import job_key
from relayq.schemas.status import STATUS_FIELDS, job_status_from_hash


def links(job_id: str) -> JobLinks:
    return JobLinks(
        self=f"/v1/jobs/{job_id}",
        events=f"/v1/jobs/{job_id}/events",
        dashboard=f"/jobs/{job_id}",
    )


def job_view(
    caller: Caller,
    stored_id: str,
    fields: Mapping[str, str],
    prices: Mapping[str, Price],
    summary: str | None = None,
) -> JobView:
    """The status of the caller's job `stored_id`, under the id the caller knows it by."""
    status = job_status_from_hash(caller.visible_id(stored_id), fields)
    return JobView(
        **{**dict(status), "tenant": caller.tenant},
        summary=summary,
        cost_usd=estimate_cost(status.model, status.usage, prices),
        pricing=price_of(status.model, prices),
        links=links(status.id),
    )


def decode_fields(values: list[bytes | None]) -> dict[str, str]:
    return {k: v.decode() for k, v in zip(STATUS_FIELDS, values, strict=True) if v is not None}


async def read_fields(pool: Redis, stored_id: str) -> dict[str, str]:
    values: list[bytes | None] = await pool.hmget(job_key(stored_id), list(STATUS_FIELDS))  # type: ignore[misc]
    return decode_fields(values)


async def owned(pool: Redis, caller: Caller, job_id: str) -> tuple[str, dict[str, str]]:
    """The stored id and hash fields of the caller's job `job_id`; 404 when it is unknown,
    expired or (however it is named) another tenant's."""
    stored_id = caller.stored_id(job_id)
    fields = await read_fields(pool, stored_id) if stored_id is not None else {}
    if stored_id is None or not fields or fields.get("tenant") != caller.owner:
        raise not_found(job_id)
    return stored_id, fields
