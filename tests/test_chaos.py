"""The chaos suite: real worker processes and redis-servers, killed and restarted under load.

Run alone with `pytest -m chaos`. Each scenario checks the contract: every accepted job ends with
exactly one terminal event, no job is lost, and a `done` job's final attempt holds exactly the
simulator's scripted reply (the voided attempts' output never leaks into it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relayq.client import Client, StreamEntry
from relayq.embedded_redis import EmbeddedRedis
from relayq.errors import RedisUnavailable
from relayq.schemas.constants import job_key
from relayq.schemas.events import Event, Retry, Started, Text
from relayq.schemas.jobs import ChatJob, ConnOptions
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator, run_in_thread, scripted_reply
from relayq.transcript import transcript_of
from tests.conftest import ONE_AT_A_TIME, WorkerProcess, start_worker, worker_env

pytestmark = [pytest.mark.chaos, ONE_AT_A_TIME]

LEASE_S = 3.0
RECOVERY_BOUND_S = 15.0


@pytest.fixture
def chaos_redis() -> Iterator[EmbeddedRedis]:
    # appendfsync always: a SIGKILLed Redis keeps every write it acknowledged
    with EmbeddedRedis(appendonly=True, appendfsync="always") as server:
        yield server


@pytest.fixture
def flaky_simulator() -> Iterator[Simulator]:
    with run_in_thread(fault_rate=0.10, seed=11) as sim:
        yield sim


@pytest.fixture
async def chaos_client(chaos_redis: EmbeddedRedis) -> AsyncIterator[Client]:
    settings = Settings(redis_url=chaos_redis.url)
    async with Client(chaos_redis.url, settings=settings) as c:
        yield c


@dataclass
class Fleet:
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)
    kills: list[tuple[int, float]] = field(default_factory=list)  # (pid, unix time)

    def spawn(self) -> WorkerProcess:
        w = start_worker(self.env, "--queues", "chat")
        self.workers.append(w)
        return w

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process.poll() is None]

    def kill_one(self, rng: random.Random) -> None:
        self.kill(rng.choice(self.alive()))

    def kill(self, victim: WorkerProcess) -> None:
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        self.kills.append((victim.process.pid, time.time()))

    async def kill_busy(self, client: Client, job_ids: list[str], rng: random.Random) -> bool:
        """SIGKILL a worker that is in the middle of a job, once another worker is alive to take
        its jobs over (replacements boot for seconds on a small machine); False once every job
        has ended."""
        while True:
            pipe = client.redis.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(job_key(job_id), "status", "worker")
            fields: list[list[bytes | None]] = await pipe.execute()
            running = {int(w.split(b":")[1]) for s, w in fields if s == b"running" and w}
            alive = {w.process.pid: w for w in self.alive()}
            if len(alive) > 1 and (victims := sorted(running & alive.keys())):
                await asyncio.to_thread(self.kill, alive[rng.choice(victims)])
                return True
            if all(s in (b"done", b"error", b"cancelled") for s, _ in fields):
                return False
            await asyncio.sleep(0.05)  # a job changing hands publishes nothing to await

    def stop(self) -> None:
        for w in self.workers:
            with contextlib.suppress(ProcessLookupError):
                w.process.kill()
            w.process.wait()


@pytest.fixture
def fleet(chaos_redis: EmbeddedRedis, flaky_simulator: Simulator) -> Iterator[Fleet]:
    env = worker_env(
        chaos_redis.url,
        flaky_simulator,
        RELAYQ_LEASE_S=str(LEASE_S),
        RELAYQ_LOG_LEVEL="WARNING",
        RELAYQ_SHUTDOWN_GRACE_S="0",
        RELAYQ_MAX_JOBS="10",  # 30 at once: the 300 jobs stream through the whole kill cadence
    )
    f = Fleet(env)
    yield f
    f.stop()


def chat_jobs(n: int, seed: int, *, always_restart: bool = False) -> list[ChatJob]:
    rng = random.Random(seed)
    return [
        ChatJob(
            id=f"chaos_{seed}_{i}",
            prompt=f"[[sim:tokens={rng.randint(10, 40)} rate=25]] chaos job {i}",
            conn_options=ConnOptions(max_retry=8, retry_interval=0.05, timeout=5),
            restart_after_output=always_restart or i % 2 == 0,
        )
        for i in range(n)
    ]


async def drain(client: Client, job_ids: list[str]) -> dict[str, list[Event]]:
    async def one(job_id: str) -> tuple[str, list[Event]]:
        return job_id, [entry.event for entry in await entries_resuming(client, job_id)]

    return dict(await asyncio.gather(*(one(j) for j in job_ids)))


def check_contract(jobs: list[ChatJob], results: dict[str, list[Event]]) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for job in jobs:
        events = results[job.id]
        terminals = [e for e in events if e.type in ("done", "error", "cancelled")]
        assert len(terminals) == 1, f"{job.id}: {[e.type for e in terminals]}"
        assert terminals[0] is events[-1]
        outcome = terminals[0].type
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "done":
            body = {"messages": [{"role": "user", "content": job.prompt}]}
            assert transcript_of(events).text == scripted_reply(body), job.id
    return outcomes


def recovery_times(fleet: Fleet, results: dict[str, list[Event]]) -> list[float]:
    """For each attempt lost with a killed worker: seconds from the kill to the next start.

    The next attempt's start script writes `retry(worker_lost)` and then its `started`."""
    times: list[float] = []
    for events in results.values():
        lost: Started | None = None
        for i, event in enumerate(events):
            if isinstance(event, Started):
                lost = event
            elif isinstance(event, Retry) and event.reason == "worker_lost":
                rerun = events[i + 1]
                assert lost is not None and isinstance(rerun, Started), [e.type for e in events]
                pid = int(lost.worker.split(":")[1])
                # a lease can also lapse on a live worker starved of CPU: fencing covers that,
                # and it is no recovery from a kill
                if killed := [t for p, t in fleet.kills if p == pid and t <= rerun.ts]:
                    times.append(rerun.ts - killed[-1])
    return times


def report(name: str, line: str) -> None:
    out = Path(os.environ.get("RELAYQ_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "chaos.txt").open("a") as f:
        f.write(f"{name}: {line}\n")
    print(f"\n{name}: {line}")


async def test_300_jobs_survive_workers_killed_every_few_seconds(
    chaos_client: Client, fleet: Fleet
) -> None:
    rng = random.Random(5)
    for _ in range(3):
        fleet.spawn()
    jobs = chat_jobs(300, seed=1)
    for job in jobs:
        await chaos_client.submit(job)

    job_ids = [j.id for j in jobs]
    draining = asyncio.create_task(drain(chaos_client, job_ids))
    replacements: list[asyncio.Task[WorkerProcess]] = []
    for _ in range(4):
        await asyncio.sleep(1.5)  # chaos cadence: a kill every 1.5 s while jobs stream
        if not await fleet.kill_busy(chaos_client, job_ids, rng):
            break
        # a replacement boots in the background (seconds on a small machine), as under a supervisor
        replacements.append(asyncio.create_task(asyncio.to_thread(fleet.spawn)))
    await asyncio.gather(*replacements)
    results = await asyncio.wait_for(draining, timeout=180)

    outcomes = check_contract(jobs, results)
    recoveries = recovery_times(fleet, results)
    assert outcomes.get("done", 0) >= 250, outcomes
    assert recoveries, "no job was caught mid-run by a kill"
    assert max(recoveries) < RECOVERY_BOUND_S
    report(
        "kill-9 chaos",
        f"{len(jobs)} jobs {outcomes}; {len(fleet.kills)} kills; kill-to-rerun over "
        f"{len(recoveries)} lost attempts: max {max(recoveries):.2f}s, "
        f"median {sorted(recoveries)[len(recoveries) // 2]:.2f}s (lease {LEASE_S}s)",
    )


async def test_jobs_survive_a_redis_crash_and_restart_in_the_middle(
    chaos_redis: EmbeddedRedis, chaos_client: Client, fleet: Fleet
) -> None:
    for _ in range(3):
        fleet.spawn()
    jobs = chat_jobs(150, seed=2)
    for job in jobs[:100]:
        await chaos_client.submit(job)

    draining = asyncio.create_task(drain(chaos_client, [j.id for j in jobs[:100]]))
    async for entry in chaos_client.events(jobs[0].id):  # the crash comes while jobs stream
        if isinstance(entry.event, Text):
            break
    await asyncio.to_thread(chaos_redis.kill)
    await asyncio.to_thread(chaos_redis.start)
    for job in jobs[100:]:
        await chaos_client.submit(job)
    results = await asyncio.wait_for(draining, timeout=180)
    results |= await asyncio.wait_for(drain(chaos_client, [j.id for j in jobs[100:]]), 180)

    outcomes = check_contract(jobs, results)
    assert outcomes.get("done", 0) >= 120, outcomes
    report("redis crash", f"{len(jobs)} jobs {outcomes}")


async def test_a_cancellation_storm_ends_every_job_cancelled_or_done_never_both(
    chaos_client: Client, fleet: Fleet
) -> None:
    rng = random.Random(9)
    for _ in range(2):
        fleet.spawn()
    jobs = chat_jobs(120, seed=3, always_restart=True)  # faults are retried: no `error`

    async def submit_and_maybe_cancel(job: ChatJob) -> None:
        await asyncio.sleep(rng.uniform(0, 1.0))
        await chaos_client.submit(job)
        if rng.random() < 0.6:
            await asyncio.sleep(rng.choice([0, 0, 0.05, 0.3, 1.0, 2.5]))
            await chaos_client.cancel(job.id)

    await asyncio.gather(*(submit_and_maybe_cancel(j) for j in jobs))
    results = await asyncio.wait_for(drain(chaos_client, [j.id for j in jobs]), timeout=120)

    outcomes = check_contract(jobs, results)
    assert set(outcomes) <= {"cancelled", "done"}, outcomes
    assert outcomes.get("cancelled", 0) > 20 and outcomes.get("done", 0) > 20, outcomes
    report("cancel storm", f"{len(jobs)} jobs {outcomes}")


def _chromium_descendants(pid: int) -> set[int]:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    return {c.pid for c in children if "chrom" in c.name().lower()}


def _alive(pids: set[int]) -> set[int]:
    import psutil

    return {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"}


@pytest.mark.browser
async def test_a_killed_browser_workers_job_reruns_in_a_fresh_context_and_leaves_no_chromium(
    chaos_redis: EmbeddedRedis, chaos_client: Client
) -> None:
    from relayq.schemas.events import Retry, Screenshot
    from relayq.schemas.jobs import ComputerUseJob
    from relayq.static_server import serve_directory

    with run_in_thread() as sim, serve_directory() as site:
        env = worker_env(chaos_redis.url, sim, RELAYQ_LEASE_S=str(LEASE_S))
        victim = start_worker(env, "--queues", "computer")
        replacement: WorkerProcess | None = None
        try:
            job = ComputerUseJob(
                task="[[sim:plan=signup rate=8]] Sign up, at a human pace.",
                start_url=f"{site}/demo_signup.html",
                allow_private_network=True,
            )
            await chaos_client.submit(job)
            async for entry in chaos_client.events(job.id):
                if isinstance(entry.event, Screenshot) and entry.event.step >= 1:
                    break
            browsers = _chromium_descendants(victim.process.pid)
            assert browsers, "the browser worker runs no Chromium?"
            victim.process.kill()
            victim.process.wait()
            replacement = start_worker(env, "--queues", "computer")

            events = [e.event async for e in chaos_client.events(job.id)]

            lost = [e for e in events if isinstance(e, Retry)]
            assert [r.reason for r in lost] == ["worker_lost"]
            assert events[-1].type == "done" and events[-1].attempt == 2
            rerun_shots = [e for e in events if isinstance(e, Screenshot) and e.attempt == 2]
            assert rerun_shots[0].step == 0, "the re-run did not start from the start page"
            orphans = await _wait_until_gone(browsers)
            assert not orphans, f"the dead worker left Chromium behind: {orphans}"
            replacement_browsers = _chromium_descendants(replacement.process.pid)
        finally:
            for w in (victim, replacement):
                if w is not None:
                    w.stop()
        assert not await _wait_until_gone(replacement_browsers)


async def _wait_until_gone(pids: set[int], within: float = 15.0) -> set[int]:
    """Polls process state (there is no event to await) until `pids` are gone or time is up."""
    for _ in range(int(within / 0.2)):
        if not _alive(pids):
            return set()
        await asyncio.sleep(0.2)
    return _alive(pids)


OUTAGE_S = 30.0


async def entries_resuming(client: Client, job_id: str) -> list[StreamEntry]:
    """A job's stream entries to its terminal event, resuming from the last id after Redis
    stays away longer than the client's retries (as CONTRACT.md tells subscribers to)."""
    entries: list[StreamEntry] = []
    while True:
        try:
            after = entries[-1].id if entries else "0"
            async for entry in client.events(job_id, after, block_ms=1000):
                entries.append(entry)
            return entries
        except RedisUnavailable:
            await asyncio.sleep(0.5)


@pytest.mark.timeout(300)  # a 30 s outage, re-runs after it, and a loaded machine
async def test_a_30_s_redis_outage_with_100_running_jobs_recovers_every_job_within_the_lease(
    chaos_redis: EmbeddedRedis, chaos_client: Client, simulator: Simulator
) -> None:
    env = worker_env(
        chaos_redis.url,
        simulator,
        RELAYQ_LEASE_S=str(LEASE_S),
        RELAYQ_LOG_LEVEL="WARNING",
        RELAYQ_MAX_JOBS="60",
    )
    fleet = Fleet(env)
    try:
        for _ in range(2):
            fleet.spawn()
        jobs = [
            ChatJob(
                id=f"outage_{i}",
                # 30-40 s each: still streaming when Redis dies, however slowly 100 jobs start
                prompt=f"[[sim:tokens={300 + i} rate=10]] running through an outage {i}",
                restart_after_output=True,
            )
            for i in range(100)
        ]
        for job in jobs:
            await chaos_client.submit(job)
        reading = {j.id: asyncio.create_task(entries_resuming(chaos_client, j.id)) for j in jobs}
        for job in jobs:  # every job is streaming when Redis dies
            await first_text(chaos_client, job.id)
        ended = [j.id for j in jobs if await ended_already(chaos_client, j.id)]
        assert not ended, f"premise: {len(ended)} jobs ended before Redis died: {ended[:5]}"

        await asyncio.to_thread(chaos_redis.kill)
        await asyncio.sleep(OUTAGE_S)  # the outage itself: nothing to await
        await asyncio.to_thread(chaos_redis.start)
        back_ms = int(time.time() * 1000)
        results = {job_id: await asyncio.wait_for(task, 240) for job_id, task in reading.items()}
    finally:
        fleet.stop()

    # how long after Redis came back each job wrote again (its stream ids are Redis' clock)
    resumed = {job_id: resumed_after(entries, back_ms) for job_id, entries in results.items()}
    silent = sorted(job_id for job_id, s in resumed.items() if s is None)
    assert not silent, f"{len(silent)} jobs wrote nothing after Redis came back: {silent[:5]}"
    outcomes = check_contract(jobs, {k: [e.event for e in v] for k, v in results.items()})
    assert outcomes == {"done": len(jobs)}, outcomes
    delays = sorted(s for s in resumed.values() if s is not None)
    assert delays[-1] <= LEASE_S + 5, f"slowest job resumed {delays[-1]:.1f} s after restart"
    report(
        "30 s redis outage",
        f"{len(jobs)} running jobs {outcomes}; after the restart every job wrote again within "
        f"{delays[-1]:.2f} s (median {delays[len(delays) // 2]:.2f} s; lease {LEASE_S} s)",
    )


def resumed_after(entries: list[StreamEntry], back_ms: int) -> float | None:
    """Seconds from `back_ms` to the job's first stream entry at or after it (None: none)."""
    for entry in entries:
        written_ms = int(entry.id.split("-")[0])
        if written_ms >= back_ms:
            return (written_ms - back_ms) / 1000
    return None


async def ended_already(client: Client, job_id: str) -> bool:
    return (await client.status(job_id)).status in ("done", "error", "cancelled")


async def first_text(client: Client, job_id: str) -> None:
    async for entry in client.events(job_id):
        if isinstance(entry.event, Text):
            return
    raise AssertionError(f"{job_id} ended before its first text")
