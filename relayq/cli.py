"""The `relayq` command line: worker, submit, watch, cancel, simulator, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from rich.console import Console

from relayq.client import Client
from relayq.embedded_redis import shared_redis_url, stop_shared_redis
from relayq.errors import JobNotFound
from relayq.schemas.jobs import ChatJob, _JobBase, parse_job
from relayq.schemas.settings import Settings
from relayq.watch import watch_json, watch_live
from relayq.workers.logs import configure_logging


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    configure_logging(Settings().log_level)
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relayq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run jobs from the queues")
    worker.add_argument("--queues", default="chat", help="comma-separated: chat,computer")
    worker.add_argument("--max-jobs", type=int, default=None, help="concurrent jobs")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    worker.add_argument("--poll-delay", type=float, default=1.0, help="fallback poll, seconds")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    worker.set_defaults(handler=_worker)

    submit = commands.add_parser("submit", help="enqueue a job and print its id")
    kinds = submit.add_subparsers(dest="kind", required=True)
    chat = kinds.add_parser("chat", help="a chat generation job")
    source = chat.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the user message")
    source.add_argument("--job-file", type=Path, help="a ChatJob as JSON ('-' for stdin)")
    chat.add_argument("--system", help="system prompt (with --prompt)")
    chat.add_argument("--model")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--id", help="job id (default: generated); resubmitting is a no-op")
    chat.set_defaults(handler=_submit_chat)
    computer = kinds.add_parser("computer", help="a computer-use job in a browser")
    computer_source = computer.add_mutually_exclusive_group(required=True)
    computer_source.add_argument("--task", help="what Claude should do in the browser")
    computer_source.add_argument("--job-file", type=Path, help="a ComputerUseJob as JSON")
    computer.add_argument("--url", help="the start URL (with --task)")
    computer.add_argument("--allow-private-network", action="store_true")
    computer.add_argument("--allowed-domain", action="append", default=None, dest="domains")
    computer.add_argument("--max-steps", type=int)
    computer.add_argument("--display", help="WIDTHxHEIGHT, default 1280x720")
    computer.add_argument("--model")
    computer.add_argument("--id")
    computer.set_defaults(handler=_submit_computer)

    watch = commands.add_parser("watch", help="follow a job's events until it ends")
    watch.add_argument("job_id")
    watch.add_argument("--after", default="0", help="resume after this stream id")
    watch.add_argument("--json", action="store_true", help="one JSON event per line")
    watch.add_argument("--save-screenshots", type=Path, metavar="DIR", help="write screenshots")
    watch.set_defaults(handler=_watch)

    replay = commands.add_parser("replay", help="write a self-contained HTML replay of a job")
    replay.add_argument("job_id")
    replay.add_argument("-o", "--output", type=Path, required=True, help="the .html file")
    replay.add_argument("--animation", type=Path, help="also write an animated .gif or .webp")
    replay.set_defaults(handler=_replay)

    cancel = commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=_cancel)

    simulator = commands.add_parser("simulator", help="run the Anthropic API simulator")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8765)
    simulator.add_argument("--api-key")
    simulator.add_argument("--tokens-per-second", type=float, default=0.0)
    simulator.add_argument("--fault-rate", type=float, default=0.0)
    simulator.add_argument("--seed", type=int, default=0)
    simulator.set_defaults(handler=_simulator)

    gateway = commands.add_parser("gateway", help="the HTTP/SSE gateway and the dashboard")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8000)
    gateway.set_defaults(handler=_gateway)

    demo = commands.add_parser("demo", help="run everything locally and stream one job")
    demo.add_argument("--prompt", default="Explain in three sentences what relayq does.")
    demo.set_defaults(handler=_demo)

    status = commands.add_parser("status", help="queues, workers alive, recent failures")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    jobs = commands.add_parser("jobs", help="recent jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(handler=_jobs)

    redis_stop = commands.add_parser("redis-stop", help="stop the embedded Redis")
    redis_stop.set_defaults(handler=_redis_stop)
    return parser


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    url, started = shared_redis_url(settings.data_dir)
    verb = "started" if started else "using"
    print(
        f"relayq: RELAYQ_REDIS_URL is not set; {verb} the embedded Redis at {url} "
        f"(data in {settings.data_dir.resolve()}, stop it with `relayq redis-stop`)",
        file=sys.stderr,
    )
    return url


def _worker(args: argparse.Namespace) -> int:
    from relayq.tracing import configure_from_env
    from relayq.workers.worker import run_workers

    configure_from_env("relayq-worker")
    settings = Settings()
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    if args.metrics_port is not None:
        from relayq.workers.metrics import serve

        serve(args.metrics_port)
    asyncio.run(
        run_workers(
            queues,
            settings,
            redis_url=redis_url(settings),
            burst=args.burst,
            max_jobs=args.max_jobs,
            poll_delay=args.poll_delay,
            on_ready=lambda: print(f"relayq worker ready: queues {','.join(queues)}", flush=True),
        )
    )
    return 0


def _submit_chat(args: argparse.Namespace) -> int:
    if args.job_file is not None:
        raw = sys.stdin.read() if str(args.job_file) == "-" else args.job_file.read_text()
        try:
            job = parse_job(raw)
        except ValueError as e:
            print(f"relayq: invalid job file: {e}", file=sys.stderr)
            return 2
        overrides = {
            k: v
            for k, v in {"id": args.id, "model": args.model, "max_tokens": args.max_tokens}.items()
            if v is not None
        }
        if overrides:
            job = job.model_validate({**json.loads(job.model_dump_json()), **overrides})
    else:
        fields = {
            "prompt": args.prompt,
            "system": args.system,
            "model": args.model,
            "max_tokens": args.max_tokens,
            "id": args.id,
        }
        try:
            job = ChatJob.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValueError as e:
            print(f"relayq: invalid job: {e}", file=sys.stderr)
            return 2
    return asyncio.run(_submit(job))


async def _submit(job: _JobBase) -> int:
    settings = Settings()
    async with Client(redis_url(settings), settings=settings) as client:
        submitted = await client.submit(job)
    if not submitted.created:
        print(f"relayq: job {submitted.id} already exists ({submitted.status})", file=sys.stderr)
    print(submitted.id)
    return 0


def _watch(args: argparse.Namespace) -> int:
    async def run() -> int:
        settings = Settings()
        async with Client(redis_url(settings), settings=settings) as client:
            try:
                save = args.save_screenshots
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                if args.json:
                    return await watch_json(client, args.job_id, args.after, save_dir=save)
                return await watch_live(client, args.job_id, args.after, Console(), save_dir=save)
            except JobNotFound:
                print(f"relayq: no job {args.job_id}", file=sys.stderr)
                return 2

    return asyncio.run(run())


def _submit_computer(args: argparse.Namespace) -> int:
    if args.job_file is not None:
        raw = sys.stdin.read() if str(args.job_file) == "-" else args.job_file.read_text()
        fields: dict[str, object] = {"kind": "computer_use", **json.loads(raw)}
    else:
        if not args.url:
            print("relayq: --task needs --url", file=sys.stderr)
            return 2
        fields = {"kind": "computer_use", "task": args.task, "start_url": args.url}
    if args.display:
        width, _, height = args.display.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            print("relayq: --display takes WIDTHxHEIGHT, e.g. 1280x720", file=sys.stderr)
            return 2
        fields.update(display_width=int(width), display_height=int(height))
    overrides = {
        "allow_private_network": args.allow_private_network or None,
        "allowed_domains": args.domains,
        "max_steps": args.max_steps,
        "model": args.model,
        "id": args.id,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        job = parse_job(json.dumps(fields))
    except ValueError as e:
        print(f"relayq: invalid job: {e}", file=sys.stderr)
        return 2
    return asyncio.run(_submit(job))


def _replay(args: argparse.Namespace) -> int:
    from relayq.replay import write_replay

    async def run() -> int:
        settings = Settings()
        async with Client(redis_url(settings), settings=settings) as client:
            try:
                path = await write_replay(
                    client, args.job_id, args.output, animation=args.animation
                )
            except JobNotFound:
                print(f"relayq: no job {args.job_id}", file=sys.stderr)
                return 2
            except RuntimeError as e:  # an animation without Pillow installed
                print(f"relayq: {e}", file=sys.stderr)
                return 2
        print(path)
        return 0

    return asyncio.run(run())


def _cancel(args: argparse.Namespace) -> int:
    async def run() -> int:
        settings = Settings()
        async with Client(redis_url(settings), settings=settings) as client:
            outcome = await client.cancel(args.job_id)
        print(f"{args.job_id}: {outcome}")
        return 0

    return asyncio.run(run())


def _simulator(args: argparse.Namespace) -> int:
    from relayq import simulator

    argv = ["--host", args.host, "--port", str(args.port)]
    argv += ["--tokens-per-second", str(args.tokens_per_second)]
    argv += ["--fault-rate", str(args.fault_rate), "--seed", str(args.seed)]
    if args.api_key:
        argv += ["--api-key", args.api_key]
    simulator.main(argv)
    return 0


def _gateway(args: argparse.Namespace) -> int:
    try:
        from relayq.gateway import serve
    except ImportError as e:
        print(
            f"relayq gateway: {e}; install it with: pip install 'relayq[gateway]'", file=sys.stderr
        )
        return 2
    from relayq.tracing import configure_from_env

    configure_from_env("relayq-gateway")
    settings = Settings()
    if not settings.redis_url:
        settings = settings.model_copy(update={"redis_url": redis_url(settings)})
    try:
        serve(args.host, args.port, settings)
    except ValueError as e:  # no or malformed RELAYQ_API_KEYS; the message names no key
        print(f"relayq gateway: {e}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from relayq.demo import run_demo

    return run_demo(prompt=args.prompt)


def _status(args: argparse.Namespace) -> int:
    from relayq.status import fleet_status, render_status

    async def run() -> int:
        settings = Settings()
        async with Client(redis_url(settings), settings=settings) as client:
            status = await fleet_status(client)
        if args.json:
            print(json.dumps(status, default=str, indent=2))
        else:
            render_status(status, Console())
        return 0

    return asyncio.run(run())


def _jobs(args: argparse.Namespace) -> int:
    from relayq.status import render_jobs

    async def run() -> int:
        settings = Settings()
        async with Client(redis_url(settings), settings=settings) as client:
            recent = await client.recent(limit=args.limit)
        if args.json:
            for job in recent:
                print(json.dumps(dataclasses.asdict(job), default=str))
        else:
            render_jobs(recent, Console())
        return 0

    return asyncio.run(run())


def _redis_stop(args: argparse.Namespace) -> int:
    stopped = stop_shared_redis(Settings().data_dir)
    print("embedded Redis stopped" if stopped else "no embedded Redis was running")
    return 0


if __name__ == "__main__":
    main()
