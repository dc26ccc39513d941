"""Replays of a job: its final attempt as numbered steps, shown as one self-contained HTML page,
an optional GIF/WebP animation, or screenshot files.

    run = await collect_run(client, job_id)        # a snapshot; never waits for the job to end
    Path("run.html").write_text(render_html(run))

A step is one `action` event of the final attempt with the model text and usage of the turn that
asked for it and the `screenshot` taken after it. A `retry` event voids the steps of the attempt
it names, exactly as `relayq.transcript.Transcript` voids text. Everything shown comes from the
job and is escaped: model text and action input are untrusted.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from pydantic import JsonValue, ValidationError

from relayq.client import Client
from relayq.errors import JobNotFound
from relayq.schemas.constants import EVENT_FIELD, events_key, job_key
from relayq.schemas.events import (
    TERMINAL_TYPES,
    Action,
    Cancelled,
    Done,
    ErrorInfo,
    Event,
    Queued,
    Retry,
    Screenshot,
    Started,
    Text,
    Thinking,
    TokenUsage,
    ToolCall,
    Usage,
    is_terminal,
    parse_event,
)
from relayq.transcript import Transcript

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageDraw import ImageDraw as PILDraw
    from PIL.ImageFont import FreeTypeFont, ImageFont

    PILFont = ImageFont | FreeTypeFont

__all__ = [
    "Run",
    "Shot",
    "Step",
    "collect_run",
    "describe_action",
    "render_animation",
    "render_html",
    "save_screenshot_event",
    "save_screenshots",
    "write_replay",
]

AnimationFormat = Literal["gif", "webp"]
REPLAY_EXTRA = "relayq[replay]"
_XRANGE_PAGE = 1000
_FETCH_CONCURRENCY = 8
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


# --------------------------------------------------------------------------------------------
# The model: a run, its steps, their screenshots


@dataclass(frozen=True)
class Shot:
    """One `screenshot` event and its bytes; `data` is None once the blob has expired."""

    event: Screenshot
    data: bytes | None

    @property
    def expired(self) -> bool:
        return self.data is None

    @property
    def width(self) -> int:
        return self.event.width

    @property
    def height(self) -> int:
        return self.event.height

    @property
    def media_type(self) -> str | None:
        """The image type, from the bytes themselves when possible; None if not an image."""
        if self.data is not None:
            for magic, media_type in _MAGIC:
                if self.data.startswith(magic):
                    return media_type
            if self.data[:4] == b"RIFF" and self.data[8:12] == b"WEBP":
                return "image/webp"
        declared = self.event.media_type.lower()
        return declared if declared in _EXTENSIONS else None

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.media_type or "", "bin")

    def data_uri(self) -> str | None:
        if self.data is None or self.media_type is None:
            return None
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Step:
    """One action of the final attempt. `text`, `thinking` and `usage` belong to the model turn
    that asked for it and are set on the turn's first step only (a turn may act several times).
    """

    number: int
    turn: int
    action: Action
    text: str = ""
    thinking: str = ""
    usage: TokenUsage | None = None
    screenshot: Shot | None = None

    @property
    def name(self) -> str:
        return self.action.action

    @property
    def label(self) -> str:
        return describe_action(self.action)


@dataclass(frozen=True)
class Run:
    """A job as far as its stream goes now: finished, or a snapshot of a running one."""

    job_id: str
    kind: str
    model: str
    status: str
    task: str | None = None
    start_url: str | None = None
    attempt: int = 0
    retries: tuple[Retry, ...] = ()
    initial: Shot | None = None
    steps: tuple[Step, ...] = ()
    final_text: str = ""
    final_thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    stop_reason: str | None = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_event_at: datetime | None = None
    unreadable_entries: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_TYPES

    @property
    def duration_s(self) -> float | None:
        end = self.finished_at or self.last_event_at
        if self.started_at is None or end is None:
            return None
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def shots(self) -> list[tuple[Step | None, Shot]]:
        """Every screenshot of the final attempt in order, with the step it followed."""
        shots: list[tuple[Step | None, Shot]] = []
        if self.initial is not None:
            shots.append((None, self.initial))
        shots.extend((s, s.screenshot) for s in self.steps if s.screenshot is not None)
        return shots


# --------------------------------------------------------------------------------------------
# Collecting a run from Redis


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


# --------------------------------------------------------------------------------------------
# Reading an action's input (untrusted JSON)


def _point(value: JsonValue | None) -> tuple[float, float] | None:
    if isinstance(value, list) and len(value) == 2:
        x, y = value
        if _number(x) and _number(y):
            return float(x), float(y)  # type: ignore[arg-type]
    return None


def _region(value: JsonValue | None) -> tuple[float, float, float, float] | None:
    if isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value):
        x1, y1, x2, y2 = (float(v) for v in value)  # type: ignore[arg-type]
        return x1, y1, x2, y2
    return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt_point(p: tuple[float, float]) -> str:
    return f"({_num(p[0])}, {_num(p[1])})"


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:g}"


def _quoted(value: JsonValue | None, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def describe_action(action: Action) -> str:
    """One line for an action: `left_click (640, 220)`, `type "Ada Lovelace"`, ..."""
    name, inp = action.action, action.input
    point = _point(inp.get("coordinate"))
    mods = f" + {inp['text']}" if isinstance(inp.get("text"), str) and point else ""
    match name:
        case "type":
            return f"type {_quoted(inp.get('text'))}"
        case "key":
            return f"key {_quoted(inp.get('text'))}"
        case "hold_key":
            return f"hold_key {_quoted(inp.get('text'))} for {inp.get('duration', '?')} s"
        case "wait":
            return f"wait {inp.get('duration', 1.0)} s"
        case "left_click_drag":
            start = _point(inp.get("start_coordinate"))
            if start and point:
                return f"left_click_drag {_fmt_point(start)} → {_fmt_point(point)}"
        case "scroll":
            direction = inp.get("scroll_direction", "?")
            amount = inp.get("scroll_amount", 3)
            at = f" at {_fmt_point(point)}" if point else ""
            return f"scroll {direction} by {amount}{at}{mods}"
        case "zoom":
            region = _region(inp.get("region"))
            if region:
                return f"zoom [{', '.join(_num(v) for v in region)}]"
        case _ if point is not None:
            return f"{name} {_fmt_point(point)}{mods}"
    rest = {k: v for k, v in inp.items() if k != "action"}
    return f"{name} {json.dumps(rest, ensure_ascii=False)}" if rest else name


@dataclass(frozen=True)
class _Marks:
    """Where an action touched the screen, as fractions (0..1) of the screenshot's size."""

    points: tuple[tuple[float, float], ...] = ()
    region: tuple[float, float, float, float] | None = None
    label: str = ""  # shown beside the last point, e.g. a scroll's direction


def _marks(action: Action, width: int, height: int) -> _Marks:
    if width <= 0 or height <= 0:
        return _Marks()

    def frac(p: tuple[float, float]) -> tuple[float, float]:
        return min(max(p[0] / width, 0.0), 1.0), min(max(p[1] / height, 0.0), 1.0)

    inp = action.input
    if action.action == "zoom":
        r = _region(inp.get("region"))
        if r is None:
            return _Marks()
        (x1, y1), (x2, y2) = frac((r[0], r[1])), frac((r[2], r[3]))
        return _Marks(region=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    points: list[tuple[float, float]] = []
    if action.action == "left_click_drag" and (start := _point(inp.get("start_coordinate"))):
        points.append(frac(start))
    if point := _point(inp.get("coordinate")):
        points.append(frac(point))
    label = ""
    if action.action == "scroll" and points:
        arrow = _ARROWS.get(str(inp.get("scroll_direction")), "?")
        label = f"{arrow} {inp.get('scroll_amount', 3)}"
    return _Marks(points=tuple(points), label=label)


_ACCENT = (224, 17, 95)
_ARROWS = {"up": "↑", "down": "↓", "left": "←", "right": "→"}


# --------------------------------------------------------------------------------------------
# HTML


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(f: float) -> str:
    return f"{f * 100:.3f}%"


def _tokens(u: TokenUsage) -> str:
    return (
        f"{u.prompt_tokens:,} in (cache write {u.cache_creation_tokens:,}, "
        f"read {u.cache_read_tokens:,}) · {u.completion_tokens:,} out"
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "—"


_STATUS_TEXT = {
    "done": "Done",
    "error": "Failed",
    "cancelled": "Cancelled",
    "running": "Running",
    "queued": "Queued",
    "retrying": "Waiting to retry",
}


def _frame(shot: Shot | None, marks: _Marks, alt: str, mark_note: str) -> str:
    if shot is None:
        return '<div class="frame missing"><p>No screenshot (yet) for this step.</p></div>'
    w, h = max(shot.width, 1), max(shot.height, 1)
    uri = shot.data_uri()
    if uri is not None:
        image = f'<img src="{_e(uri)}" width="{w}" height="{h}" alt="{_e(alt)}">'
    else:
        why = "expired" if shot.expired else "not a displayable image"
        image = (
            f'<div class="placeholder" role="img" aria-label="{_e(alt)} ({why})">'
            f"<span>Screenshot {why}</span><small>blob {shot.event.blob} · {w}x{h}</small></div>"
        )
    overlay = []
    if marks.region is not None:
        x1, y1, x2, y2 = marks.region
        overlay.append(
            f'<span class="zoombox" style="left:{_pct(x1)};top:{_pct(y1)};'
            f'width:{_pct(x2 - x1)};height:{_pct(y2 - y1)}"></span>'
        )
    if len(marks.points) == 2:
        (x1, y1), (x2, y2) = marks.points
        overlay.append(
            '<svg class="drag" aria-hidden="true" focusable="false">'
            f'<line x1="{_pct(x1)}" y1="{_pct(y1)}" x2="{_pct(x2)}" y2="{_pct(y2)}"/></svg>'
        )
    for i, (x, y) in enumerate(marks.points):
        kind = "start" if len(marks.points) == 2 and i == 0 else "hit"
        overlay.append(
            f'<span class="marker {kind}" style="left:{_pct(x)};top:{_pct(y)}"'
            f' data-x="{_pct(x)}" data-y="{_pct(y)}"></span>'
        )
    if marks.label and marks.points:
        x, y = marks.points[-1]
        overlay.append(
            f'<span class="mark-label" style="left:{_pct(x)};top:{_pct(y)}">'
            f"{_e(marks.label)}</span>"
        )
    caption = [f"{w}x{h}"]
    if shot.event.url:
        caption.insert(0, f'<span class="url">{_e(shot.event.url)}</span>')
    if shot.event.settle_ms is not None:
        caption.append(f"settled in {shot.event.settle_ms:.0f} ms")
    if mark_note:
        caption.append(_e(mark_note))
    return (
        f'<figure class="shot"><div class="frame" style="aspect-ratio:{w}/{h}">{image}'
        f'<div class="overlay" aria-hidden="true">{"".join(overlay)}</div></div>'
        f"<figcaption>{' · '.join(caption)}</figcaption></figure>"
    )


def _mark_note(action: Action, marks: _Marks) -> str:
    if marks.region is not None:
        return "box: zoomed region"
    if len(marks.points) == 2:
        return "hollow ring: drag start, filled: drag end"
    if marks.points:
        return f"marker: where {action.action} happened"
    return ""


def _text_block(text: str, cls: str = "model-text") -> str:
    return f'<div class="{cls}">{_e(text.strip())}</div>' if text.strip() else ""


def _step_html(step: Step, total: int, same_turn: bool) -> str:
    shot = step.screenshot
    marks = _marks(step.action, shot.width, shot.height) if shot else _Marks()
    alt = f"Screen after step {step.number}: {step.label}"
    parts = [
        f'<section class="step" id="step-{step.number}" aria-labelledby="step-{step.number}-h">',
        f'<h2 id="step-{step.number}-h"><span class="num">Step {step.number}'
        f'<span class="of"> of {total}</span></span> <code class="action">{_e(step.label)}</code>'
        "</h2>",
        '<div class="cols">',
        _frame(shot, marks, alt, _mark_note(step.action, marks)),
        '<div class="notes">',
    ]
    if step.text.strip():
        parts.append(f"<h3>Model</h3>{_text_block(step.text)}")
    elif same_turn:
        parts.append('<p class="quiet">Same model turn as the step before.</p>')
    else:
        parts.append('<p class="quiet">The model acted without comment.</p>')
    if step.thinking.strip():
        parts.append(
            f"<details><summary>Thinking</summary>{_text_block(step.thinking, 'thinking')}"
            "</details>"
        )
    detail = json.dumps(step.action.input, ensure_ascii=False, indent=1)
    parts.append(
        f"<details><summary>Action input</summary><pre>{_e(detail)}</pre></details>"
        f'<p class="meta">Turn {step.turn}'
        + (f" · {_e(_tokens(step.usage))}" if step.usage else "")
        + "</p></div></div></section>"
    )
    return "".join(parts)


def _header(run: Run) -> str:
    task = run.task or f"Job {run.job_id}"
    title = task if len(task) <= 200 else task[:199] + "…"
    status = run.status
    label = _STATUS_TEXT.get(status, status.capitalize())
    facts: list[tuple[str, str]] = [
        ("Job", f"<code>{_e(run.job_id)}</code>"),
        ("Outcome", f'<span class="badge {_e(status)}">{_e(label)}</span>'),
        ("Steps", str(len(run.steps))),
        ("Duration", _e(_duration(run.duration_s))),
        ("Tokens", _e(_tokens(run.usage))),
    ]
    if run.model:
        facts.append(("Model", f"<code>{_e(run.model)}</code>"))
    if run.start_url:
        facts.append(("Start URL", f'<span class="url">{_e(run.start_url)}</span>'))
    if run.started_at:
        facts.append(("Started", _e(_when(run.started_at))))
    if run.finished_at:
        facts.append(("Ended", _e(_when(run.finished_at))))
    if run.attempt > 1 or run.retries:
        reasons = ", ".join(r.reason for r in run.retries)
        facts.append(
            ("Attempt", _e(f"{run.attempt} ({len(run.retries)} voided: {reasons})"))
            if run.retries
            else ("Attempt", str(run.attempt))
        )
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    notes = []
    if not run.finished:
        notes.append(
            '<p class="banner live" role="status">This job was still '
            f"{_e(label.lower())} when this page was made: what follows is a snapshot"
            + (f" (last event {_e(_when(run.last_event_at))})" if run.last_event_at else "")
            + ".</p>"
        )
    if run.unreadable_entries:
        notes.append(
            f'<p class="banner">{run.unreadable_entries} stream entries could not be read.</p>'
        )
    full = f'<details><summary>Full task</summary><p class="task">{_e(task)}</p></details>'
    return (
        f'<header><p class="eyebrow">relayq replay · {_e(run.kind or "job")}</p>'
        f"<h1>{_e(title)}</h1>{full if title != task else ''}"
        f'<dl class="facts">{dl}</dl>{"".join(notes)}</header>'
    )


def _strip(run: Run) -> str:
    if not run.steps:
        return ""
    items = "".join(
        f'<li><a href="#step-{s.number}"><b>{s.number}</b> {_e(s.name)}</a></li>' for s in run.steps
    )
    end = '<li><a href="#result"><b>■</b> result</a></li>'
    return f'<nav class="strip" aria-label="Steps"><ol>{items}{end}</ol></nav>'


def _result(run: Run) -> str:
    parts = ['<section class="result" id="result" aria-labelledby="result-h">']
    heading = "Final answer" if run.finished else "Latest output"
    parts.append(f'<h2 id="result-h">{heading}</h2>')
    if run.final_thinking.strip():
        parts.append(
            "<details><summary>Thinking</summary>"
            f"{_text_block(run.final_thinking, 'thinking')}</details>"
        )
    if run.final_text.strip():
        parts.append(_text_block(run.final_text, "model-text final"))
    elif run.finished:
        parts.append('<p class="quiet">The model wrote no final text.</p>')
    else:
        parts.append('<p class="quiet">Nothing yet.</p>')
    for call in run.tool_calls:
        parts.append(
            f'<p class="meta">Tool call <code>{_e(call.name)}</code>'
            f"<code>({_e(call.arguments)})</code></p>"
        )
    if run.stop_reason:
        parts.append(f'<p class="meta">Stop reason: <code>{_e(run.stop_reason)}</code></p>')
    if run.error is not None:
        err = run.error
        extra = [f"HTTP {err.status_code}"] if err.status_code is not None else []
        if err.request_id:
            extra.append(f"request {err.request_id}")
        extra.append("retryable" if err.retryable else "not retryable")
        parts.append(
            f'<div class="error" role="alert"><h3>Error: {_e(err.type)}</h3>'
            f'<p>{_e(err.message)}</p><p class="meta">{_e(" · ".join(extra))}</p></div>'
        )
    if run.cancel_reason is not None:
        parts.append(
            f'<div class="error cancelled"><h3>Cancelled</h3><p>{_e(run.cancel_reason)}</p></div>'
        )
    parts.append("</section>")
    return "".join(parts)


def render_html(run: Run) -> str:
    """One self-contained page: inline CSS, screenshots as data URIs, no external resources."""
    body = [_header(run), _strip(run), '<main id="steps">']
    if run.initial is not None:
        body.append(
            '<section class="step" id="step-0" aria-labelledby="step-0-h">'
            '<h2 id="step-0-h"><span class="num">Start</span>'
            f' <span class="quiet">{_e(run.start_url or "")}</span></h2>'
            '<div class="cols">'
            + _frame(run.initial, _Marks(), "The page before the first action", "")
            + '<div class="notes"><p class="quiet">The screen the model saw first.</p></div>'
            "</div></section>"
        )
    previous_turn = None
    for step in run.steps:
        body.append(_step_html(step, len(run.steps), step.turn == previous_turn))
        previous_turn = step.turn
    body.append(_result(run))
    body.append("</main>")
    title = f"relayq replay · {run.job_id}"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        '<a class="skip" href="#steps">Skip to the steps</a>'
        + "".join(body)
        + "<footer><p>Keys: <kbd>j</kbd>/<kbd>→</kbd> next step, <kbd>k</kbd>/<kbd>←</kbd> "
        "previous.</p></footer>"
        f"<script>{_JS}</script></body></html>\n"
    )


_CSS = """
:root{--bg:#f4f5f7;--card:#fff;--ink:#1b1f24;--muted:#5b6470;--line:#dde1e6;--accent:#e0115f;
--ok:#137333;--bad:#b3261e;--live:#0b57d0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg);line-height:1.45}
*{box-sizing:border-box}body{margin:0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{background:#14171c;color:#f1f3f5;padding:1.4rem 2rem 1.2rem}
.eyebrow{margin:0;color:#9aa4b1;font-size:.8rem;letter-spacing:.06em;text-transform:uppercase}
h1{margin:.3rem 0 .9rem;font-size:1.45rem;font-weight:650;max-width:70rem}
header details{margin:-.5rem 0 .8rem;color:#cfd5dc}.task{white-space:pre-wrap}
.facts{display:flex;flex-wrap:wrap;gap:.5rem 2rem;margin:0}.facts div{min-width:0}
.facts dt{font-size:.72rem;color:#9aa4b1;text-transform:uppercase;letter-spacing:.05em}
.facts dd{margin:0;font-size:.95rem;overflow-wrap:anywhere}
header code{color:#fff}
.badge{display:inline-block;padding:.05rem .55rem;border-radius:999px;font-weight:600;
font-size:.85rem;background:#444;color:#fff}
.badge.done{background:var(--ok)}.badge.error{background:var(--bad)}
.badge.running,.badge.queued,.badge.retrying{background:var(--live)}
.banner{margin:1rem 0 0;padding:.6rem .9rem;border-radius:.4rem;background:#3a3f47}
.banner.live{background:#0b3d91}
.strip{position:sticky;top:0;z-index:5;background:rgba(244,245,247,.96);
border-bottom:1px solid var(--line);padding:.5rem 2rem;overflow-x:auto}
.strip ol{display:flex;gap:.4rem;list-style:none;margin:0;padding:0;white-space:nowrap}
.strip a{display:inline-block;padding:.2rem .6rem;border:1px solid var(--line);
border-radius:999px;background:#fff;color:var(--ink);text-decoration:none;font-size:.85rem}
.strip a:hover,.strip a:focus-visible{border-color:var(--accent);outline:none}
.strip b{color:var(--accent)}
main{padding:1rem 2rem 2rem;max-width:100rem;margin:0 auto}
.step,.result{background:var(--card);border:1px solid var(--line);border-radius:.6rem;
padding:1rem 1.2rem;margin:0 0 1.2rem;scroll-margin-top:3.2rem}
.step:target,.step.current{box-shadow:0 0 0 3px rgba(224,17,95,.35)}
h2{margin:0 0 .8rem;font-size:1.1rem;display:flex;gap:.7rem;align-items:baseline;flex-wrap:wrap}
h2 .num{color:var(--accent);font-weight:700}h2 .of{color:var(--muted);font-weight:400;
font-size:.85rem}
code.action{font-size:1rem;background:#f1f3f5;padding:.1rem .45rem;border-radius:.3rem;
overflow-wrap:anywhere}
h3{margin:0 0 .3rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;
color:var(--muted)}
.cols{display:grid;grid-template-columns:minmax(0,2fr) minmax(16rem,1fr);gap:1.2rem;
align-items:start}
@media (max-width:900px){.cols{grid-template-columns:1fr}main,header,.strip{padding-left:1rem;
padding-right:1rem}}
.shot{margin:0}
.frame{position:relative;width:100%;background:#e9ecef;border:1px solid var(--line);
border-radius:.3rem;overflow:hidden}
.frame img{display:block;width:100%;height:auto}
.frame.missing{padding:2rem;text-align:center;color:var(--muted)}
.placeholder{position:absolute;inset:0;display:flex;flex-direction:column;align-items:center;
justify-content:center;gap:.3rem;color:var(--muted);background:repeating-linear-gradient(45deg,
#eceff2 0 12px,#e3e7eb 12px 24px);font-weight:600}
.overlay{position:absolute;inset:0;pointer-events:none}
.marker{position:absolute;width:26px;height:26px;margin:-13px 0 0 -13px;border-radius:50%;
border:3px solid var(--accent);box-shadow:0 0 0 2px #fff,0 0 6px 2px rgba(0,0,0,.45);
background:rgba(224,17,95,.25)}
.marker::after{content:"";position:absolute;left:50%;top:50%;width:6px;height:6px;
margin:-3px 0 0 -3px;border-radius:50%;background:var(--accent)}
.marker.start{background:rgba(255,255,255,.35);border-style:dashed}
.marker.start::after{display:none}
.mark-label{position:absolute;margin:-.7rem 0 0 18px;padding:0 .4rem;border-radius:.3rem;
background:var(--accent);color:#fff;font-weight:700;font-size:.85rem;white-space:nowrap}
.drag{position:absolute;inset:0;width:100%;height:100%;overflow:visible}
.drag line{stroke:var(--accent);stroke-width:3;stroke-dasharray:8 5}
.zoombox{position:absolute;border:3px dashed var(--accent);box-shadow:0 0 0 2px #fff}
figcaption{font-size:.8rem;color:var(--muted);margin-top:.35rem;overflow-wrap:anywhere}
.url{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
.notes{min-width:0}
.model-text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:1rem;margin:0 0 .8rem}
.model-text.final{font-size:1.05rem}
.thinking{white-space:pre-wrap;color:var(--muted);font-style:italic;margin:.3rem 0}
details{margin:.4rem 0}summary{cursor:pointer;color:var(--muted);font-size:.9rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.5rem;
border-radius:.3rem;font-size:.85rem;margin:.3rem 0}
.meta,.quiet{color:var(--muted);font-size:.88rem;margin:.4rem 0}
.error{border-left:4px solid var(--bad);background:#fdecea;padding:.6rem .9rem;
border-radius:.3rem;margin-top:.8rem}.error h3{color:var(--bad);text-transform:none;font-size:1rem;
letter-spacing:0}.error p{margin:.2rem 0}
.error.cancelled{border-color:#666;background:#f1f3f5}.error.cancelled h3{color:#444}
footer{color:var(--muted);font-size:.8rem;padding:0 2rem 2rem;text-align:center}
kbd{border:1px solid var(--line);border-bottom-width:2px;border-radius:.25rem;padding:0 .3rem;
background:#fff}
"""

_JS = """
(function(){var s=[].slice.call(document.querySelectorAll('main > section'));
function cur(){var y=window.scrollY+70,i=0;s.forEach(function(e,k){if(e.offsetTop<=y)i=k;});
return i;}
document.addEventListener('keydown',function(ev){if(ev.altKey||ev.ctrlKey||ev.metaKey)return;
var t=ev.target&&ev.target.tagName;if(t==='INPUT'||t==='TEXTAREA')return;var d=0;
if(ev.key==='j'||ev.key==='ArrowRight')d=1;else if(ev.key==='k'||ev.key==='ArrowLeft')d=-1;
if(!d)return;var n=Math.min(s.length-1,Math.max(0,cur()+d));ev.preventDefault();
s.forEach(function(e){e.classList.remove('current');});s[n].classList.add('current');
s[n].scrollIntoView({block:'start'});});})();
"""


# --------------------------------------------------------------------------------------------
# Animation (Pillow: the optional extra `replay`)


def render_animation(
    run: Run,
    path: Path,
    *,
    fmt: AnimationFormat = "gif",
    frame_ms: int = 800,
    max_width: int = 960,
) -> Path:
    """Writes one frame per screenshot, the action's position marked and a caption below."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as e:
        raise RuntimeError(
            f"render_animation needs Pillow: pip install '{REPLAY_EXTRA}' (or pillow)"
        ) from e
    shots = run.shots
    if not shots:
        raise ValueError(f"job {run.job_id} has no screenshots to animate")
    first = shots[0][1]
    width = min(max_width, max(first.width, 1))
    height = max(1, round(first.height * width / max(first.width, 1)))
    bar = max(28, height // 18)
    font = _font(ImageFont, bar * 0.55)

    frames: list[PILImage] = []
    for step, shot in shots:
        screen = _decode(shot)
        if screen is None:
            screen = Image.new("RGB", (max(shot.width, 1), max(shot.height, 1)), "#d5d9de")
            why = "expired" if shot.expired else "unreadable"
            ImageDraw.Draw(screen).text(
                (screen.width // 2, screen.height // 2),
                f"screenshot {why}",
                fill="#444",
                font=_font(ImageFont, screen.width / 30),
                anchor="mm",
            )
        screen = screen.resize((width, height), Image.Resampling.LANCZOS)
        frame: PILImage = Image.new("RGB", (width, height + bar), "#14171c")
        frame.paste(screen, (0, 0))
        caption = "Start" if step is None else f"Step {step.number}/{len(run.steps)} · {step.label}"
        caption = caption.replace("→", "->")
        ImageDraw.Draw(frame).text(
            (12, height + bar // 2), caption, fill="#f1f3f5", font=font, anchor="lm"
        )
        accent: int | tuple[int, int, int] = _ACCENT
        white: int | tuple[int, int, int] = (255, 255, 255)
        if fmt == "gif":
            # a palette of the screen's own colours plus the marker's, so that the few marker
            # pixels are not mapped to the nearest page colour
            frame = frame.quantize(colors=254, method=Image.Quantize.MEDIANCUT)
            palette = (frame.getpalette() or [])[: 254 * 3]
            palette += [0, 0, 0] * (254 - len(palette) // 3)
            frame.putpalette([*palette, *_ACCENT, 255, 255, 255])
            accent, white = 254, 255
        if step is not None:
            marks = _marks(step.action, shot.width, shot.height)
            _draw_marks(ImageDraw.Draw(frame), marks, (width, height), accent, white)
        frames.append(frame)
    durations = [frame_ms] * len(frames)
    durations[-1] = frame_ms * 3
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {"save_all": True, "duration": durations, "loop": 0}
    if fmt == "webp":
        options.update(quality=80, method=4)
    frames[0].save(path, format=fmt.upper(), append_images=frames[1:], **options)
    return path


def _font(module: ModuleType, size: float) -> PILFont:
    try:
        font: PILFont = module.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow without FreeType: the bitmap font
        font = module.load_default()
    return font


def _decode(shot: Shot) -> PILImage | None:
    from PIL import Image, UnidentifiedImageError

    if shot.data is None:
        return None
    try:
        with Image.open(io.BytesIO(shot.data)) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _draw_marks(
    draw: PILDraw,
    marks: _Marks,
    size: tuple[int, int],
    accent: int | tuple[int, int, int],
    white: int | tuple[int, int, int],
) -> None:
    """Draws on a frame whose screen area is `size`; colours are RGB or palette indices."""
    w, h = size
    r = max(7, w // 70)
    if marks.region is not None:
        x1, y1, x2, y2 = marks.region
        draw.rectangle((x1 * w, y1 * h, x2 * w, y2 * h), outline=accent, width=max(3, r // 3))
    pts = [(x * w, y * h) for x, y in marks.points]
    if len(pts) == 2:
        draw.line(pts, fill=accent, width=max(3, r // 3))
    for i, (x, y) in enumerate(pts):
        box = (x - r, y - r, x + r, y + r)
        halo = r + 2
        draw.ellipse((x - halo, y - halo, x + halo, y + halo), outline=white, width=max(6, r // 2))
        draw.ellipse(box, outline=accent, width=max(3, r // 3))
        if not (len(pts) == 2 and i == 0):
            draw.ellipse((x - r / 3, y - r / 3, x + r / 3, y + r / 3), fill=accent)


# --------------------------------------------------------------------------------------------
# Files


def _screenshot_name(event: Screenshot, ext: str) -> str:
    return f"step-{event.step:03d}.{ext}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def save_screenshot_event(client: Client, event: Screenshot, directory: Path) -> Path:
    """Saves one screenshot as `step-NNN.<ext>` (live use: `relayq watch --save-screenshots`).

    Raises LookupError when the blob has expired.
    """
    shot = Shot(event, await client.screenshot(event.job_id, event.blob))
    path = Path(directory) / _screenshot_name(event, shot.extension)
    await asyncio.to_thread(_write_atomic, path, shot.data or b"")
    return path


async def save_screenshots(client: Client, job_id: str, directory: Path) -> list[Path]:
    """Saves the final attempt's screenshots that still exist; returns the files written."""
    run = await collect_run(client, job_id)
    return await asyncio.to_thread(_save_all, run.shots, Path(directory))


def _save_all(shots: Iterable[tuple[Step | None, Shot]], directory: Path) -> list[Path]:
    written: list[Path] = []
    used: set[str] = set()
    for _step, shot in shots:
        if shot.data is None:
            continue
        name = _screenshot_name(shot.event, shot.extension)
        if name in used:
            name = f"step-{shot.event.step:03d}-b{shot.event.blob}.{shot.extension}"
        used.add(name)
        _write_atomic(directory / name, shot.data)
        written.append(directory / name)
    return written


async def write_replay(
    client: Client, job_id: str, out: Path, *, animation: Path | None = None
) -> Path:
    """`relayq replay JOB_ID -o run.html [--gif run.gif]`: writes the page (and animation)."""
    run = await collect_run(client, job_id)
    page = render_html(run)
    out = Path(out)
    await asyncio.to_thread(_write_atomic, out, page.encode("utf-8"))
    if animation is not None:
        fmt: AnimationFormat = "webp" if Path(animation).suffix.lower() == ".webp" else "gif"
        await asyncio.to_thread(render_animation, run, Path(animation), fmt=fmt)
    return out
