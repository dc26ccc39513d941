"""Real parts only: a redis-server and the API simulator started by this test session, and real
worker processes. Nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.constants import CHAT, QueueKeys, envelope_key, events_key, job_key
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator, run_in_thread
from relayq.static_server import serve_directory

# The suite gates every landing, so its property tests draw the same examples on every run;
# HYPOTHESIS_PROFILE=explore draws new ones (and prints a reproducer for any failure).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", max_examples=500, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
# db 0 is served by the session's worker; tests that need a queue nobody reads use db 1
IDLE_DB = 1


ONE_AT_A_TIME = pytest.mark.xdist_group("faults")
"""For the modules that kill workers, Redis nodes or whole topologies on short leases: under
`pytest -n N --dist loadgroup` (make test) their tests run one after another in one pytest process,
since their deadlines assume the machine is not also running another of them."""


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=True) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def idle_redis_url(redis_server: EmbeddedRedis) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/{IDLE_DB}"


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    # strict: every request the real API is documented to reject is rejected (a 400) here too
    with run_in_thread(strict=True) as sim:
        yield sim


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    env: dict[str, str]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker_env(redis_url: str, simulator: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYQ_", "ANTHROPIC_"))}
    env.update(
        RELAYQ_REDIS_URL=redis_url,
        ANTHROPIC_BASE_URL=simulator.base_url,
        ANTHROPIC_API_KEY="sk-relayq-test",
        RELAYQ_STREAM_TTL_S="600",
        RELAYQ_WORKER_PROCESSES="1",  # one process per worker the tests start (and kill)
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def start_worker(env: dict[str, str], *args: str) -> WorkerProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "ready" in line, f"worker did not start: {line!r}"
    return WorkerProcess(process, env)


@pytest.fixture(scope="session")
def worker(redis_url: str, simulator: Simulator) -> Iterator[WorkerProcess]:
    w = start_worker(worker_env(redis_url, simulator), "--queues", "chat")
    yield w
    w.stop()


@pytest.fixture(scope="session")
def computer_worker(redis_url: str, simulator: Simulator) -> Iterator[WorkerProcess]:
    """One browser worker for the session (it launches Chromium once)."""
    w = start_worker(worker_env(redis_url, simulator), "--queues", "computer")
    yield w
    w.stop()


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """relayq/static (the demo signup page) served on loopback."""
    with serve_directory() as base_url:
        yield base_url


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, stream_ttl_s=600)


@pytest.fixture
async def client(settings: Settings, worker: WorkerProcess) -> AsyncIterator[Client]:
    async with Client(settings=settings) as c:
        yield c


@pytest.fixture
async def idle_client(idle_redis_url: str) -> AsyncIterator[Client]:
    async with Client(idle_redis_url, settings=Settings(redis_url=idle_redis_url)) as c:
        yield c


async def enqueue_raw(client: Client, job_id: str, payload: str) -> None:
    """Submits `payload` as a job's JSON without validating it, as another producer could."""
    await client._scripts.call(
        "enqueue",
        [job_key(job_id), events_key(job_id)],
        [job_id, payload, "chat", "?", 1000, CHAT.waiting, "", 600],
    )
    await client._scripts.call("admit", [CHAT.waiting, CHAT.leases], [job_id, CHAT.wake])


async def put_raw_envelope(client: Client, job_id: str, envelope: bytes) -> None:
    """What a raw producer does (CONTRACT.md): the envelope on the job's slot, then admit."""
    await client.redis.set(envelope_key(job_id), envelope, px=600_000)
    await client._scripts.call("admit", [CHAT.waiting, CHAT.leases], [job_id, CHAT.wake])


async def queue_drained(client: Client, queue: QueueKeys = CHAT, within_s: float = 10.0) -> bool:
    """True once nothing waits on or holds a lease of `queue`. A worker releases a job's lease
    just after its terminal event, and publishes nothing then: there is no event to await."""
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        if await client.redis.zcard(queue.waiting) + await client.redis.zcard(queue.leases) == 0:
            return True
        await asyncio.sleep(0.05)
    return False
