"""The wire contract: what a job may contain, and that events round-trip through JSON."""

from __future__ import annotations

import json

import pytest
from livekit.agents.llm import ChatContext

from relayq.schemas.events import (
    Cancelled,
    Done,
    Error,
    ErrorInfo,
    Queued,
    Retry,
    Started,
    Text,
    Thinking,
    TokenUsage,
    ToolCall,
    Usage,
    is_terminal,
    parse_event,
)
from relayq.schemas.jobs import MAX_JOB_BYTES, ChatJob, parse_job


def test_a_prompt_job_gets_a_generated_id_and_defaults() -> None:
    job = parse_job('{"prompt": "hi"}')
    assert isinstance(job, ChatJob)
    assert job.id.startswith("job_") and job.kind == "chat" and job.v == 1


def test_a_chat_context_round_trips_losslessly_through_the_job() -> None:
    ctx = ChatContext()
    ctx.add_message(role="system", content="be nice")
    ctx.add_message(role="user", content=["look", "twice"])
    ctx.add_message(role="assistant", content="ok")
    job = ChatJob(messages=ctx.to_dict(exclude_image=False))

    again = parse_job(job.model_dump_json())

    assert isinstance(again, ChatJob) and again.messages is not None
    restored = ChatContext.from_dict(dict(again.messages))
    assert restored.to_dict(exclude_image=False) == ctx.to_dict(exclude_image=False)


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"kind": "video", "prompt": "x"}', "unknown job kind"),
        (b'{"prompt": "x", "surprise": 1}', "Extra inputs"),
        (b'{"prompt": 3}', "valid string"),
        (b'{"prompt": "x", "max_tokens": "3"}', "valid integer"),
        (b'{"system": "only a system"}', "exactly one"),
        (
            b'{"prompt": "x", "messages": {"items": [{"type": "message", "role": "user", '
            b'"content": ["hi"]}]}}',
            "exactly one",
        ),
        (b'{"messages": {"items": [{"type": "bogus"}]}}', "not a valid ChatContext"),
        (b'{"messages": {"items": []}}', "non-empty"),
        (b'{"prompt": "x", "deadline": "2026-01-01T00:00:00"}', "timezone"),
        (b'{"prompt": "x", "id": "has{braces}"}', "pattern"),
        (b'{"prompt": "x", "tools": [{"name": "t", "input_schema": {"type": "str"}}]}', "object"),
        (b'{"prompt": "x", "tool_choice": {"type": "function", "name": "nope"}}', "unknown tool"),
        (b'{"prompt": "x", "temperature": 1.5}', "less than or equal"),
    ],
)
def test_invalid_jobs_are_rejected_with_a_readable_reason(payload: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_job(payload)


def test_oversized_jobs_are_rejected_before_parsing() -> None:
    huge = json.dumps({"prompt": "x" * (MAX_JOB_BYTES + 1)})
    with pytest.raises(ValueError, match="limit"):
        parse_job(huge)


def test_deeply_nested_tool_schemas_are_rejected() -> None:
    schema: dict[str, object] = {"type": "object"}
    node = schema
    for _ in range(40):
        child: dict[str, object] = {"type": "object"}
        node["properties"] = {"a": child}
        node = child
    with pytest.raises(ValueError, match="deeper"):
        ChatJob(prompt="x", tools=[{"name": "t", "input_schema": schema}])  # type: ignore[list-item]


def test_every_event_type_round_trips_through_json() -> None:
    info = ErrorInfo(type="APIStatusError", message="overloaded", status_code=529, retryable=True)
    events = [
        Queued(job_id="j", attempt=0, kind="chat", model="m"),
        Started(job_id="j", attempt=1, worker="w"),
        Text(job_id="j", attempt=1, text="hé"),
        Thinking(job_id="j", attempt=1, text="hmm", signature="sig"),
        ToolCall(job_id="j", attempt=1, call_id="c", name="n", arguments='{"a":'),
        Usage(job_id="j", attempt=1, prompt_tokens=3, completion_tokens=4, total_tokens=7),
        Retry(job_id="j", attempt=1, reason="api_error", error=info, delay=0.5),
        Error(job_id="j", attempt=2, error=info),
        Done(job_id="j", attempt=2, stop_reason="end_turn", usage=TokenUsage(total_tokens=7)),
        Cancelled(job_id="j", attempt=2),
    ]
    for event in events:
        assert parse_event(event.model_dump_json()) == event
    assert [is_terminal(e) for e in events].count(True) == 3


def test_events_from_a_newer_format_are_refused_rather_than_misread() -> None:
    with pytest.raises(ValueError):
        parse_event('{"v": 2, "type": "text", "job_id": "j", "attempt": 1, "ts": 0, "text": "x"}')
