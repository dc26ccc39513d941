"""The gateway's hardened edges (issue 12), over real HTTP against real Redis servers: per-tenant
limits, per-tenant listing and job ids, hostile bodies and resume ids, a Redis outage under open
event streams, and pages that load no third-party script."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.jobs import ChatJob
from relayq.schemas.settings import Settings
from tests.conftest import WorkerProcess
from tests.test_gateway import ACME, GLOBEX, LOCAL, Sse, read_sse, running_gateway, submit

# databases of the session's Redis that no worker serves and no other test reads
RATE_DB = 4
FLOOD_DB = 5
QUOTA_DB = 6


def _url(redis_server: EmbeddedRedis, db: int) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/{db}"


@pytest.fixture
async def http(idle_gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=idle_gateway, headers=ACME, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def idle_gateway(idle_redis_url: str) -> Iterator[str]:
    with running_gateway(idle_redis_url) as base_url:
        yield base_url


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, object] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


# --------------------------------------------------------------------------- limits


async def test_submits_above_the_tenants_rate_get_429_with_retry_after(
    redis_server: EmbeddedRedis,
) -> None:
    url = _url(redis_server, RATE_DB)
    with running_gateway(url, gateway_submit_rate=1.0, gateway_submit_burst=3) as base:
        async with httpx.AsyncClient(base_url=base, headers=ACME, timeout=30) as http:
            burst = [await http.post("/v1/jobs", json={"prompt": f"b{n}"}) for n in range(3)]
            refused = await http.post("/v1/jobs", json={"prompt": "one too many"})
            other_tenant = await http.post("/v1/jobs", json={"prompt": "mine"}, headers=GLOBEX)
            wait = int(refused.headers["retry-after"])
            await asyncio.sleep(wait)  # the bucket refills with time; there is no event to await
            later = await http.post("/v1/jobs", json={"prompt": "after the wait"})

    assert [r.status_code for r in burst] == [202, 202, 202]
    problem = assert_problem(refused, 429)
    assert 1 <= wait <= 2 and "1/s" in str(problem["detail"])
    assert other_tenant.status_code == 202, "one tenant's limit is not another's"
    assert later.status_code == 202


async def test_the_daily_quota_counts_only_jobs_created(redis_server: EmbeddedRedis) -> None:
    url = _url(redis_server, QUOTA_DB)
    with running_gateway(url, gateway_submit_rate=0, gateway_daily_quota=3) as base:
        async with httpx.AsyncClient(base_url=base, headers=GLOBEX, timeout=30) as http:
            key = {"Idempotency-Key": "quota-replays"}
            replays = [
                await http.post("/v1/jobs", json={"prompt": "r"}, headers=key) for _ in range(3)
            ]
            invalid = await http.post("/v1/jobs", json={"prompt": "x", "max_tokens": -1})
            more = [await http.post("/v1/jobs", json={"prompt": f"m{n}"}) for n in range(2)]
            refused = await http.post("/v1/jobs", json={"prompt": "over quota"})
            other_tenant = await http.post("/v1/jobs", json={"prompt": "mine"}, headers=ACME)

    assert [r.json()["created"] for r in replays] == [True, False, False]
    assert invalid.status_code == 422
    assert [r.status_code for r in more] == [202, 202]
    problem = assert_problem(refused, 429)
    assert "quota" in str(problem["detail"])
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert other_tenant.status_code == 202


# --------------------------------------------------------------------------- listing and ids


@pytest.fixture
async def flood_db(redis_server: EmbeddedRedis) -> AsyncIterator[str]:
    url = _url(redis_server, FLOOD_DB)
    yield url
    async with Client(url) as client:
        await client.redis.flushdb()


async def test_one_tenants_flood_neither_hides_nor_leaks_into_another_tenants_list(
    flood_db: str,
) -> None:
    with running_gateway(flood_db, gateway_submit_rate=0, gateway_daily_quota=0) as base:
        async with httpx.AsyncClient(base_url=base, headers=ACME, timeout=30) as http:
            mine = await submit(http, {"prompt": "acme was here first"})
            # globex's flood, straight through the client: thousands of newer jobs
            async with Client(flood_db, settings=Settings(redis_url=flood_db)) as client:
                flood = [ChatJob(id=f"globex::flood-{n}", prompt="x") for n in range(5200)]
                head = flood[:-3]
                for start in range(0, len(head), 200):
                    await asyncio.gather(
                        *(client.submit(j, tenant="globex") for j in head[start : start + 200])
                    )
                for job in flood[-3:]:  # the newest three, in order
                    await client.submit(job, tenant="globex")
            first = (await http.get("/v1/jobs", params={"limit": 1})).json()
            listed = (await http.get("/v1/jobs", params={"limit": 200})).json()
            theirs = (await http.get("/v1/jobs", params={"limit": 3}, headers=GLOBEX)).json()

    assert [j["id"] for j in first["jobs"]] == [mine]
    assert [j["id"] for j in listed["jobs"]] == [mine] and listed["next_cursor"] is None
    assert "flood" not in json.dumps(first) + json.dumps(listed)
    assert [j["id"] for j in theirs["jobs"]] == ["flood-5199", "flood-5198", "flood-5197"]
    assert "flood-5197" in theirs["next_cursor"] and "::" not in theirs["next_cursor"]


async def test_another_tenants_job_id_answers_exactly_like_an_unknown_id(
    http: httpx.AsyncClient,
) -> None:
    mine = await submit(http, {"id": "order-17", "prompt": "acme's order"})

    as_globex = await http.get("/v1/jobs/order-17", headers=GLOBEX)
    unknown = await http.get("/v1/jobs/order-18", headers=GLOBEX)
    spelled_out = await http.get("/v1/jobs/acme::order-17", headers=GLOBEX)
    taken_elsewhere = await http.post(
        "/v1/jobs", json={"id": "order-17", "prompt": "globex's own order 17"}, headers=GLOBEX
    )

    assert mine == "order-17"
    assert_problem(as_globex, 404)
    assert_problem(unknown, 404)
    assert as_globex.json()["detail"].replace("17", "N") == unknown.json()["detail"].replace(
        "18", "N"
    )
    assert_problem(spelled_out, 404)
    assert taken_elsewhere.status_code == 202 and taken_elsewhere.json()["created"]
    assert taken_elsewhere.json()["id"] == "order-17"
    # each tenant sees its own job under the id it chose, in its status and in its events
    acme_view = (await http.get("/v1/jobs/order-17")).json()
    globex_view = (await http.get("/v1/jobs/order-17", headers=GLOBEX)).json()
    assert acme_view["id"] == globex_view["id"] == "order-17"
    assert acme_view["tenant"] == "acme" and globex_view["tenant"] == "globex"
    await http.delete("/v1/jobs/order-17")
    events = await read_sse(http, "order-17")
    assert [e["job_id"] for e in events.events] == ["order-17", "order-17"]
    assert events.messages[-1]["event"] == "cancelled"


async def test_the_local_tenant_sees_the_jobs_submitted_without_a_tenant(
    gateway_on_the_workers_db: str, client: Client
) -> None:
    job = ChatJob(prompt="Submitted from Python, watched in the dashboard")
    await client.submit(job)  # no tenant: the CLI and the Python client submit like this

    async with httpx.AsyncClient(
        base_url=gateway_on_the_workers_db, headers=LOCAL, timeout=30
    ) as local:
        me = (await local.get("/v1/me")).json()
        listed = (await local.get("/v1/jobs", params={"limit": 20})).json()
        events = await read_sse(local, job.id)
        reserved = await local.post("/v1/jobs", json={"id": "a::b", "prompt": "x"})
        as_acme = await local.get(f"/v1/jobs/{job.id}", headers=ACME)

    assert me == {"tenant": "local", "local": True, "local_tenant": "local"}
    assert job.id in [j["id"] for j in listed["jobs"]]
    assert events.messages[-1]["event"] == "done"
    assert {e["job_id"] for e in events.events} == {job.id}
    problem = assert_problem(reserved, 422)
    assert "reserved" in str(problem["detail"])
    assert_problem(as_acme, 404)


@pytest.fixture(scope="module")
def gateway_on_the_workers_db(redis_url: str, worker: WorkerProcess) -> Iterator[str]:
    with running_gateway(redis_url) as base_url:
        yield base_url


# --------------------------------------------------------------------------- hostile input


async def test_deeply_nested_json_is_a_400_not_a_500(http: httpx.AsyncClient) -> None:
    deep = b'{"prompt": "x", "metadata": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    nested = b'{"prompt": "x", "metadata": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}"

    very = await http.post("/v1/jobs", content=deep, headers={"content-type": "application/json"})
    less = await http.post("/v1/jobs", content=nested, headers={"content-type": "application/json"})

    assert "nests too deeply" in str(assert_problem(very, 400)["detail"])
    assert less.status_code in (400, 422), less.text


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("after", "18446744073709551616-0"),
        ("after", "0-18446744073709551616"),
        ("Last-Event-ID", "99999999999999999999"),
        ("Last-Event-ID", "1-2-3"),
        ("after", "-1"),
        ("after", "1700000000000-"),
    ],
)
async def test_resume_ids_above_2_64_or_malformed_are_a_400(
    http: httpx.AsyncClient, where: str, value: str
) -> None:
    job_id = await submit(http, {"prompt": "resume me"})
    params = {"after": value} if where == "after" else None
    headers = {where: value} if where != "after" else None

    response = await http.get(f"/v1/jobs/{job_id}/events", params=params, headers=headers)

    assert "stream id" in str(assert_problem(response, 400)["detail"])
    await http.delete(f"/v1/jobs/{job_id}")


async def test_the_largest_resume_id_is_accepted_and_the_stream_stays_open(
    http: httpx.AsyncClient,
) -> None:
    job_id = await submit(http, {"prompt": "nothing after the end of time"})
    largest = f"{2**64 - 1}-{2**64 - 1}"

    sse = await read_sse(
        http, job_id, headers={"Last-Event-ID": largest}, stop=lambda s: bool(s.comments)
    )

    assert sse.messages == [] and sse.comments == ["keep-alive"]
    await http.delete(f"/v1/jobs/{job_id}")


# --------------------------------------------------------------------------- outage


async def test_event_streams_end_cleanly_in_a_redis_outage_and_resume_after_it() -> None:
    with (
        EmbeddedRedis(appendonly=True, appendfsync="always") as redis,
        running_gateway(redis.url, gateway_heartbeat_s=0.5) as base,
    ):
        async with httpx.AsyncClient(base_url=base, headers=ACME, timeout=60) as http:
            job_id = await submit(http, {"prompt": "survive the outage"})
            killed: list[str] = []

            async def kill_after_the_first_event(sse: Sse) -> None:
                if not killed and sse.messages:
                    redis.kill()
                    killed.append("yes")

            during = await read_sse(http, job_id, hook=kill_after_the_first_event)
            redis.start()
            for _ in range(200):  # the gateway's pool reconnects on its own
                if (await http.get("/healthz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            cancelled = await http.delete(f"/v1/jobs/{job_id}")
            after = await read_sse(http, job_id, headers={"Last-Event-ID": during.ids[-1]})

    assert [m["event"] for m in during.messages] == ["queued"]
    assert during.comments[-1].startswith("redis unavailable"), during.comments
    assert cancelled.json()["outcome"] == "cancelled"
    assert [m["event"] for m in after.messages] == ["cancelled"]


# --------------------------------------------------------------------------- pages


async def test_docs_load_no_script_and_every_page_has_a_strict_content_security_policy(
    http: httpx.AsyncClient,
) -> None:
    docs = await http.get("/docs")
    dashboard = await http.get("/")
    redoc = await http.get("/redoc")

    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "<script" not in docs.text.lower()
    assert "http://" not in docs.text and "https://" not in docs.text
    assert "/v1/jobs/{job_id}/events" in docs.text and "ChatJob" in docs.text
    docs_policy = docs.headers["content-security-policy"]
    assert "default-src 'none'" in docs_policy and "script-src" not in docs_policy
    policy = dashboard.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe" not in policy and "http" not in policy
    assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert redoc.status_code == 404
