"""The producer's commands: `relayq submit chat|computer`, `relayq watch`, `relayq cancel`. They
need redis + pydantic only (the core install)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from relayq.cli.connection import open_client
from relayq.cli.errors import UsageError
from relayq.cli.watch import watch
from relayq.cli.watch_state import QueuePlace
from relayq.cli.watch_view import no_worker_line
from relayq.client import Client
from relayq.fleet import live_workers
from relayq.schemas.jobs import ChatJob, ComputerUseJob, _JobBase
from relayq.schemas.settings import Settings
from relayq.schemas.validation import error_text

_KIND_QUEUE = {"chat": "chat", "computer_use": "computer"}


def submit_chat(args: argparse.Namespace) -> int:
    if args.job_file is not None:
        fields = read_job_file(args.job_file)
        fields.setdefault("kind", "chat")
        if fields["kind"] != "chat":
            raise UsageError(
                f"job file {args.job_file} holds a {fields['kind']!r} job; "
                "use `relayq submit computer --job-file` for computer-use jobs"
            )
    else:
        fields = {"prompt": args.prompt, "system": args.system}
    fields.update(_given(model=args.model, max_tokens=args.max_tokens, id=args.id))
    return asyncio.run(_submit(_validated(ChatJob, fields, args.job_file)))


def submit_computer(args: argparse.Namespace) -> int:
    if args.job_file is not None:
        fields = read_job_file(args.job_file)
        fields.setdefault("kind", "computer_use")
    else:
        if not args.url:
            raise UsageError("--task needs --url, the page to start on (e.g. --url https://...)")
        fields = {"kind": "computer_use", "task": args.task, "start_url": args.url}
    if args.display:
        width, _, height = args.display.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise UsageError("--display takes WIDTHxHEIGHT, e.g. --display 1280x720")
        fields.update(display_width=int(width), display_height=int(height))
    fields.update(
        _given(
            allow_private_network=args.allow_private_network or None,
            allowed_domains=args.domains,
            max_steps=args.max_steps,
            model=args.model,
            id=args.id,
        )
    )
    return asyncio.run(_submit(_validated(ComputerUseJob, fields, args.job_file)))


def watch_command(args: argparse.Namespace) -> int:
    save = args.save_screenshots
    if save is not None:
        try:
            save.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot write screenshots to {save}: {e.strerror or e}") from e

    async def run() -> int:
        settings = Settings()
        async with open_client(settings) as client:
            return await watch(
                client,
                args.job_id,
                after=args.after,
                json_lines=args.json,
                save_dir=save,
                settings=settings,
            )

    return asyncio.run(run())


def cancel(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with open_client() as client:
            outcome = await client.cancel(args.job_id)
        print(f"{args.job_id}: {outcome}")
        return 0

    return asyncio.run(run())


def read_job_file(path: Path) -> dict[str, Any]:
    """A job as a JSON object, from a file or ('-') stdin."""
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise UsageError(f"job file {path} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read job file {path}: {e}") from e
    try:
        fields = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"invalid job file {path}: not JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from e
    except RecursionError as e:
        raise UsageError(f"invalid job file {path}: JSON nested too deeply") from e
    if not isinstance(fields, dict):
        raise UsageError(f"invalid job file {path}: a job is a JSON object ({{...}})")
    return fields


async def warn_if_unserved(client: Client, job: _JobBase) -> None:
    queue = _KIND_QUEUE[str(getattr(job, "kind", "chat"))]
    if not any(w.serves(queue) for w in await live_workers(client.redis)):
        place = QueuePlace(queue=queue, position=None, workers_serving=0)
        print(f"relayq: {no_worker_line(place)}", file=sys.stderr)


def _given(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


def _validated(model: type[_JobBase], fields: dict[str, Any], path: Path | None) -> _JobBase:
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        where = f"invalid job file {path}" if path is not None else "invalid job"
        raise UsageError(f"{where}: {error_text(e)}") from e


async def _submit(job: _JobBase) -> int:
    async with open_client() as client:
        submitted = await client.submit(job)
        await warn_if_unserved(client, job)
    if not submitted.created:
        print(f"relayq: job {submitted.id} already exists ({submitted.status})", file=sys.stderr)
    print(submitted.id)
    return 0
