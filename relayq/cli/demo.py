"""`relayq demo`: the whole pipeline on one machine, on embedded defaults.

A private redis-server, the API simulator (or the real API when ANTHROPIC_API_KEY is set), one
worker process for both queues; then a chat job is submitted and streamed to the terminal, (on
the simulator) a second job shows a 529 overload retried without repeating any output, and a
computer-use job signs up on a built-in demo page in a real Chromium, step by step, and leaves a
self-contained HTML replay behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from relayq.cli.terminal import DIM, style, styled
from relayq.cli.watch import watch
from relayq.client import Client
from relayq.embedded_redis import EmbeddedRedis
from relayq.schemas.jobs import ChatJob, ComputerUseJob, ConnOptions
from relayq.schemas.settings import Settings
from relayq.static_server import serve_directory
from relayq.workers.runtime import SIMULATOR_API_KEY

REPLAY_PATH = Path("relayq-demo-replay.html")


def browser_installed() -> bool:
    """Computer use needs the `browser` extra (Playwright); the chat part runs without it."""
    return importlib.util.find_spec("playwright") is not None


def say(text: str, *codes: str) -> None:
    print(style(text, *codes, enabled=styled(sys.stdout)), flush=True)


def rule(title: str) -> None:
    say(f"── {title} " + "─" * max(0, 76 - len(title)), DIM)


def run_demo(*, prompt: str) -> int:
    use_real_api = bool(os.environ.get("ANTHROPIC_API_KEY")) and not os.environ.get(
        "ANTHROPIC_BASE_URL"
    )
    with (
        EmbeddedRedis(appendonly=False) as redis,
        _api(use_real_api) as (base_url, api_key),
        serve_directory() as site,
    ):
        say(f"embedded Redis at {redis.url}", DIM)
        api = (
            "the real one (ANTHROPIC_API_KEY is set)"
            if use_real_api
            else f"simulator at {base_url}"
        )
        say(f"Anthropic API: {api}", DIM)
        env = {**os.environ, "RELAYQ_REDIS_URL": redis.url, "ANTHROPIC_API_KEY": api_key}
        if base_url:
            env["ANTHROPIC_BASE_URL"] = base_url
        queues = "chat,computer" if browser_installed() else "chat"
        with _worker(env, queues):
            return asyncio.run(_jobs(redis.url, prompt, site, simulated=not use_real_api))


async def _jobs(redis_url: str, prompt: str, site: str, *, simulated: bool) -> int:
    async with Client(redis_url, settings=Settings(redis_url=redis_url)) as client:
        job = ChatJob(prompt=prompt, system="You are concise.", max_tokens=300)
        await client.submit(job)
        rule(f"chat job {job.id}")
        code = await watch(client, job.id)
        if simulated and code == 0:
            flaky = ChatJob(
                prompt="[[sim:fail=529]] Same question, but the API is overloaded at first.",
                conn_options=ConnOptions(retry_interval=0.2),
            )
            await client.submit(flaky)
            rule(f"chat job {flaky.id}: a 529 first, then a retry")
            code = await watch(client, flaky.id)
        if code != 0:
            return code
        if not browser_installed():
            say("computer use skipped: Playwright is not installed (pip install 'relayq[browser]')")
            return 0
        from relayq.replay.files import write_replay

        computer = ComputerUseJob(
            task=("[[sim:plan=signup]] " if simulated else "")
            + "Create an account for Ada Lovelace (ada@example.com) and accept the terms.",
            start_url=f"{site}/demo_signup.html",
            allow_private_network=True,  # the demo page is served from this machine
            max_steps=15,
        )
        await client.submit(computer)
        rule(f"computer-use job {computer.id}: Claude drives a real Chromium")
        code = await watch(client, computer.id)
        if importlib.util.find_spec("jinja2") is None:
            say("no HTML replay: Jinja2 is not installed (pip install 'relayq[replay]')")
            return code
        replay = await write_replay(client, computer.id, REPLAY_PATH)
        say(f"replay of the computer-use job: {replay.resolve()}")
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
def _worker(env: dict[str, str], queues: str) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq", "worker", "--queues", queues],
        env={**env, "RELAYQ_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        if "ready" not in ready:
            raise RuntimeError("the worker did not start; see the messages above")
        say(f"{ready.strip()} (pid {process.pid})", DIM)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
