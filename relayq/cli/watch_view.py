"""How `relayq watch` shows a job to a person: one line per event when the output is not a
terminal, and in a terminal a live frame, a header (state, elapsed time, tokens, cost, step k of
max) above the output's newest lines: the tail always shows, however long the output grows."""

from __future__ import annotations

from relayq.cli.terminal import BOLD, CYAN, DIM, GREEN, ITALIC, MAGENTA, RED, YELLOW, style, wrap
from relayq.cli.watch_state import QueuePlace, WatchState
from relayq.replay.actions import describe_action
from relayq.schemas.events import (
    Action,
    Cancelled,
    Done,
    Error,
    Event,
    Retry,
    Screenshot,
    Started,
    Text,
    ToolCall,
)

_STATE_STYLE: dict[str, str] = {
    "done": GREEN,
    "error": RED,
    "cancelled": YELLOW,
    "retrying": YELLOW,
    "running": CYAN,
    "queued": DIM,
}


def event_line(event: Event) -> str:
    """The plain-text form of one event (text deltas as they come, everything else a line)."""
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
            return f"\n[{retry_text(event)}]\n"
        case Done() | Error() | Cancelled():
            return f"\n[{ending_text(event)}]\n"
    return ""


def retry_text(event: Retry) -> str:
    said = event.error.message if event.error else ""
    then = "" if "retrying in" in said else f"; retrying in {event.delay:.1f} s"
    return f"attempt {event.attempt} voided ({event.reason}{': ' + said if said else ''}){then}"


def ending_text(event: Event) -> str:
    match event:
        case Done():
            u = event.usage
            return (
                f"done: {event.stop_reason}; tokens in {u.prompt_tokens:,} "
                f"(cache write {u.cache_creation_tokens:,}, read {u.cache_read_tokens:,}), "
                f"out {u.completion_tokens:,}"
            )
        case Error():
            return f"error: {event.error.type}: {event.error.message}"
        case Cancelled():
            return f"cancelled: {event.reason}" if event.reason else "cancelled"
    return event.type


def summary_line(state: WatchState, now: float) -> str:
    """`job_…: done in 4.2 s · 1,204 in / 310 out tokens · ~$0.0083`, for the end of a watch."""
    return f"{state.job_id}: {state.phase}" + "".join(f" · {f}" for f in _facts(state, now))


def queue_line(place: QueuePlace) -> str:
    where = (
        f"queued at position {place.position} in the {place.queue} queue"
        if place.position is not None
        else f"waiting in the {place.queue} queue (not due yet)"
    )
    return where


def no_worker_line(place: QueuePlace) -> str:
    return (
        f"warning: no worker is serving the {place.queue} queue; "
        f"start one: relayq worker --queues {place.queue}"
    )


def live_frame(
    state: WatchState, *, columns: int, lines: int, now: float, color: bool, final: bool = False
) -> list[str]:
    """The header and, below it, as much of the output's end as fits in `lines` (all of it when
    `final`: the frame is then printed once more, for the scrollback)."""
    head = _header(state, columns, now, color)
    body = _body(state, columns, color)
    if final:
        return head + body
    room = max(1, lines - len(head) - 1)
    if len(body) > room:
        hidden = len(body) - room + 1
        more = f"… {hidden} earlier lines (all shown when the job ends)"
        body = [style(more[:columns], DIM, enabled=color), *body[-(room - 1) :]] if room > 1 else []
    return head + body


def _header(state: WatchState, columns: int, now: float, color: bool) -> list[str]:
    phase, attempt = state.phase, state.transcript.attempt
    label = (
        f"{phase}, attempt {attempt}" if phase in ("running", "retrying") and attempt > 1 else phase
    )
    title = f"{state.job_id} {label}"
    lines = _joined([title, *_facts(state, now)], columns)
    if color and lines[0].startswith(title):
        shown = style(state.job_id, BOLD) + " " + style(label, BOLD, _STATE_STYLE.get(phase, BOLD))
        lines[0] = shown + lines[0][len(title) :]
    if state.place is not None and phase == "queued":
        lines += [style(x, DIM, enabled=color) for x in wrap(queue_line(state.place), columns)]
        if state.place.workers_serving == 0:
            warning = wrap(no_worker_line(state.place), columns)
            lines += [style(x, YELLOW, BOLD, enabled=color) for x in warning]
    retries = state.transcript.retries
    if retries:
        said = f"retried {len(retries)}x; last: {retry_text(retries[-1])}"
        lines += [style(x, YELLOW, enabled=color) for x in wrap(said, columns)]
    lines.append(style("─" * columns, DIM, enabled=color))
    return lines


def _joined(parts: list[str], columns: int) -> list[str]:
    """`a · b · c`, broken between parts (not inside one) where the line would be too long."""
    lines = [""]
    for part in parts:
        candidate = f"{lines[-1]} · {part}" if lines[-1] else part
        if len(candidate) <= columns or not lines[-1]:
            lines[-1] = candidate
        else:
            lines.append(part)
    return [x for line in lines for x in wrap(line, columns)]


def _facts(state: WatchState, now: float) -> list[str]:
    facts = []
    if (elapsed := state.elapsed_s(now)) is not None:
        facts.append(f"{elapsed:.1f} s")
    u = state.billed
    facts.append(f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out tokens")
    facts.append(f"~${state.cost_usd:.4f}")
    if state.facts.kind == "computer_use" or state.step:
        limit = f" of {state.facts.max_steps}" if state.facts.max_steps else ""
        facts.append(f"step {state.step}{limit}")
    return facts


def _body(state: WatchState, columns: int, color: bool) -> list[str]:
    lines: list[str] = []
    turns = state.turns
    separate = state.facts.kind == "computer_use" or len(turns) > 1
    for number, turn in enumerate(turns, start=1):
        if not (turn.text or turn.thinking or turn.actions or turn.tool_calls):
            continue
        if separate:
            rule = f"── turn {number} "
            lines.append(style(rule + "─" * max(0, columns - len(rule)), DIM, enabled=color))
        if turn.thinking:
            lines += [style(x, DIM, ITALIC, enabled=color) for x in wrap(turn.thinking, columns)]
        if turn.text:
            lines += wrap(turn.text.strip("\n") if separate else turn.text, columns)
        for action in turn.actions:
            said = f"▸ step {action.step}: {describe_action(action)}"
            lines += [style(x, MAGENTA, enabled=color) for x in wrap(said, columns)]
        for call in turn.tool_calls:
            said = f"→ {call.name}({call.arguments})"
            lines += [style(x, CYAN, enabled=color) for x in wrap(said, columns)]
    terminal = state.transcript.terminal
    if terminal is not None:
        ending = ending_text(terminal)
        code = {"done": GREEN, "error": RED}.get(terminal.type, YELLOW)
        lines += [style(x, code, enabled=color) for x in wrap(ending, columns)]
    return lines


def _settled(event: Screenshot) -> str:
    return f", settled in {event.settle_ms:.0f} ms" if event.settle_ms is not None else ""
