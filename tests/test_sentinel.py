"""relayq behind Redis Sentinel: a primary, a replica and 3 sentinels started by this session,
worker processes, the simulator over HTTP. Run alone with `pytest -m sentinel`.

The primary is killed mid-run; the sentinels promote the replica, clients and workers follow
through the sentinels, and the contract holds: every accepted job ends with exactly one
terminal event, a `done` job's final attempt is exactly the scripted reply, nothing is lost.
Also when the old primary is started again at once, and when the new one starves long enough for
a second failover.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from relayq.client import Client
from relayq.connection import connect
from relayq.errors import RedisUnavailable
from relayq.schemas.events import Event, Retry, Text
from relayq.schemas.jobs import ChatJob, ConnOptions
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator
from relayq.transcript import transcript_of
from tests.conftest import ONE_AT_A_TIME, WorkerProcess, queue_drained, start_worker, worker_env
from tests.redis_topologies import LocalSentinel
from tests.test_chaos import report
from tests.test_cluster import first, reply_of

pytestmark = [pytest.mark.sentinel, ONE_AT_A_TIME]

LEASE_S = "3"
COUNTER = "relayq-test:counter"


@pytest.fixture(scope="module")
def sentinel() -> Iterator[LocalSentinel]:
    with LocalSentinel() as s:
        yield s


@pytest.fixture(scope="module")
def sentinel_workers(sentinel: LocalSentinel, simulator: Simulator) -> Iterator[None]:
    env = worker_env(sentinel.url, simulator, RELAYQ_LEASE_S=LEASE_S, RELAYQ_MAX_JOBS="60")
    workers: list[WorkerProcess] = [start_worker(env, "--queues", "chat") for _ in range(2)]
    yield
    for w in workers:
        w.stop()


@pytest.fixture
async def sentinel_client(sentinel: LocalSentinel, sentinel_workers: None) -> AsyncIterator[Client]:
    async with Client(sentinel.url, settings=Settings(redis_url=sentinel.url)) as c:
        yield c


def failover_jobs(name: str, count: int, tokens: int) -> list[ChatJob]:
    """Jobs that stream at 25 tokens/s for `tokens` to `tokens` + 19 tokens and ride out a
    failover: quick retries, and a restart rather than an error after output was seen."""
    return [
        ChatJob(
            id=f"sentinel_{name}_{i}",
            prompt=f"[[sim:tokens={tokens + i % 20} rate=25]] sentinel {name} job {i}",
            conn_options=ConnOptions(max_retry=8, retry_interval=0.05, timeout=5),
            restart_after_output=True,
        )
        for i in range(count)
    ]


def outcome_of(job: ChatJob, events: list[Event]) -> str:
    terminals = [e for e in events if e.type in ("done", "error", "cancelled")]
    assert len(terminals) == 1 and terminals[0] is events[-1], [e.type for e in events]
    if events[-1].type == "done":
        assert transcript_of(events).text == reply_of(job), job.id
    return events[-1].type


async def stored_events(client: Client, job_id: str) -> list[Event]:
    """The job's stream once it has ended, read again from the start: what it holds after the
    failover, not what a reader saw from the primary that died."""
    for _ in range(100):
        try:
            async for entry in client.events(job_id, block_ms=1000):
                if entry.event.type in ("done", "error", "cancelled"):
                    break
            return [e.event async for e in client.events(job_id, block_ms=1000)]
        except RedisUnavailable:
            await asyncio.sleep(0.2)
    raise AssertionError(f"{job_id}: Redis never came back")


async def submit_until_accepted(client: Client, job: ChatJob) -> None:
    for _ in range(200):
        try:
            await client.submit(job)
            return
        except RedisUnavailable:  # also NotReplicated: the same id again is safe
            await asyncio.sleep(0.1)
    raise AssertionError(f"{job.id} was never accepted")


async def test_chat_jobs_run_behind_sentinel(sentinel_client: Client) -> None:
    jobs = [ChatJob(prompt=f"[[sim:tokens=20 rate=200]] sentinel job {i}") for i in range(10)]
    for job in jobs:
        await sentinel_client.submit(job)

    results = await asyncio.gather(*(stored_events(sentinel_client, j.id) for j in jobs))

    assert [outcome_of(job, events) for job, events in zip(jobs, results, strict=True)] == [
        "done"
    ] * len(jobs)


async def test_a_reconnect_begun_as_the_primary_died_reaches_the_new_primary_not_the_old_address(
    sentinel: LocalSentinel,
) -> None:
    """For a second after the primary dies the sentinels still name it, so a client that starts
    to reconnect then is told to dial it. If it kept dialing that address (redis-py's own
    connection does, for the whole retry budget), it would reach the old server when a
    supervisor starts it again, empty and a primary until the sentinels demote it."""
    redis = connect(sentinel.url)
    await redis.set(COUNTER, 41)
    assert await redis.wait(1, 1000) == 1
    victim = sentinel.primary()

    victim.kill()
    incremented = asyncio.create_task(redis.incr(COUNTER))  # dials while the victim is named
    await asyncio.to_thread(sentinel.await_promotion, victim)
    # started again without its data (no append-only file), as a primary
    victim.start(extra_args=["--appendonly", "no", "--dbfilename", "none.rdb"])

    try:
        assert await incremented == 42  # on the promoted replica, which has the 41
        with victim.client() as old:
            assert old.get(COUNTER) is None
    finally:
        await redis.aclose()
        victim.kill()
        sentinel.restore(victim)  # as the next tests expect it: with its data, a replica


async def test_a_user_without_admin_commands_connects_through_the_sentinels(
    sentinel: LocalSentinel,
) -> None:
    """The primary's role is checked with ROLE, an @admin command; a hardened ACL user that may
    not run it still connects (and then has the sentinels' word, as with redis-py alone)."""
    for server in sentinel.servers:  # ACL users are per server, not replicated
        with server.client() as r:
            r.acl_setuser(
                "relayq-app", enabled=True, passwords=["+app-secret"], keys=["*"],
                channels=["*"], commands=["+@all", "-@admin"],
            )  # fmt: skip
    restricted = sentinel.url.replace(
        "redis+sentinel://", "redis+sentinel://relayq-app:app-secret@"
    )
    redis = connect(restricted)
    try:
        await redis.set(COUNTER, 1)
        assert await redis.incr(COUNTER) == 2
    finally:
        await redis.aclose()


@pytest.mark.timeout(300)  # the drain below has its own deadline; this one must not cut it short
async def test_a_primary_killed_mid_run_loses_no_accepted_job_and_ends_each_once(
    sentinel: LocalSentinel, sentinel_client: Client
) -> None:
    jobs = failover_jobs("failover", 100, tokens=20)
    for job in jobs[:70]:
        await sentinel_client.submit(job)
    await first(sentinel_client, jobs[0].id, Text)  # the kill comes while jobs stream

    def fail_over_and_restart() -> int:
        victim = sentinel.fail_over()
        sentinel.restore(victim)  # as a supervisor would: it comes back as a replica
        return victim.port

    failing_over = asyncio.create_task(asyncio.to_thread(fail_over_and_restart))
    await asyncio.gather(*(submit_until_accepted(sentinel_client, j) for j in jobs[70:]))
    victim_port = await failing_over
    results = dict(
        zip(
            [j.id for j in jobs],
            await asyncio.wait_for(
                asyncio.gather(*(stored_events(sentinel_client, j.id) for j in jobs)), 180
            ),
            strict=True,
        )
    )

    outcomes = Counter(outcome_of(job, results[job.id]) for job in jobs)
    errors = [ev[-1] for ev in results.values() if ev[-1].type == "error"]
    assert outcomes == {"done": len(jobs)}, (outcomes, errors)
    assert await queue_drained(sentinel_client)
    voided = Counter(e.reason for ev in results.values() for e in ev if isinstance(e, Retry))
    report(
        "sentinel primary kill",
        f"{len(jobs)} jobs {dict(outcomes)}; primary {victim_port} killed, replica promoted by "
        f"3 sentinels; {len(jobs) - 70} submitted during the failover; attempts voided "
        f"{dict(voided)}",
    )


@pytest.mark.timeout(300)
async def test_a_second_failover_right_after_the_first_loses_no_accepted_job(
    sentinel: LocalSentinel, sentinel_client: Client
) -> None:
    """The old primary is back as a replica when the new one starves for 4 s (as on an
    overloaded host; down-after is 2 s): the sentinels fail over again, to the server that
    was killed. It came back with its data and synced, so nothing accepted is lost; what the
    starved primary took in after the second promotion is not replicated and not acknowledged."""
    jobs = failover_jobs("twice", 40, tokens=30)
    for job in jobs:
        await sentinel_client.submit(job)
    await first(sentinel_client, jobs[0].id, Text)

    def fail_over_twice() -> tuple[int, int]:
        first = sentinel.fail_over()
        sentinel.restore(first)
        starved = sentinel.primary()
        starved.freeze(4.0)
        sentinel.await_promotion(starved)
        promoted = sentinel.primary()
        sentinel.settle()
        return first.port, promoted.port

    killed, promoted = await asyncio.to_thread(fail_over_twice)
    results = await asyncio.wait_for(
        asyncio.gather(*(stored_events(sentinel_client, j.id) for j in jobs)), 180
    )

    assert promoted == killed  # the premise: the second failover promoted the restarted server
    outcomes = Counter(outcome_of(job, events) for job, events in zip(jobs, results, strict=True))
    assert outcomes == {"done": len(jobs)}, outcomes
    assert await queue_drained(sentinel_client)
    report(
        "sentinel two failovers",
        f"{len(jobs)} jobs {dict(outcomes)}; primary {killed} killed and restored, its "
        f"successor starved 4 s, {killed} promoted again",
    )
