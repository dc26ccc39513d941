"""The operator's commands: worker, status, jobs, gateway, simulator, demo, replay, redis-stop.
Each imports what it runs when it runs (the core install has none of it) and says which extra
to install when that is missing."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.util
import os
import sys
from types import ModuleType

from relayq.cli import fleet_view
from relayq.cli.connection import check_reachable, open_client, redis_url
from relayq.cli.errors import UsageError
from relayq.embedded_redis import stop_shared_redis
from relayq.pricing import price_table
from relayq.schemas.constants import QUEUES
from relayq.schemas.settings import Settings
from relayq.workers.supervisor import cores

NEEDS_A_BROWSER = "computer"


def require(module: str, extra: str, command: str) -> ModuleType:
    """Imports `module`, or explains which extra the command needs."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = e.name or str(e)
        raise UsageError(
            f"relayq {command} needs the {extra} extra ({missing} is not installed): "
            f"pip install 'relayq[{extra}]'"
        ) from e


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _supervise(
    args: argparse.Namespace, queues: list[str], processes: int, url: str, settings: Settings
) -> int:
    """`relayq worker --processes N` for N > 1: N single-process workers under a supervisor."""
    from relayq.workers.supervisor import supervise  # the standard library only

    def command_for(slot: int) -> list[str]:
        command = [sys.executable, "-m", "relayq", "worker", "--queues", ",".join(queues)]
        command += ["--processes", "1", "--poll-delay", str(args.poll_delay)]
        if args.max_jobs is not None:
            command += ["--max-jobs", str(args.max_jobs)]
        if args.burst:
            command.append("--burst")
        if args.metrics_port is not None:
            command += ["--metrics-port", str(args.metrics_port + slot)]
        return command

    def ready(pids: list[int]) -> None:
        print(
            f"relayq worker ready: queues {','.join(queues)}; {len(pids)} processes "
            f"(pids {' '.join(map(str, pids))})",
            flush=True,
        )

    return asyncio.run(
        supervise(
            command_for,
            processes,
            stop_grace_s=settings.shutdown_grace_s,
            burst=args.burst,
            env={**os.environ, "RELAYQ_REDIS_URL": url},
            on_ready=ready,
        )
    )


def worker(args: argparse.Namespace) -> int:
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise UsageError(
            f"unknown queue {', '.join(repr(q) for q in unknown) or '(none given)'}: "
            f"--queues takes a comma-separated list of {', '.join(QUEUES)} "
            f"(e.g. --queues {','.join(QUEUES)})"
        )
    settings = Settings()
    if settings.anthropic_api_key is None and settings.anthropic_base_url is None:
        raise UsageError(
            "no Anthropic API configured: set ANTHROPIC_API_KEY for the real API, or "
            "ANTHROPIC_BASE_URL to a simulator (`relayq simulator --port 8765`, then "
            "ANTHROPIC_BASE_URL=http://127.0.0.1:8765)"
        )
    processes = args.processes or settings.worker_processes or cores()
    for module in ("anthropic", "livekit"):  # what the worker extra brings
        if not _installed(module):
            require(module, "worker", "worker")
    if processes > 1:
        if NEEDS_A_BROWSER in queues and not _installed("playwright"):
            require("playwright.async_api", "browser", "worker --queues computer")
        url = redis_url(settings)
        asyncio.run(check_reachable(url))
        return _supervise(args, queues, processes, url, settings)
    running = require("relayq.workers.worker", "worker", "worker")
    if NEEDS_A_BROWSER in queues:
        require("playwright.async_api", "browser", "worker --queues computer")
    url = redis_url(settings)
    asyncio.run(check_reachable(url))
    tracing = require("relayq.tracing", "worker", "worker")
    tracing.configure_from_env("relayq-worker")
    if args.metrics_port is not None:
        require("relayq.workers.metrics", "worker", "worker --metrics-port").serve(
            args.metrics_port
        )
    # What is loaded by now (the SDK, LiveKit, pydantic's schemas) lives as long as the process:
    # kept out of the collector's full passes, which otherwise stall every stream for 0.3-0.5 s
    gc.freeze()
    asyncio.run(
        running.run_workers(
            queues,
            settings,
            redis_url=url,
            burst=args.burst,
            max_jobs=args.max_jobs,
            poll_delay=args.poll_delay,
            on_ready=lambda: print(f"relayq worker ready: queues {','.join(queues)}", flush=True),
        )
    )
    return 0


def status(args: argparse.Namespace) -> int:
    async def run() -> int:
        settings = Settings()
        async with open_client(settings) as client:
            data = await fleet_view.status(client, price_table(settings.prices))
        if args.json:
            fleet_view.print_json(data)
        else:
            fleet_view.print_status(data)
        return 0

    return asyncio.run(run())


def jobs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit takes a positive number of jobs, e.g. --limit 20")

    async def run() -> int:
        settings = Settings()
        async with open_client(settings) as client:
            listed = await fleet_view.jobs(client, args.limit, price_table(settings.prices))
        if args.json:
            fleet_view.print_json(listed)
        else:
            fleet_view.print_jobs(listed)
        return 0

    return asyncio.run(run())


def replay(args: argparse.Namespace) -> int:
    files = require("relayq.replay.files", "replay", "replay")
    if args.animation is not None:
        require("PIL", "replay", "replay --animation")
    require("jinja2", "replay", "replay")

    async def run() -> int:
        async with open_client() as client:
            path = await files.write_replay(
                client, args.job_id, args.output, animation=args.animation
            )
        print(path)
        return 0

    return asyncio.run(run())


def simulator(args: argparse.Namespace) -> int:
    sim = require("relayq.simulator", "worker", "simulator")
    argv = ["--host", args.host, "--port", str(args.port)]
    argv += ["--tokens-per-second", str(args.tokens_per_second)]
    argv += ["--fault-rate", str(args.fault_rate), "--seed", str(args.seed)]
    if args.api_key:
        argv += ["--api-key", args.api_key]
    if args.lenient:
        argv.append("--lenient")
    sim.main(argv)
    return 0


def gateway(args: argparse.Namespace) -> int:
    serving = require("relayq.gateway", "gateway", "gateway")
    tracing = require("relayq.tracing", "gateway", "gateway")
    tracing.configure_from_env("relayq-gateway")
    settings = Settings()
    if not settings.redis_url:
        settings = settings.model_copy(update={"redis_url": redis_url(settings)})
    asyncio.run(check_reachable(str(settings.redis_url)))
    try:
        serving.serve(args.host, args.port, settings)
    except ValueError as e:  # no or malformed RELAYQ_API_KEYS; the message names no key
        raise UsageError(f"gateway: {e}") from e
    return 0


def demo(args: argparse.Namespace) -> int:
    require("relayq.workers.worker", "worker", "demo")
    from relayq.cli.demo import run_demo

    return run_demo(prompt=args.prompt)


def redis_stop(args: argparse.Namespace) -> int:
    stopped = stop_shared_redis(Settings().data_dir)
    print("embedded Redis stopped" if stopped else "no embedded Redis was running", file=sys.stdout)
    return 0
