"""Subscribers show only the final attempt's output: a `retry` voids what came before."""

from __future__ import annotations

from relayq.schemas.events import (
    Cancelled,
    Done,
    Retry,
    Started,
    Text,
    ToolCall,
    Usage,
)
from relayq.transcript import transcript_of


def test_retry_voids_the_failed_attempts_text_and_tool_calls() -> None:
    events = [
        Started(job_id="j", attempt=1, worker="a"),
        Text(job_id="j", attempt=1, text="Hello wor"),
        ToolCall(job_id="j", attempt=1, call_id="c1", name="f", arguments="{}"),
        Usage(job_id="j", attempt=1, prompt_tokens=5, total_tokens=5),
        Retry(job_id="j", attempt=1, reason="worker_lost", delay=0),
        Started(job_id="j", attempt=2, worker="b"),
        Text(job_id="j", attempt=2, text="Hello "),
        Text(job_id="j", attempt=2, text="world"),
        Usage(job_id="j", attempt=2, prompt_tokens=5, completion_tokens=2, total_tokens=7),
        Done(job_id="j", attempt=2, stop_reason="end_turn"),
    ]

    t = transcript_of(events)

    assert t.text == "Hello world"
    assert t.tool_calls == []
    assert t.usage.total_tokens == 7
    assert t.outcome == "done" and t.attempt == 2 and len(t.retries) == 1


def test_late_output_of_a_voided_attempt_is_ignored() -> None:
    events = [
        Retry(job_id="j", attempt=1, reason="api_error", delay=0),
        Text(job_id="j", attempt=2, text="fresh"),
        Text(job_id="j", attempt=1, text="stale"),
    ]
    assert transcript_of(events).text == "fresh"


def test_a_cancel_while_waiting_to_retry_ends_the_transcript() -> None:
    events = [
        Text(job_id="j", attempt=1, text="partial"),
        Retry(job_id="j", attempt=1, reason="api_error", delay=5),
        Cancelled(job_id="j", attempt=1),
    ]
    t = transcript_of(events)
    assert t.outcome == "cancelled" and t.text == ""
