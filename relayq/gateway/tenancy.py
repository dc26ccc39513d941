"""Tenants and their job ids.

A tenant's job ids are namespaced in Redis: the job a tenant calls `order-17` is stored as
`<tenant>::order-17`, so no tenant can name, probe or collide with another's job (an id of
another tenant answers exactly like an unknown one). The gateway maps ids both ways: a tenant
sees its ids as it submitted them, in answers, links and events.

The local tenant (`RELAYQ_GATEWAY_LOCAL_TENANT`, `local` by default) owns the jobs submitted
without a tenant (the CLI, the Python client): its ids are stored as they are, and `::` is
reserved in them.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = "::"
MAX_JOB_ID = 128


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant of the request's key, and the owner its jobs record."""

    tenant: str
    owner: str  # "" for the local tenant: the jobs without a tenant

    @property
    def prefix(self) -> str:
        return f"{self.owner}{SEPARATOR}" if self.owner else ""

    @property
    def max_id_length(self) -> int:
        return MAX_JOB_ID - len(self.prefix)

    def stored_id(self, job_id: str) -> str | None:
        """The id of the tenant's job `job_id` in Redis; None when no job of the tenant can
        have that id (so it answers like any unknown id)."""
        if not self.owner:
            return None if SEPARATOR in job_id else job_id
        return self.prefix + job_id if len(job_id) <= self.max_id_length else None

    def visible_id(self, stored: str) -> str:
        return stored[len(self.prefix) :] if stored.startswith(self.prefix) else stored

    def id_problem(self, job_id: str) -> str:
        """Why `job_id` cannot be one of this tenant's ids (for a 422)."""
        if not self.owner:
            return f"`{SEPARATOR}` is reserved in job ids (tenant namespaces)"
        return f"at most {self.max_id_length} characters for tenant {self.tenant}"


def caller_of(tenant: str, local_tenant: str) -> Caller:
    return Caller(tenant=tenant, owner="" if local_tenant and tenant == local_tenant else tenant)
