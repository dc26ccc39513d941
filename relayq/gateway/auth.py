"""API keys of the HTTP gateway: `RELAYQ_API_KEYS=tenant:key,tenant2:key2`; each key is a tenant.

Keys are kept only as SHA-256 digests and compared in constant time; nothing here logs or
repeats a key, even in error messages about a malformed list. `Authenticated` is the dependency that
turns a request's `Authorization: Bearer <key>` into its `Caller` (the tenant), or a 401.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from relayq.gateway.problems import ProblemError
from relayq.gateway.state import state_of
from relayq.gateway.tenancy import Caller, caller_of

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_KEY_LENGTH = 8


class ApiKeys:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            raise ValueError("no API keys: set RELAYQ_API_KEYS=tenant:key[,tenant2:key2...]")
        self._digests = [(_digest(key), tenant) for tenant, key in pairs]

    @classmethod
    def parse(cls, spec: str) -> ApiKeys:
        """Parses `tenant:key,tenant2:key2`. A tenant may have several keys."""
        pairs: list[tuple[str, str]] = []
        for n, item in enumerate(spec.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            tenant, sep, key = item.partition(":")
            if not sep or not TENANT_PATTERN.match(tenant):
                raise ValueError(
                    f"RELAYQ_API_KEYS item {n} is not tenant:key (tenant: letters, digits, _.-)"
                )
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"RELAYQ_API_KEYS item {n} (tenant {tenant}): the key is shorter than "
                    f"{MIN_KEY_LENGTH} characters"
                )
            pairs.append((tenant, key))
        return cls(pairs)

    @property
    def tenants(self) -> set[str]:
        return {tenant for _, tenant in self._digests}

    def tenant_of(self, key: str) -> str | None:
        """The key's tenant, or None. Looks at every key, so timing says nothing."""
        digest = _digest(key)
        found: str | None = None
        for known, tenant in self._digests:
            if hmac.compare_digest(known, digest):
                found = tenant
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()


_bearer = HTTPBearer(auto_error=False, description="An API key from RELAYQ_API_KEYS.")


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Caller:
    state = state_of(request)
    tenant = state.keys.tenant_of(credentials.credentials) if credentials else None
    if tenant is None:
        state.metrics.auth_failures.inc()
        raise ProblemError(
            401,
            "Unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="relayq"'},
        )
    return caller_of(tenant, state.settings.gateway_local_tenant)


Authenticated = Annotated[Caller, Depends(_caller)]


class Identity(BaseModel):
    tenant: str
    local: bool = Field(
        description="This tenant owns the jobs submitted without a tenant (CLI, Python client)."
    )
    local_tenant: str | None = Field(
        description="The tenant that owns them (RELAYQ_GATEWAY_LOCAL_TENANT), if any."
    )


router = APIRouter(prefix="/v1", tags=["auth"])


@router.get("/me", response_model=Identity, summary="The tenant of the key")
async def whoami(request: Request, caller: Authenticated) -> Identity:
    local = state_of(request).settings.gateway_local_tenant or None
    return Identity(tenant=caller.tenant, local=caller.owner == "", local_tenant=local)
