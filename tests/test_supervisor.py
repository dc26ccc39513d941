"""`relayq worker --processes N`: real worker processes under a real supervisor process, killed
and signalled as an operator (or the kernel) would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.constants import events_key, job_key
from relayq.schemas.events import Done, Event, Retry, Text
from relayq.schemas.jobs import ChatJob
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator
from relayq.workers.supervisor import RESTART_DELAY_CAP_S, RESTART_DELAY_S, restart_delay
from tests.conftest import ONE_AT_A_TIME, ROOT, worker_env

pytestmark = ONE_AT_A_TIME


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=False) as server:
        yield server


@pytest.fixture
async def own_client(own_redis: EmbeddedRedis) -> AsyncIterator[Client]:
    async with Client(own_redis.url, settings=Settings(redis_url=own_redis.url)) as c:
        yield c


class Supervised:
    """`relayq worker --processes 2` as a process, with its children."""

    def __init__(self, redis: EmbeddedRedis, simulator: Simulator) -> None:
        env = worker_env(redis.url, simulator, RELAYQ_SHUTDOWN_GRACE_S="5")
        del env["RELAYQ_WORKER_PROCESSES"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayq", "worker", "--queues", "chat", "--processes", "2"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.ready_line = self.process.stdout.readline()

    def children(self) -> list[psutil.Process]:
        return [p for p in psutil.Process(self.process.pid).children() if p.is_running()]

    def stop(self) -> None:
        if self.process.poll() is None:
            for child in self.children():
                child.kill()
            self.process.kill()
        self.process.wait()


@pytest.fixture
def supervised(own_redis: EmbeddedRedis, simulator: Simulator) -> Iterator[Supervised]:
    s = Supervised(own_redis, simulator)
    yield s
    s.stop()


async def events_of(client: Client, job_id: str) -> list[Event]:
    return [e.event async for e in client.events(job_id)]


async def children_other_than(s: Supervised, old: set[int], count: int) -> set[int]:
    """Waits (a process starting publishes nothing to await) until `count` children that are
    not in `old` are up."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = {c.pid for c in s.children()}
        if len(pids - old) >= count:
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError(f"no new worker process after 60 s; children {pids}")


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """The pids of `pids` still running after `timeout` seconds."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return {p.pid for p in alive}


async def test_the_supervisor_runs_the_processes_asked_for_and_says_ready_once(
    supervised: Supervised, own_client: Client
) -> None:
    children = {c.pid for c in supervised.children()}

    assert "ready" in supervised.ready_line and "2 processes" in supervised.ready_line
    assert len(children) == 2
    assert all(str(pid) in supervised.ready_line for pid in children)
    jobs = [ChatJob(prompt=f"job {i}") for i in range(6)]
    for job in jobs:
        await own_client.submit(job)
    for job in jobs:
        assert isinstance((await events_of(own_client, job.id))[-1], Done)


async def test_a_killed_worker_process_is_replaced_and_its_job_runs_again(
    supervised: Supervised, own_client: Client
) -> None:
    job = ChatJob(prompt="[[sim:tokens=200 rate=40]] outlive a kill")
    await own_client.submit(job)
    async for entry in own_client.events(job.id):
        if isinstance(entry.event, Text):
            break
    children = {c.pid for c in supervised.children()}
    status = await own_client.redis.hget(job_key(job.id), "worker")
    victim = int(status.split(b":")[1]) if status else next(iter(children))

    psutil.Process(victim).send_signal(signal.SIGKILL)
    now = await children_other_than(supervised, children, 1)

    assert victim not in now and len(now) == 2
    assert supervised.process.poll() is None
    events = await events_of(own_client, job.id)
    assert any(isinstance(e, Retry) and e.reason == "worker_lost" for e in events)
    assert isinstance(events[-1], Done)


async def test_sigterm_reaches_every_worker_process_which_hand_their_jobs_back(
    supervised: Supervised, own_client: Client
) -> None:
    job = ChatJob(prompt="[[sim:tokens=400 rate=20]] long enough to be running")
    await own_client.submit(job)
    async for entry in own_client.events(job.id):
        if isinstance(entry.event, Text):
            break
    children = {c.pid for c in supervised.children()}

    supervised.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(supervised.process.wait, 30)

    assert code == 0
    assert wait_gone(children, timeout=5) == set()
    entries = await own_client.redis.xrange(events_key(job.id))
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    assert events[-1]["type"] == "retry" and events[-1]["reason"] == "shutdown"


async def test_worker_processes_do_not_outlive_a_killed_supervisor(
    supervised: Supervised,
) -> None:
    children = {c.pid for c in supervised.children()}

    supervised.process.send_signal(signal.SIGKILL)
    supervised.process.wait()

    assert len(children) == 2
    assert wait_gone(children, timeout=30) == set()


def test_restarts_back_off_while_a_process_keeps_dying_and_start_over_once_it_lived() -> None:
    delays = [RESTART_DELAY_S]
    for _ in range(12):
        delays.append(restart_delay(delays[-1], lived_s=1.0))

    assert delays[:3] == [RESTART_DELAY_S, 2 * RESTART_DELAY_S, 4 * RESTART_DELAY_S]
    assert max(delays) == delays[-1] == RESTART_DELAY_CAP_S
    assert restart_delay(RESTART_DELAY_CAP_S, lived_s=3600) == RESTART_DELAY_S
