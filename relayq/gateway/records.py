"""Reading a job's hash for a tenant: its status view, or 404 when it is not the tenant's."""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from relayq.gateway.models import JobLinks, JobView
from relayq.gateway.problems import not_found
from relayq.pricing import Price, estimate_cost, price_of
from relayq.schemas.constants import job_key
from relayq.schemas.status import STATUS_FIELDS, job_status_from_hash


def links(job_id: str) -> JobLinks:
    return JobLinks(
        self=f"/v1/jobs/{job_id}",
        events=f"/v1/jobs/{job_id}/events",
        dashboard=f"/jobs/{job_id}",
    )


def job_view(job_id: str, fields: Mapping[str, str], prices: Mapping[str, Price]) -> JobView:
    status = job_status_from_hash(job_id, fields)
    return JobView(
        **dict(status),
        cost_usd=estimate_cost(status.model, status.usage, prices),
        pricing=price_of(status.model, prices),
        links=links(job_id),
    )


def decode_fields(values: list[bytes | None]) -> dict[str, str]:
    return {k: v.decode() for k, v in zip(STATUS_FIELDS, values, strict=True) if v is not None}


async def read_fields(pool: Redis, job_id: str) -> dict[str, str]:
    values: list[bytes | None] = await pool.hmget(job_key(job_id), list(STATUS_FIELDS))  # type: ignore[misc]
    return decode_fields(values)


async def owned(pool: Redis, job_id: str, tenant: str) -> dict[str, str]:
    """The job's hash fields, or 404 when it is unknown, expired or another tenant's."""
    fields = await read_fields(pool, job_id)
    if not fields or fields.get("tenant") != tenant:
        raise not_found(job_id)
    return fields
