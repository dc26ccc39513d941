"""The HTTP/SSE gateway over real HTTP: a uvicorn server on a free port in this process, the
session's redis-server, worker process and simulator. Nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from relayq.client import Client
from relayq.gateway import create_app, serve_in_thread
from relayq.gateway.auth import ApiKeys
from relayq.pricing import estimate_cost, price_of, price_table
from relayq.schemas.events import TokenUsage, parse_event
from relayq.schemas.settings import Settings
from relayq.simulator import scripted_reply
from relayq.transcript import transcript_of
from tests.conftest import WorkerProcess

KEYS = {
    "acme": "key-acme-7f3a9c21",
    "globex": "key-globex-51be0d84",
    "local": "key-local-2c9e4b",  # the jobs without a tenant (CLI, Python)
    "initech": "key-initech-0a7d51",  # no test submits for it: it has no jobs
}
API_KEYS = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())
ACME = {"Authorization": f"Bearer {KEYS['acme']}"}
GLOBEX = {"Authorization": f"Bearer {KEYS['globex']}"}
LOCAL = {"Authorization": f"Bearer {KEYS['local']}"}
JSON = {"content-type": "application/json"}


@contextlib.contextmanager
def running_gateway(redis_url: str, **overrides: Any) -> Iterator[str]:
    """A gateway on a free loopback port for the block; yields its base URL."""
    settings = Settings(
        redis_url=redis_url,
        stream_ttl_s=600,
        **{"api_keys": SecretStr(API_KEYS), "gateway_heartbeat_s": 1.0, **overrides},
    )
    app = create_app(settings, redis_url=redis_url)
    with serve_in_thread(app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def gateway(redis_url: str, worker: WorkerProcess) -> Iterator[str]:
    with running_gateway(redis_url) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def idle_gateway(idle_redis_url: str) -> Iterator[str]:
    """A gateway on the Redis db no worker serves: its jobs stay queued until cancelled."""
    with running_gateway(idle_redis_url, gateway_heartbeat_s=0.2) as base_url:
        yield base_url


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway, headers=ACME, timeout=30) as c:
        yield c


@dataclass
class Sse:
    """What one SSE response carried."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def ids(self) -> list[str]:
        return [m["id"] for m in self.messages]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [m["data"] for m in self.messages]


async def read_sse(
    http: httpx.AsyncClient,
    job_id: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    stop: Callable[[Sse], bool] | None = None,
    hook: Callable[[Sse], Awaitable[None]] | None = None,
) -> Sse:
    """Reads the job's SSE response until the server ends it or `stop(sse)` is true; `hook(sse)`
    runs after every message or comment."""
    sse = Sse()
    current: dict[str, Any] = {}
    data: list[str] = []
    async with http.stream(
        "GET", f"/v1/jobs/{job_id}/events", params=params, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                sse.comments.append(line[1:].strip())
            elif line.startswith("retry:"):
                sse.retry = int(line[6:])
            elif line.startswith("id:"):
                current["id"] = line[3:].strip()
            elif line.startswith("event:"):
                current["event"] = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                current["data"] = json.loads("\n".join(data))
                sse.messages.append(current)
                current, data = {}, []
            if line == "" and hook is not None:
                await hook(sse)
            if line == "" and stop is not None and stop(sse):
                break
    return sse


async def submit(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> str:
    response = await http.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def sim_text(prompt: str) -> str:
    return scripted_reply({"messages": [{"role": "user", "content": prompt}]})


# --------------------------------------------------------------------------- submit and stream


async def test_a_chat_job_submitted_over_http_streams_the_same_events_as_the_python_client(
    http: httpx.AsyncClient, client: Client
) -> None:
    prompt = "[[sim:tokens=30 rate=300]] Hello gateway"
    response = await http.post("/v1/jobs", json={"kind": "chat", "prompt": prompt, "system": "Hi"})

    assert response.status_code == 202
    body = response.json()
    job_id = body["id"]
    assert body["created"] is True and body["status"] == "queued"
    assert body["links"] == {
        "self": f"/v1/jobs/{job_id}",
        "events": f"/v1/jobs/{job_id}/events",
        "dashboard": f"/jobs/{job_id}",
    }
    assert response.headers["location"] == f"/v1/jobs/{job_id}"

    sse = await read_sse(http, job_id)
    # in Redis (and to the Python client) a tenant's job ids are namespaced by the tenant
    python = [entry async for entry in client.events(f"acme::{job_id}")]

    assert sse.ids == [entry.id for entry in python]
    assert [parse_event(json.dumps(e)) for e in sse.events] == [
        entry.event.model_copy(update={"job_id": job_id}) for entry in python
    ]
    assert [m["event"] for m in sse.messages] == [entry.event.type for entry in python]
    assert sse.messages[-1]["event"] == "done" and sse.retry == 2000
    assert transcript_of([e.event for e in python]).text == sim_text(prompt)
    assert (await client.status(f"acme::{job_id}")).tenant == "acme"


async def test_sse_resumes_after_last_event_id_or_after_with_no_gap_and_no_duplicate(
    http: httpx.AsyncClient,
) -> None:
    job_id = await submit(http, {"prompt": "[[sim:tokens=60 rate=400]] Resume me"})

    first = await read_sse(http, job_id, stop=lambda s: len(s.messages) >= 4)
    by_header = await read_sse(http, job_id, headers={"Last-Event-ID": first.ids[-1]})
    by_query = await read_sse(http, job_id, params={"after": first.ids[1]})
    everything = await read_sse(http, job_id)

    assert first.ids + by_header.ids == everything.ids
    assert first.ids[:2] + by_query.ids == everything.ids
    assert len(set(everything.ids)) == len(everything.ids)


async def test_sse_of_a_finished_job_replays_it_from_the_stream(http: httpx.AsyncClient) -> None:
    prompt = "Replay me later"
    job_id = await submit(http, {"prompt": prompt})
    await read_sse(http, job_id)

    replay = await read_sse(http, job_id)

    assert replay.messages[0]["event"] == "queued" and replay.messages[-1]["event"] == "done"
    text = "".join(e["text"] for e in replay.events if e["type"] == "text")
    assert text == sim_text(prompt)


async def test_an_idle_stream_sends_heartbeats_and_ends_with_the_cancel(idle_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=idle_gateway, headers=ACME, timeout=30) as http:
        job_id = await submit(http, {"prompt": "Nobody will run me"})
        outcomes: list[str] = []

        async def cancel_after_two_heartbeats(sse: Sse) -> None:
            if sse.comments.count("keep-alive") >= 2 and not outcomes:
                outcomes.append((await http.delete(f"/v1/jobs/{job_id}")).json()["outcome"])

        sse = await read_sse(http, job_id, hook=cancel_after_two_heartbeats)

    assert outcomes == ["cancelled"]
    assert [m["event"] for m in sse.messages] == ["queued", "cancelled"]


async def test_cancel_of_a_running_job_over_http_ends_it_cancelled(
    http: httpx.AsyncClient,
) -> None:
    job_id = await submit(http, {"prompt": "[[sim:tokens=400 rate=40]] Long and slow"})

    first_text = await read_sse(
        http, job_id, stop=lambda s: bool(s.messages) and s.messages[-1]["event"] == "text"
    )
    response = await http.delete(f"/v1/jobs/{job_id}")
    rest = await read_sse(http, job_id, params={"after": first_text.ids[-1]})

    assert response.status_code == 202 and response.json()["outcome"] == "signalled"
    assert rest.messages[-1]["event"] == "cancelled"
    status = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert status["status"] == "cancelled" and status["finished_ms"]
    again = await http.delete(f"/v1/jobs/{job_id}")
    assert again.json()["outcome"] == "finished"


async def test_job_status_has_attempt_timestamps_usage_and_a_cost_estimate(
    http: httpx.AsyncClient,
) -> None:
    job_id = await submit(http, {"prompt": "Status please", "model": "claude-haiku-4-5"})
    await read_sse(http, job_id)

    status = (await http.get(f"/v1/jobs/{job_id}")).json()

    assert status["status"] == "done" and status["attempt"] == 1
    assert status["kind"] == "chat" and status["model"] == "claude-haiku-4-5"
    assert status["created_ms"] <= status["started_ms"] <= status["finished_ms"]
    usage = TokenUsage.model_validate(status["usage"])
    assert usage.completion_tokens > 0
    assert status["cost_usd"] == estimate_cost("claude-haiku-4-5", usage) > 0
    assert status["pricing"] == price_of("claude-haiku-4-5").model_dump()


# --------------------------------------------------------------------------- idempotency


async def test_the_same_idempotency_key_returns_the_same_job_which_runs_once(
    http: httpx.AsyncClient,
) -> None:
    body = {"prompt": "Exactly once"}
    first = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-17"})
    second = await http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-17"})
    other_tenant = await http.post(
        "/v1/jobs", json=body, headers={"Idempotency-Key": "order-17", **GLOBEX}
    )

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["created"] and not second.json()["created"]
    assert second.headers["idempotent-replayed"] == "true"
    assert other_tenant.json()["id"] != first.json()["id"]
    sse = await read_sse(http, first.json()["id"])
    assert [m["event"] for m in sse.messages].count("started") == 1


async def test_an_idempotency_key_reused_with_another_body_is_refused(
    http: httpx.AsyncClient,
) -> None:
    await submit(http, {"prompt": "First body"}, **{"Idempotency-Key": "reused-key"})

    response = await http.post(
        "/v1/jobs", json={"prompt": "Second body"}, headers={"Idempotency-Key": "reused-key"}
    )

    assert response.status_code == 422
    assert "different body" in response.json()["detail"]


# --------------------------------------------------------------------------- keys and tenants


async def test_requests_without_a_valid_key_get_401_problem_json(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as anon:
        for headers in ({}, {"Authorization": "Bearer nope-nope-nope"}, {"Authorization": "x"}):
            for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"),
                                 ("GET", "/v1/jobs/job_x/events")):  # fmt: skip
                response = await anon.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (headers, path)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert "Bearer" in response.json()["detail"]


async def test_a_tenant_never_sees_or_cancels_another_tenants_job(
    http: httpx.AsyncClient,
) -> None:
    job_id = await submit(http, {"prompt": "[[sim:tokens=100 rate=50]] Mine only"})

    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("GET", f"/v1/jobs/{job_id}/screenshots/1"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ):
        response = await http.request(method, path, headers=GLOBEX)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    listed = (await http.get("/v1/jobs", params={"limit": 200}, headers=GLOBEX)).json()
    assert job_id not in {j["id"] for j in listed["jobs"]}
    own = await http.post("/v1/jobs", json={"id": job_id, "prompt": "x"}, headers=GLOBEX)
    assert own.status_code == 202 and own.json()["created"], "the id is free in globex's space"

    sse = await read_sse(http, job_id)  # untouched by the other tenant
    assert sse.messages[-1]["event"] == "done"


def test_api_keys_parse_tenants_and_reject_malformed_lists_without_echoing_keys() -> None:
    keys = ApiKeys.parse("acme:abcdefgh1, acme:zyxwvuts2 ,globex:k3k3k3k3k3")
    assert keys.tenant_of("abcdefgh1") == keys.tenant_of("zyxwvuts2") == "acme"
    assert keys.tenant_of("k3k3k3k3k3") == "globex"
    assert keys.tenant_of("abcdefgh") is None
    for bad in ("", "acme", "acme:tiny12", "bad tenant:abcdefghij"):
        with pytest.raises(ValueError, match="RELAYQ_API_KEYS") as info:
            ApiKeys.parse(bad)
        assert "tiny12" not in str(info.value) and "abcdefghij" not in str(info.value)


async def test_the_gateway_never_logs_api_keys(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job_id = await submit(http, {"prompt": "Log nothing secret"})
    await read_sse(http, job_id)
    await http.get("/v1/jobs", headers={"Authorization": "Bearer wrong-key-123456"})

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert job_id in logged, "the gateway should log the submit"
    for secret in (*KEYS.values(), "wrong-key-123456"):
        assert secret not in logged


# --------------------------------------------------------------------------- validation


async def test_invalid_jobs_get_422_problem_json_naming_the_field(
    http: httpx.AsyncClient,
) -> None:
    cases = [
        ({"prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"prompt": "hi", "max_tokens": "3"}, "max_tokens"),
        ({"kind": "video", "prompt": "hi"}, "kind"),
        ({"kind": "chat"}, "prompt"),
        ({"prompt": "hi", "surprise": 1}, "surprise"),
        ({"kind": "computer_use", "task": "x", "start_url": "file:///etc/passwd"}, "start_url"),
        ([1, 2, 3], "JSON object"),
    ]
    for body, needle in cases:
        response = await http.post("/v1/jobs", json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422 and problem["title"]
        assert needle in problem["detail"], (body, problem["detail"])


async def test_bad_json_is_400_and_an_oversized_body_is_413(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, headers=ACME, timeout=30) as http:
        bad = await http.post(
            "/v1/jobs", content=b'{"prompt": ', headers={"content-type": "application/json"}
        )
        big = await http.post("/v1/jobs", content=b"x" * (5 * 1024 * 1024))

    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"


async def test_private_network_computer_jobs_are_refused_unless_the_gateway_allows_them(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/v1/jobs",
        json={
            "kind": "computer_use",
            "task": "look",
            "start_url": "http://127.0.0.1:1/",
            "allow_private_network": True,
        },
    )
    assert response.status_code == 403
    assert "allow_private_network" in response.json()["detail"]


async def test_a_bad_resume_id_is_400(http: httpx.AsyncClient) -> None:
    job_id = await submit(http, {"prompt": "x"})
    response = await http.get(f"/v1/jobs/{job_id}/events", params={"after": "yesterday"})
    assert response.status_code == 400 and "stream id" in response.json()["detail"]


# --------------------------------------------------------------------------- listing


async def test_recent_jobs_are_paginated_newest_first_for_the_tenant_only(
    http: httpx.AsyncClient,
) -> None:
    ids = [await submit(http, {"prompt": f"page {n}"}, **GLOBEX) for n in range(5)]

    seen: list[str] = []
    url: str | None = "/v1/jobs?limit=2"
    while url is not None:
        page = (await http.get(url, headers=GLOBEX)).json()
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        url = page["next"]

    assert [i for i in seen if i in ids] == list(reversed(ids))
    assert len(seen) == len(set(seen))
    found = (await http.get("/v1/jobs", params={"q": "PAGE 3"}, headers=GLOBEX)).json()
    assert [(j["id"], j["summary"]) for j in found["jobs"]] == [(ids[3], "page 3")]
    running = (await http.get("/v1/jobs", params={"status": "done"}, headers=GLOBEX)).json()
    assert all(j["status"] == "done" for j in running["jobs"])


# --------------------------------------------------------------------------- fan-out


async def test_many_sse_subscribers_share_one_reader_connection(
    http: httpx.AsyncClient, client: Client
) -> None:
    jobs = [
        await submit(http, {"prompt": f"[[sim:tokens=80 rate=80]] fan-out {n}"}) for n in range(4)
    ]
    subscribers = 25 * len(jobs)
    opened: list[str] = []
    all_open = asyncio.Event()

    async def note_open(sse: Sse) -> None:
        if len(sse.messages) == 1 and not sse.comments:
            opened.append(sse.ids[0])
            if len(opened) == subscribers:
                all_open.set()

    async def subscriber(job_id: str) -> Sse:
        async with httpx.AsyncClient(base_url=http.base_url, headers=ACME, timeout=60) as c:
            return await read_sse(c, job_id, hook=note_open)

    tasks = [asyncio.create_task(subscriber(j)) for j in jobs for _ in range(25)]
    await asyncio.wait_for(all_open.wait(), 30)
    clients = await client.redis.client_list()
    ours = [c for c in clients if c["db"] == "0"]  # the idle gateway (db 1) has its own
    readers = [c for c in ours if c["name"] == "relayq-gateway-reader"]
    pooled = [c for c in ours if c["name"] == "relayq-gateway"]
    results = await asyncio.gather(*tasks)

    assert len(readers) == 1, "one XREAD connection for every stream of the gateway"
    assert len(pooled) <= 32
    for job_id, group in zip(
        jobs, [results[i : i + 25] for i in range(0, subscribers, 25)], strict=True
    ):
        ids = {tuple(s.ids) for s in group}
        assert len(ids) == 1, f"every subscriber of {job_id} saw the same events"
        assert group[0].messages[-1]["event"] == "done"


# --------------------------------------------------------------------------- ops


async def test_healthz_metrics_and_the_openapi_document(http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=http.base_url, timeout=10) as anon:
        health = await anon.get("/healthz")
        metrics = await anon.get("/metrics")
        spec = (await anon.get("/openapi.json")).json()

    assert health.json() == {"status": "ok", "redis": "ok"}
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "relayq_gateway_requests_total",
        "relayq_gateway_sse_streams",
        "relayq_gateway_jobs_submitted_total",
        "relayq_gateway_event_read_lag_seconds",
    ):
        assert name in metrics.text
    assert {
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/jobs/{job_id}/screenshots/{n}",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    assert set(spec["paths"]["/v1/jobs/{job_id}"]) == {"get", "delete"}
    assert {"ChatJob", "ComputerUseJob", "Job"} <= set(spec["components"]["schemas"])
    assert "bearerAuth" in json.dumps(spec) or "HTTPBearer" in json.dumps(spec)


def test_prices_match_the_longest_model_prefix_with_sonnet_as_the_default() -> None:
    assert price_of("claude-opus-4-1-20250805").input == 15.0
    assert price_of("claude-opus-4-6").input == 5.0
    assert price_of("claude-haiku-4-5-20251001").output == 5.0
    assert price_of("some-future-model") == price_of("claude-sonnet-4-6")
    usage = TokenUsage(
        prompt_tokens=1_000_000, completion_tokens=100_000, cache_creation_tokens=200_000,
        cache_read_tokens=300_000, total_tokens=1_100_000,
    )  # fmt: skip
    # 500k uncached * 3 + 100k * 15 + 200k * 3.75 + 300k * 0.30 (USD per MTok)
    assert estimate_cost("claude-sonnet-4-6", usage) == pytest.approx(1.5 + 1.5 + 0.75 + 0.09)


def test_configured_prices_add_and_replace_model_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RELAYQ_PRICES",
        '{"claude-sonnet-4": {"input": 1, "output": 2, "cache_write": 3, "cache_read": 4},'
        ' "house-model": {"input": 9, "output": 9, "cache_write": 9, "cache_read": 9}}',
    )
    table = price_table(Settings().prices)

    assert price_of("claude-sonnet-4-6", table).input == 1.0
    assert price_of("house-model-v2", table).output == 9.0
    assert price_of("claude-opus-4-6", table).input == 5.0
