"""StreamAccumulator and ThinkingTagFilter as pure functions of their input, no HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import RawMessageStreamEvent
from llm_replay import FIXTURES, text_of, tool_calls_of
from pydantic import TypeAdapter

from relayq.llm import THINKING_EXTRA_KEY, StreamAccumulator, ThinkingTagFilter

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


def test_thinking_is_output_from_its_first_delta_so_a_failure_after_it_is_final() -> None:
    accumulator = StreamAccumulator()
    events = transcript("thinking_tool_use")
    feed_all(accumulator, events[:2])
    assert not accumulator.produced_output
    feed_all(accumulator, events[2:3])
    assert accumulator.produced_output


def test_a_tool_call_carries_the_signed_thinking_blocks_of_its_message() -> None:
    accumulator = StreamAccumulator()
    chunks = feed_all(accumulator, transcript("thinking_tool_use"))
    [call] = tool_calls_of(chunks)
    assert call.extra == {THINKING_EXTRA_KEY: accumulator.thinking_blocks}
    assert [b["type"] for b in accumulator.thinking_blocks] == ["thinking", "redacted_thinking"]


def test_merged_delta_extras_hold_every_thinking_block_of_the_message() -> None:
    """A LiveKit agent merges `delta.extra` with dict.update into its assistant message."""
    accumulator = StreamAccumulator()
    merged: dict[str, Any] = {}
    for chunk in feed_all(accumulator, transcript("thinking_tool_use")):
        if chunk.delta and chunk.delta.extra:
            merged.update(chunk.delta.extra)
    assert merged[THINKING_EXTRA_KEY] == accumulator.thinking_blocks


def test_a_tool_call_without_thinking_has_no_extra() -> None:
    chunks = feed_all(StreamAccumulator(), transcript("tool_use_split_json"))
    assert [call.extra for call in tool_calls_of(chunks)] == [None, None]


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
MID_BLOCK = "Use <thinking>...</thinking> tags to show reasoning."


def filtered(pieces: list[str]) -> str:
    tag_filter = ThinkingTagFilter()
    return "".join(tag_filter.feed(piece) for piece in pieces) + tag_filter.flush()


@pytest.mark.parametrize("cut", range(1, len(RAW)))
def test_a_thinking_span_opening_the_block_is_removed_wherever_the_text_is_cut(cut: int) -> None:
    assert filtered([RAW[:cut], RAW[cut:]]) == VISIBLE


def test_a_thinking_span_opening_the_block_is_removed_when_characters_arrive_alone() -> None:
    assert filtered(list(RAW)) == VISIBLE


def test_whitespace_before_the_opening_span_is_removed_with_it() -> None:
    assert filtered(["\n  <thinking>plan</thinking> Hello"]) == "Hello"


@pytest.mark.parametrize("cut", range(1, len(MID_BLOCK)))
def test_a_thinking_tag_later_in_the_text_is_part_of_the_answer(cut: int) -> None:
    assert filtered([MID_BLOCK[:cut], MID_BLOCK[cut:]]) == MID_BLOCK


def test_a_held_back_tag_prefix_is_released_when_it_turns_out_not_to_be_a_tag() -> None:
    tag_filter = ThinkingTagFilter()
    assert tag_filter.feed(" <thi") == ""
    assert tag_filter.feed("s> is a tag") == " <this> is a tag"
    assert tag_filter.flush() == ""
    assert tag_filter.feed("<thin") == ""
    assert tag_filter.flush() == "<thin"


def test_each_text_block_may_open_with_its_own_span() -> None:
    tag_filter = ThinkingTagFilter()
    first = tag_filter.feed("<thinking>a</thinking>One") + tag_filter.flush()
    second = tag_filter.feed("<thinking>b</thinking>Two") + tag_filter.flush()
    assert (first, second) == ("One", "Two")


def test_an_unclosed_opening_span_drops_the_block() -> None:
    assert filtered(["<thinking>never closed"]) == ""
