"""`relayq watch`: follow a job's stream in a terminal, as JSON lines or as a live view."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text as RichText

from relayq.client import Client
from relayq.schemas.events import (
    Action,
    Done,
    Error,
    Event,
    Retry,
    Screenshot,
    Started,
    Text,
    ToolCall,
)
from relayq.transcript import Transcript


async def watch_json(
    client: Client,
    job_id: str,
    after: str,
    out: TextIO = sys.stdout,
    *,
    save_dir: Path | None = None,
) -> int:
    transcript = Transcript()
    async for entry in client.events(job_id, after=after):
        transcript.feed(entry.event)
        await _maybe_save(client, entry.event, save_dir)
        line = {"id": entry.id, **json.loads(entry.event.model_dump_json())}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
        out.flush()
    return exit_code(transcript)


async def watch_live(
    client: Client, job_id: str, after: str, console: Console, *, save_dir: Path | None = None
) -> int:
    """A live view of the final attempt's output; voided attempts disappear when retried."""
    transcript = Transcript()
    if not console.is_terminal:
        return await _watch_plain(client, job_id, after, console.file, save_dir)
    with Live(_render(job_id, transcript, None), console=console, refresh_per_second=20) as live:
        async for entry in client.events(job_id, after=after):
            transcript.feed(entry.event)
            await _maybe_save(client, entry.event, save_dir)
            live.update(_render(job_id, transcript, entry.event))
    return exit_code(transcript)


async def _watch_plain(
    client: Client, job_id: str, after: str, out: IO[str], save_dir: Path | None
) -> int:
    transcript = Transcript()
    async for entry in client.events(job_id, after=after):
        event = entry.event
        transcript.feed(event)
        await _maybe_save(client, event, save_dir)
        out.write(_plain_line(event))
        out.flush()
    return exit_code(transcript)


async def _maybe_save(client: Client, event: Event, save_dir: Path | None) -> None:
    if save_dir is not None and isinstance(event, Screenshot):
        from relayq.replay import save_screenshot_event

        try:
            await save_screenshot_event(client, event, save_dir)
        except LookupError:
            pass  # expired: nothing to save


def _plain_line(event: Event) -> str:
    match event:
        case Text():
            return event.text
        case Started():
            return f"[attempt {event.attempt} started on {event.worker}]\n"
        case ToolCall():
            return f"\n[tool call {event.name}({event.arguments})]\n"
        case Action():
            return f"\n[step {event.step}] {describe_action(event)}\n"
        case Screenshot():
            return (
                f"[screenshot {event.blob}: {event.width}x{event.height} {event.media_type}, "
                f"{event.size // 1024} KB{_settled(event)}]\n"
            )
        case Retry():
            error = f": {event.error.type}: {event.error.message}" if event.error else ""
            return (
                f"\n[attempt {event.attempt} voided ({event.reason}{error}); "
                f"retrying in {event.delay:.1f}s]\n"
            )
        case Done():
            u = event.usage
            return (
                f"\n[done: {event.stop_reason}; tokens in {u.prompt_tokens} "
                f"(cache write {u.cache_creation_tokens}, read {u.cache_read_tokens}), "
                f"out {u.completion_tokens}]\n"
            )
        case Error():
            return f"\n[error: {event.error.type}: {event.error.message}]\n"
        case _ if event.type == "cancelled":
            return "\n[cancelled]\n"
    return ""


def describe_action(action: Action) -> str:
    """`left_click (640, 220)`, `type "Ada"`: an action as a person reads it."""
    details = dict(action.input)
    details.pop("action", None)
    parts = []
    for key in ("coordinate", "start_coordinate", "region"):
        if isinstance(value := details.pop(key, None), list):
            parts.append("(" + ", ".join(str(v) for v in value) + ")")
    if "text" in details:
        parts.append(repr(details.pop("text")))
    parts += [f"{k}={v}" for k, v in details.items()]
    return " ".join([action.action, *parts])


def _settled(event: Screenshot) -> str:
    return f", settled in {event.settle_ms:.0f} ms" if event.settle_ms is not None else ""


def _render(job_id: str, t: Transcript, last: Event | None) -> Group:
    parts: list[RichText | Spinner] = []
    if t.terminal is None:
        state = "queued" if t.attempt == 0 else f"running, attempt {t.attempt}"
        parts.append(Spinner("dots", text=RichText(f" {job_id}: {state}", style="dim")))
    else:
        parts.append(RichText(f"{job_id}: {t.outcome}", style="bold"))
    if t.retries:
        r = t.retries[-1]
        cause = f" after {r.error.type}" if r.error else ""
        parts.append(
            RichText(f"retried {len(t.retries)}x (last: {r.reason}{cause})", style="yellow")
        )
    if t.actions:
        current = t.actions[-1]
        parts.append(
            RichText(f"step {current.step}: {describe_action(current)}", style="bold magenta")
        )
    if t.thinking:
        parts.append(RichText(t.thinking, style="italic dim"))
    parts.append(RichText(t.text))
    for call in t.tool_calls:
        parts.append(
            RichText.from_markup(f"[cyan]→ {escape(call.name)}[/]({escape(call.arguments)})")
        )
    if t.terminal is not None:
        parts.append(RichText(_plain_line(t.terminal).strip(), style="dim"))
    return Group(*parts)


def exit_code(t: Transcript) -> int:
    return 0 if t.outcome == "done" else 1
