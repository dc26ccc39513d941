"""A replay as one self-contained HTML page (inline CSS, screenshots as data URIs, no external
resources), rendered from the Jinja2 templates beside this module with autoescaping on: model
text, action input and URLs come from the job and are untrusted.

Jinja2 comes with the `replay` extra; it is imported on first render, so `relayq watch` and the
other producer commands never need it.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from relayq.replay.actions import Marks, marks_of
from relayq.replay.animation import REPLAY_EXTRA
from relayq.replay.model import Run, Shot
from relayq.schemas.events import Action, ErrorInfo, TokenUsage

if TYPE_CHECKING:
    from jinja2 import Environment

_STATUS_TEXT = {
    "done": "Done",
    "error": "Failed",
    "cancelled": "Cancelled",
    "running": "Running",
    "queued": "Queued",
    "retrying": "Waiting to retry",
}


def render_html(run: Run) -> str:
    return _environment().get_template("replay.html.j2").render(run=run).lstrip()


@cache
def _environment() -> Environment:
    try:
        import jinja2
    except ImportError as e:
        raise RuntimeError(f"an HTML replay needs Jinja2: pip install '{REPLAY_EXTRA}'") from e
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("relayq.replay", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=pct,
        tokens=tokens,
        duration=duration,
        when=when,
        status_label=status_label,
        shorten=shorten,
        pretty_json=pretty_json,
        error_facts=error_facts,
    )
    env.globals.update(marks_of=_marks_on, mark_note=mark_note, no_marks=Marks())
    return env


def pct(fraction: float) -> str:
    return f"{fraction * 100:.3f}%"


def tokens(u: TokenUsage) -> str:
    return (
        f"{u.prompt_tokens:,} in (cache write {u.cache_creation_tokens:,}, "
        f"read {u.cache_read_tokens:,}) · {u.completion_tokens:,} out"
    )


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "—"


def status_label(status: str) -> str:
    return _STATUS_TEXT.get(status, status.capitalize())


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


def error_facts(error: ErrorInfo) -> str:
    facts = [f"HTTP {error.status_code}"] if error.status_code is not None else []
    if error.request_id:
        facts.append(f"request {error.request_id}")
    facts.append("retryable" if error.retryable else "not retryable")
    return " · ".join(facts)


def _marks_on(action: Action, shot: Shot) -> Marks:
    return marks_of(action, shot.width, shot.height)


def mark_note(action: Action, marks: Marks) -> str:
    if marks.region is not None:
        return "box: zoomed region"
    if len(marks.points) == 2:
        return "hollow ring: drag start, filled: drag end"
    if marks.points:
        return f"marker: where {action.action} happened"
    return ""
