"""Reading a run from Redis: the job hash and the stream (XRANGE, never blocking), folded into
the steps of the final attempt; `Transcript` decides what a `retry` voided."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import JsonValue, ValidationError

from relayq.client import Client
from relayq.errors import JobNotFound
from relayq.replay.model import Run, Shot, Step
from relayq.schemas.constants import EVENT_FIELD, events_key, job_key
from relayq.schemas.events import (
    TERMINAL_TYPES,
    Action,
    Cancelled,
    Done,
    Event,
    Queued,
    Screenshot,
    Started,
    Text,
    Thinking,
    TokenUsage,
    Usage,
    is_terminal,
    parse_event,
)
from relayq.transcript import Transcript

_XRANGE_PAGE = 1000
_FETCH_CONCURRENCY = 8


async def collect_run(client: Client, job_id: str, *, images: bool = True) -> Run:
    """Reads what the job's stream holds now (XRANGE: never blocks) and its job hash.

    A finished job yields all of it; a running one a snapshot with status `running` (or
    `queued`/`retrying`). Screenshot bytes are fetched when `images`; expired ones are None.
    Raises JobNotFound when neither the stream nor the job hash exists.
    """
    redis = client.redis
    fields: dict[bytes, bytes] = await redis.hgetall(job_key(job_id))  # type: ignore[misc]
    events, unreadable = await _read_stream(client, job_id)
    if not fields and not events:
        raise JobNotFound(job_id)
    hash_ = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    builder = _Builder()
    for event in events:
        builder.feed(event)
    shots = await _fetch_shots(client, job_id, builder.screenshots(), images=images)
    return builder.run(job_id, hash_, shots, unreadable)


async def _read_stream(client: Client, job_id: str) -> tuple[list[Event], int]:
    key = events_key(job_id)
    events: list[Event] = []
    unreadable = 0
    start = "-"
    while True:
        batch = await client.redis.xrange(key, min=start, max="+", count=_XRANGE_PAGE)
        for _stream_id, entry in batch:
            try:
                event = parse_event(entry[EVENT_FIELD.encode()])
            except (KeyError, ValidationError):
                unreadable += 1
                continue
            events.append(event)
            if is_terminal(event):
                return events, unreadable
        if len(batch) < _XRANGE_PAGE:
            return events, unreadable
        start = "(" + batch[-1][0].decode()


async def _fetch_shots(
    client: Client, job_id: str, events: Sequence[Screenshot], *, images: bool
) -> dict[int, Shot]:
    limit = asyncio.Semaphore(_FETCH_CONCURRENCY)

    async def one(event: Screenshot) -> Shot:
        if not images:
            return Shot(event, None)
        try:
            async with limit:
                return Shot(event, await client.screenshot(job_id, event.blob))
        except LookupError:
            return Shot(event, None)

    shots = await asyncio.gather(*(one(e) for e in events))
    return {shot.event.blob: shot for shot in shots}


@dataclass
class _Draft:
    number: int
    turn: int
    action: Action
    text: str
    thinking: str
    usage: TokenUsage | None
    screenshot: Screenshot | None = None


class _Builder:
    """Folds events into steps of the final attempt; Transcript decides what is void."""

    def __init__(self) -> None:
        self.transcript = Transcript()
        self.queued: Queued | None = None
        self.last_ts: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.started: Started | None = None
        self.initial: Screenshot | None = None
        self.drafts: list[_Draft] = []
        self.turn = 0
        self.acting = False  # the current turn has acted: the next text/usage opens a new turn
        self.text = ""
        self.thinking = ""
        self.turn_usage: TokenUsage | None = None

    def feed(self, event: Event) -> None:
        before = self.transcript.attempt
        if not self.transcript.feed(event):
            return
        self.last_ts = event.ts
        if self.transcript.attempt != before:
            self._reset()
        match event:
            case Queued():
                self.queued = event
            case Started():
                self.started = event
            case Text():
                self._open_turn()
                self.text += event.text
            case Thinking():
                self._open_turn()
                self.thinking += event.text
            case Usage():
                self._open_turn()
                usage = event.tokens
                self.turn_usage = usage if self.turn_usage is None else self.turn_usage + usage
            case Action():
                if not self.acting:
                    self.turn += 1
                    self.acting = True
                self.drafts.append(
                    _Draft(event.step, self.turn, event, self.text, self.thinking, self.turn_usage)
                )
                self.text, self.thinking, self.turn_usage = "", "", None
            case Screenshot():
                self._place(event)

    def _open_turn(self) -> None:
        if self.acting:
            self.acting = False
            self.text, self.thinking, self.turn_usage = "", "", None

    def _place(self, shot: Screenshot) -> None:
        for draft in reversed(self.drafts):
            if draft.number == shot.step:
                draft.screenshot = shot
                return
        if shot.step == 0 or not self.drafts:
            self.initial = shot

    def screenshots(self) -> list[Screenshot]:
        found = [d.screenshot for d in self.drafts if d.screenshot is not None]
        return [self.initial, *found] if self.initial is not None else found

    def run(self, job_id: str, h: dict[str, str], shots: dict[int, Shot], unreadable: int) -> Run:
        t, queued = self.transcript, self.queued
        job = _job_document(h.get("job"))
        terminal = t.terminal
        status = terminal.type if terminal is not None else h.get("status") or "unknown"
        if terminal is None and status in TERMINAL_TYPES:
            status = "running"  # the hash says finished but the terminal event is not here yet
        usage = t.usage
        if isinstance(terminal, Done) and terminal.usage != TokenUsage():
            usage = terminal.usage

        def shot(event: Screenshot | None) -> Shot | None:
            return None if event is None else shots.get(event.blob, Shot(event, None))

        steps = tuple(
            Step(d.number, d.turn, d.action, d.text, d.thinking, d.usage, shot(d.screenshot))
            for d in self.drafts
        )
        return Run(
            job_id=job_id,
            kind=h.get("kind") or _str(job.get("kind")) or (queued.kind if queued else ""),
            model=h.get("model") or _str(job.get("model")) or (queued.model if queued else ""),
            status=status,
            task=_str(job.get("task")) or _str(job.get("prompt")) or _conversation(job),
            start_url=_str(job.get("start_url")),
            attempt=t.attempt,
            retries=tuple(t.retries),
            initial=shot(self.initial),
            steps=steps,
            final_text=self.text if not self.acting else "",
            final_thinking=self.thinking if not self.acting else "",
            tool_calls=tuple(t.tool_calls),
            usage=usage,
            stop_reason=t.stop_reason,
            error=t.error,
            cancel_reason=terminal.reason if isinstance(terminal, Cancelled) else None,
            created_at=_ms(h.get("created_ms")) or _ts(queued.ts if queued else None),
            started_at=_ms(h.get("started_ms")) or _ts(self.started.ts if self.started else None),
            finished_at=_ts(terminal.ts if terminal is not None else None)
            or (_ms(h.get("finished_ms")) if status in TERMINAL_TYPES else None),
            last_event_at=_ts(self.last_ts),
            unreadable_entries=unreadable,
        )


def _job_document(raw: str | None) -> dict[str, JsonValue]:
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _conversation(job: dict[str, JsonValue]) -> str | None:
    messages = job.get("messages")
    items = messages.get("items") if isinstance(messages, dict) else None
    return f"(a conversation of {len(items)} items)" if isinstance(items, list) else None


def _str(value: JsonValue | None) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms(raw: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None
    except ValueError:
        return None


def _ts(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None
