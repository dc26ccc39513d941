"""StreamAccumulator and ThinkingTagFilter as pure functions of their input, no HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import RawMessageStreamEvent
from llm_replay import FIXTURES, text_of, tool_calls_of
from pydantic import TypeAdapter

from relayq.llm import StreamAccumulator, ThinkingTagFilter

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def transcript(name: str) -> list[RawMessageStreamEvent]:
    """The known events of a recorded transcript, validated as the SDK's types."""
    events = []
    for line in (FIXTURES / f"{name}.sse").read_text().splitlines():
        if line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
            if data["type"] not in ("ping", "error"):
                events.append(EVENTS.validate_python(data))
    return events


def feed_all(accumulator: StreamAccumulator, events: list[RawMessageStreamEvent]) -> list[Any]:
    return [chunk for event in events for chunk in accumulator.feed(event)]


def test_a_transcript_fed_event_by_event_gives_text_calls_usage_and_stop_reason() -> None:
    accumulator = StreamAccumulator()
    chunks = feed_all(accumulator, transcript("tool_use_split_json"))

    assert text_of(chunks) == "Checking the weather."
    assert [c.arguments for c in tool_calls_of(chunks)] == [
        '{"location": "Paris", "unit": "celsius"}',
        "{}",
    ]
    assert accumulator.completed and accumulator.produced_output
    assert accumulator.stop_reason == "tool_use"
    assert chunks[-1].usage == accumulator.usage


def test_message_delta_usage_is_cumulative_so_it_replaces_the_start_count() -> None:
    accumulator = StreamAccumulator()
    feed_all(accumulator, transcript("text"))
    assert accumulator.usage.completion_tokens == 12


def test_thinking_alone_is_not_output() -> None:
    accumulator = StreamAccumulator()
    feed_all(accumulator, transcript("thinking_tool_use")[:6])
    assert accumulator.thinking_blocks[0]["type"] == "thinking"
    assert not accumulator.produced_output


def test_a_delta_for_a_block_that_never_started_is_ignored() -> None:
    accumulator = StreamAccumulator()
    events = transcript("text")
    assert feed_all(accumulator, [events[0], events[2]]) == []


def test_each_accumulator_starts_empty() -> None:
    first = StreamAccumulator()
    feed_all(first, transcript("tool_use_invalid_json")[:3])
    second = StreamAccumulator()
    chunks = feed_all(second, transcript("tool_use_split_json"))
    assert tool_calls_of(chunks)[0].arguments == '{"location": "Paris", "unit": "celsius"}'
    assert second.message_id == "msg_01ToolSplit"


RAW = "<thinking>plan: call the tool</thinking>\n\nHello <b>world</b> 2 < 3."
VISIBLE = "Hello <b>world</b> 2 < 3."


def filtered(pieces: list[str]) -> str:
    tag_filter = ThinkingTagFilter()
    return "".join(tag_filter.feed(piece) for piece in pieces) + tag_filter.flush()


@pytest.mark.parametrize("cut", range(1, len(RAW)))
def test_thinking_spans_are_removed_wherever_the_text_is_cut(cut: int) -> None:
    assert filtered([RAW[:cut], RAW[cut:]]) == VISIBLE


def test_thinking_spans_are_removed_when_every_character_arrives_alone() -> None:
    assert filtered(list(RAW)) == VISIBLE


def test_a_held_back_tag_prefix_is_released_when_it_turns_out_not_to_be_a_tag() -> None:
    tag_filter = ThinkingTagFilter()
    assert tag_filter.feed("a <thi") == "a "
    assert tag_filter.feed("s>") == "<this>"
    assert tag_filter.feed(" <thin") == " "
    assert tag_filter.flush() == "<thin"


def test_an_unclosed_thinking_span_is_dropped() -> None:
    assert filtered(["ok <thinking>never closed"]) == "ok "
