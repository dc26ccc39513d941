"""The command tree: every command and flag, its help with default and environment variable,
and examples. A usage error is one line (`relayq submit chat: error: ...; see --help`), exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from relayq.cli import operator, producer
from relayq.schemas.jobs import DEFAULT_MODEL, ChatJob, ComputerUseJob
from relayq.schemas.settings import Settings
from relayq.workers.supervisor import cores

ENVIRONMENT = """\
environment:
  RELAYQ_REDIS_URL     the Redis every command uses (unset: an embedded redis-server
                       under RELAYQ_DATA_DIR, default .relayq; `relayq redis-stop` stops it)
  ANTHROPIC_API_KEY    the real API's key (workers)
  ANTHROPIC_BASE_URL   another API endpoint, e.g. the simulator http://127.0.0.1:8765
  NO_COLOR             plain output without ANSI styles
  more RELAYQ_* settings: README.md, Configuration"""

TOUR = """\
examples:
  relayq simulator --port 8765 &
  export ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=sk-sim
  relayq worker --queues chat,computer &
  relayq submit chat --prompt "Write a haiku about queues"
  relayq watch job_...                 # live; --json for one event per line
  relayq status                        # queues, workers alive, recent failures
  relayq demo                          # all of it at once, with nothing else running"""


Command = Callable[[str, str, str], argparse.ArgumentParser]
"""Adds a command: (name, one-line summary, examples)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def package_version() -> str:
    try:
        return version("relayq")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    settings = Settings()
    parser = Parser(
        prog="relayq",
        description="Claude chat and computer use as background jobs on Redis.",
        epilog=f"{TOUR}\n\n{ENVIRONMENT}",
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"relayq {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, examples: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"examples:\n{examples}\n\n{ENVIRONMENT}",
            formatter_class=Formatter,
        )
        return sub

    _submit(command)
    _watch(command)
    cancel = command(
        "cancel",
        "cancel a queued or running job (a no-op once it has ended)",
        "  relayq cancel job_5b1e...",
    )
    cancel.add_argument("job_id", help="the id `relayq submit` printed")
    cancel.set_defaults(handler=producer.cancel)

    _worker(command, settings)
    _fleet(command)
    _servers(command)

    replay = command(
        "replay",
        "write a self-contained HTML replay of a job (needs the replay extra)",
        "  relayq replay job_9c0d... -o run.html\n"
        "  relayq replay job_9c0d... -o run.html --animation run.gif",
    )
    replay.add_argument("job_id", help="the job to replay (finished or running)")
    replay.add_argument("-o", "--output", type=Path, required=True, help="the .html file to write")
    replay.add_argument(
        "--animation", type=Path, help="also write an animated .gif or .webp (default: none)"
    )
    replay.set_defaults(handler=operator.replay)

    demo = command(
        "demo",
        "run everything locally (embedded Redis, simulator, worker) and stream three jobs",
        "  relayq demo\n  ANTHROPIC_API_KEY=sk-ant-... relayq demo     # against the real API",
    )
    demo.add_argument(
        "--prompt",
        default="Explain in three sentences what relayq does.",
        help="the chat job's prompt (default: %(default)r)",
    )
    demo.set_defaults(handler=operator.demo)

    stop = command(
        "redis-stop",
        "stop the embedded Redis the CLI started (when RELAYQ_REDIS_URL is unset)",
        "  relayq redis-stop",
    )
    stop.set_defaults(handler=operator.redis_stop)
    return parser


def _submit(command: Command) -> None:
    submit = command(
        "submit",
        "enqueue a job and print its id",
        '  relayq submit chat --prompt "Hello" --system "Be brief."\n'
        "  relayq submit computer --task 'Sign up as Ada' --url https://example.com/signup",
    )
    kinds = submit.add_subparsers(dest="kind", required=True, metavar="KIND")
    chat = kinds.add_parser(
        "chat",
        help="a chat generation job",
        description="Enqueue a chat generation job and print its id.",
        epilog="examples:\n"
        '  relayq submit chat --prompt "Write a haiku about queues" --max-tokens 200\n'
        "  relayq submit chat --job-file job.json       # a ChatJob as JSON (CONTRACT.md)\n"
        '  echo \'{"prompt": "Hi"}\' | relayq submit chat --job-file -\n\n' + ENVIRONMENT,
        formatter_class=Formatter,
    )
    source = chat.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the user message")
    source.add_argument(
        "--job-file", type=Path, metavar="FILE", help="a ChatJob as JSON ('-' reads stdin)"
    )
    chat.add_argument("--system", help="system prompt, with --prompt (default: none)")
    _model_and_id(chat)
    chat.add_argument(
        "--max-tokens",
        type=int,
        help=f"the reply's token budget (default: {ChatJob.model_fields['max_tokens'].default})",
    )
    chat.set_defaults(handler=producer.submit_chat)

    computer = kinds.add_parser(
        "computer",
        help="a computer-use job: Claude drives a browser",
        description="Enqueue a computer-use job (Claude drives an isolated Chromium) and "
        "print its id.",
        epilog="examples:\n"
        "  relayq submit computer --task 'Sign up as Ada' --url https://example.com/signup \\\n"
        "      --allowed-domain example.com --max-steps 20\n"
        "  # offline, against the simulator (which serves the demo page itself):\n"
        "  relayq submit computer --task '[[sim:plan=signup]] Sign up as Ada' \\\n"
        "      --url http://127.0.0.1:8765/demo/signup --allow-private-network\n\n" + ENVIRONMENT,
        formatter_class=Formatter,
    )
    source = computer.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", help="what Claude should do in the browser (with --url)")
    source.add_argument(
        "--job-file", type=Path, metavar="FILE", help="a ComputerUseJob as JSON ('-' reads stdin)"
    )
    computer.add_argument("--url", help="the start URL (required with --task)")
    computer.add_argument(
        "--allowed-domain",
        action="append",
        dest="domains",
        metavar="DOMAIN",
        help="a domain the browser may reach, with its subdomains; repeatable "
        "(default: any public host)",
    )
    computer.add_argument(
        "--allow-private-network",
        action="store_true",
        help="let the browser reach loopback and private addresses (default: blocked)",
    )
    computer.add_argument(
        "--max-steps",
        type=int,
        help="browser actions the model may take "
        f"(default: {ComputerUseJob.model_fields['max_steps'].default})",
    )
    computer.add_argument(
        "--display",
        metavar="WxH",
        help="browser viewport (default: "
        f"{ComputerUseJob.model_fields['display_width'].default}x"
        f"{ComputerUseJob.model_fields['display_height'].default})",
    )
    _model_and_id(computer)
    computer.set_defaults(handler=producer.submit_computer)


def _model_and_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help=f"the Claude model (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "--id",
        help="the job id (default: a new one); submitting an existing id changes nothing",
    )


def _watch(command: Command) -> None:
    watch = command(
        "watch",
        "follow a job's events until it ends (exit 0 when done, 1 otherwise)",
        "  relayq watch job_5b1e...\n"
        "  relayq watch job_5b1e... --json | jq .type\n"
        "  relayq watch job_9c0d... --save-screenshots shots/",
    )
    watch.add_argument("job_id", help="the id `relayq submit` printed")
    watch.add_argument(
        "--after",
        default="0",
        metavar="STREAM_ID",
        help="resume after this stream id (default: 0, the start)",
    )
    watch.add_argument(
        "--json",
        action="store_true",
        help="one JSON event per line, with its stream id (default: a live view in a "
        "terminal, plain lines otherwise)",
    )
    watch.add_argument(
        "--save-screenshots",
        type=Path,
        metavar="DIR",
        help="write each screenshot as DIR/step-NNN.png (default: not saved)",
    )
    watch.set_defaults(handler=producer.watch_command)


def _worker(command: Command, settings: Settings) -> None:
    worker = command(
        "worker",
        "run jobs from the queues (needs the worker extra; computer: the browser extra)",
        "  relayq worker --queues chat\n"
        "  relayq worker --queues chat,computer --max-jobs 50 --metrics-port 9100",
    )
    worker.add_argument(
        "--queues",
        default="chat",
        help="comma-separated queues to serve: chat, computer (default: %(default)s)",
    )
    worker.add_argument(
        "--max-jobs",
        type=int,
        help=f"concurrent jobs per queue (default: RELAYQ_MAX_JOBS, now {settings.max_jobs}; "
        f"computer: RELAYQ_COMPUTER_MAX_JOBS, now {settings.computer_max_jobs})",
    )
    worker.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="worker processes, kept running by a supervisor that restarts any that dies "
        "(default: RELAYQ_WORKER_PROCESSES, or one per core: "
        f"{settings.worker_processes or cores()} here); with --metrics-port P, "
        "process i serves P+i",
    )
    worker.add_argument(
        "--burst", action="store_true", help="stop once the queues are empty (default: run on)"
    )
    worker.add_argument(
        "--poll-delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="fallback queue poll; enqueues wake workers at once (default: %(default)s)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default: off)",
    )
    worker.set_defaults(handler=operator.worker)


def _fleet(command: Command) -> None:
    status = command(
        "status",
        "queues (waiting, running, delayed), workers alive, warnings, recent failures",
        "  relayq status\n  relayq status --json | jq .queues.chat.waiting",
    )
    status.add_argument("--json", action="store_true", help="one JSON document (default: tables)")
    status.set_defaults(handler=operator.status)

    jobs = command(
        "jobs",
        "recent jobs, newest first: wait, duration, tokens, cost, error",
        "  relayq jobs --limit 50\n  relayq jobs --json | jq '.[] | select(.status==\"error\")'",
    )
    jobs.add_argument("--limit", type=int, default=20, help="how many jobs (default: %(default)s)")
    jobs.add_argument("--json", action="store_true", help="a JSON array (default: a table)")
    jobs.set_defaults(handler=operator.jobs)


def _servers(command: Command) -> None:
    simulator = command(
        "simulator",
        "run the Anthropic API simulator (needs the worker extra)",
        "  relayq simulator --port 8765\n"
        "  relayq simulator --fault-rate 0.1 --tokens-per-second 50",
    )
    simulator.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    simulator.add_argument(
        "--port", type=int, default=8765, help="port to listen on (default: %(default)s)"
    )
    simulator.add_argument(
        "--api-key", help="accept only this x-api-key (default: any key is accepted)"
    )
    simulator.add_argument(
        "--tokens-per-second",
        type=float,
        default=0.0,
        help="stream speed; 0 streams as fast as possible (default: %(default)s)",
    )
    simulator.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of requests that fail with a random API error (default: %(default)s)",
    )
    simulator.add_argument(
        "--seed", type=int, default=0, help="seed of the fault draws (default: %(default)s)"
    )
    simulator.add_argument(
        "--lenient",
        action="store_true",
        help="accept requests the real API rejects (default: strict, answering them with the "
        "API's 400 like the real API)",
    )
    simulator.set_defaults(handler=operator.simulator)

    gateway = command(
        "gateway",
        "the HTTP/SSE gateway and the dashboard (needs the gateway extra and RELAYQ_API_KEYS)",
        "  RELAYQ_API_KEYS=me:secret-key relayq gateway --port 8000   # then open "
        "http://127.0.0.1:8000/",
    )
    gateway.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    gateway.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    gateway.set_defaults(handler=operator.gateway)


def parse(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(sys.argv[1:] if argv is None else argv)
