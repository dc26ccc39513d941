"""`relayq demo`: the whole pipeline on one machine, on embedded defaults.

A private redis-server, the API simulator (or the real API when ANTHROPIC_API_KEY is set), one
worker process; then a chat job is submitted and streamed to the terminal, and (on the simulator)
a second job shows a 529 overload retried without repeating any output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from rich.console import Console

from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.watch import watch_live
from schemas.jobs import ChatJob, ConnOptions
from schemas.settings import Settings
from workers.runtime import SIMULATOR_API_KEY

WORKER_READY_TIMEOUT_S = 30.0


def run_demo(*, prompt: str) -> int:
    console = Console()
    use_real_api = bool(os.environ.get("ANTHROPIC_API_KEY")) and not os.environ.get(
        "ANTHROPIC_BASE_URL"
    )
    with EmbeddedRedis(appendonly=False) as redis, _api(use_real_api) as (base_url, api_key):
        console.print(f"[dim]embedded Redis at {redis.url}[/]")
        console.print(
            "[dim]Anthropic API: "
            + (
                "the real one (ANTHROPIC_API_KEY is set)"
                if use_real_api
                else f"simulator at {base_url}"
            )
            + "[/]"
        )
        env = {**os.environ, "RELAYQ_REDIS_URL": redis.url, "ANTHROPIC_API_KEY": api_key}
        if base_url:
            env["ANTHROPIC_BASE_URL"] = base_url
        with _worker(env, console):
            return asyncio.run(
                _jobs(redis.url, prompt, simulated=not use_real_api, console=console)
            )


async def _jobs(redis_url: str, prompt: str, *, simulated: bool, console: Console) -> int:
    async with Client(redis_url, settings=Settings(redis_url=redis_url)) as client:
        job = ChatJob(prompt=prompt, system="You are concise.", max_tokens=300)
        await client.submit(job)
        console.rule(f"chat job {job.id}")
        code = await watch_live(client, job.id, "0", console)
        if simulated and code == 0:
            flaky = ChatJob(
                prompt="[[sim:fail=529]] Same question, but the API is overloaded at first.",
                conn_options=ConnOptions(retry_interval=0.2),
            )
            await client.submit(flaky)
            console.rule(f"chat job {flaky.id}: a 529 first, then a retry")
            code = await watch_live(client, flaky.id, "0", console)
        return code


@contextlib.contextmanager
def _api(real: bool) -> Iterator[tuple[str | None, str]]:
    if real:
        yield None, os.environ["ANTHROPIC_API_KEY"]
        return
    from relayq.simulator import run_in_thread

    with run_in_thread(tokens_per_second=40.0) as sim:
        yield sim.base_url, SIMULATOR_API_KEY


@contextlib.contextmanager
def _worker(env: dict[str, str], console: Console) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq.cli", "worker", "--queues", "chat"],
        env={**env, "RELAYQ_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        if "ready" not in ready:
            raise RuntimeError("the worker did not start; see the messages above")
        console.print(f"[dim]{ready.strip()} (pid {process.pid})[/]")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
