"""What operators see: Prometheus metrics, JSON logs with job context, `relayq status`/`jobs`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis, free_port
from relayq.schemas.jobs import ChatJob
from relayq.schemas.settings import Settings
from relayq.simulator import Simulator
from tests.conftest import ROOT, start_worker, worker_env

SECRET = "sk-ant-relayq-observability-secret-0123456789"


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def run_one_job(url: str, prompt: str) -> str:
    async with Client(url, settings=Settings(redis_url=url)) as client:
        job = ChatJob(prompt=prompt)
        await client.submit(job)
        return [e async for e in client.events(job.id)][-1].event.type


async def test_worker_metrics_count_jobs_tokens_and_ttft(simulator: Simulator) -> None:
    port = free_port()
    with EmbeddedRedis(appendonly=False) as redis:
        worker = start_worker(
            worker_env(redis.url, simulator), "--queues", "chat", "--metrics-port", str(port)
        )
        try:
            assert await run_one_job(redis.url, "count me") == "done"
            text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
        finally:
            worker.stop()

    assert 'relayq_jobs_finished_total{outcome="done",queue="chat"} 1.0' in text
    assert 'relayq_job_attempts_started_total{queue="chat"} 1.0' in text
    assert 'relayq_tokens_total{kind="output",model="claude-sonnet-4-6"}' in text
    assert "relayq_time_to_first_token_seconds_count" in text
    assert 'relayq_queue_depth{queue="chat"}' in text


async def test_logs_are_json_lines_with_job_context_and_never_show_the_api_key(
    simulator: Simulator,
) -> None:
    with EmbeddedRedis(appendonly=False) as redis:
        env = worker_env(redis.url, simulator, ANTHROPIC_API_KEY=SECRET, RELAYQ_LOG_LEVEL="DEBUG")
        process = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "relayq", "worker", "--queues", "chat"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and "ready" in process.stdout.readline()
        try:
            assert await run_one_job(redis.url, f"[[sim:fail=400]] echo {SECRET[:6]}") == "error"
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=20)

    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    with_job = [line for line in lines if "job_id" in line]
    assert with_job and all({"attempt", "queue"} <= set(line) for line in with_job)
    assert SECRET not in stderr


async def test_status_and_jobs_commands_show_workers_and_recent_jobs(
    redis_url: str, simulator: Simulator, client: Client
) -> None:
    job = ChatJob(prompt="list me")
    await client.submit(job)
    [_ async for _ in client.events(job.id)]
    env = worker_env(redis_url, simulator)

    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "relayq", "status", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    jobs = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "relayq", "jobs", "--json", "--limit", "50"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    described = json.loads(status.stdout)
    assert any("chat" in ",".join(w["queues"]) for w in described["workers"])
    assert set(described["queues"]) == {"chat", "computer"}
    listed = json.loads(jobs.stdout)
    assert any(j["id"] == job.id and j["status"] == "done" for j in listed)
