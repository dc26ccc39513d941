"""The HTTP/SSE gateway: jobs over HTTP for any service in any language, and the dashboard.

    app = create_app(Settings(), redis_url="redis://localhost:6379/0")
    serve("127.0.0.1", 8080, Settings())          # what `relayq gateway` runs

Endpoints (OpenAPI at `/openapi.json`, browsable at `/docs`):

    POST   /v1/jobs                      submit ({"kind": "chat" | "computer_use", ...}) -> 202
    GET    /v1/jobs                      the tenant's jobs, newest first (status, kind, q filters)
    GET    /v1/jobs/{id}                 status, attempt, timestamps, usage so far, cost estimate
    GET    /v1/jobs/{id}/events          Server-Sent Events; `id:` is the Redis stream id
    GET    /v1/jobs/{id}/request         the job as submitted (secrets masked)
    POST   /v1/jobs/{id}/rerun           the same job again, under a new id
    GET    /v1/jobs/{id}/screenshots/{n} a computer-use screenshot's bytes
    DELETE /v1/jobs/{id}                 cancel
    GET    /v1/fleet, /v1/me             workers and queues; the key's tenant
    GET    /healthz, /metrics            liveness (Redis ping) and Prometheus metrics (no key)
    GET    /, /jobs/{id}, /docs          the dashboard (the key is entered in the page), the API

Every `/v1` request needs `Authorization: Bearer <key>` with a key from `RELAYQ_API_KEYS`
(`tenant:key,...`). A tenant sees and cancels only its own jobs, under its own ids (namespaced in
Redis: `relayq.gateway.tenancy`); submits are limited per tenant (`relayq.gateway.limits`).
Errors are `application/problem+json` (RFC 9457). SSE subscribers share a few Redis connections
(`relayq.gateway.hub`), so one process holds thousands of open streams.

The package, one concept per module: `app` (the factory), `auth` (keys, `/v1/me`), `tenancy`
(tenants and their ids), `limits` (submit rate and quota), `jobs` (the /v1/jobs routes),
`events` (the SSE route), `hub` (stream fan-out), `fleet` (workers and queues), `ops` (health
and metrics), `dashboard`, `docs` (OpenAPI and /docs), `problems` (errors), `records` (a job's
hash read for a tenant), `server` (running it). Prices come from `relayq.pricing`.
"""

from relayq.gateway.app import create_app
from relayq.gateway.server import main, serve, serve_in_thread

__all__ = ["create_app", "main", "serve", "serve_in_thread"]
