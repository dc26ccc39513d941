"""Malformed SSE from the model endpoint, fuzzed: truncated events, invalid JSON, unknown event
and block types, out-of-order blocks. Whatever arrives, LLMStream either finishes or raises a
LiveKit APIError; it never raises anything else and never hangs."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from livekit.agents import APIConnectOptions, APIError
from livekit.agents.llm import ChatContext
from llm_replay import ReplayServer, Reply, load_sse, sse_event

from relayq.llm import LLM
from relayq.llm.function_schemas import tool_from_schema

BASES = ["text", "tool_use_split_json", "thinking_tool_use", "cache_usage"]

oddities = st.sampled_from(
    [
        sse_event({"type": "mystery_event", "x": 1}),
        sse_event({"type": "content_block_start", "index": 7, "content_block": {"type": "alien"}}),
        sse_event(
            {
                "type": "content_block_delta",
                "index": 9,
                "delta": {"type": "text_delta", "text": "x"},
            }
        ),
        sse_event({"type": "content_block_delta", "index": 0, "delta": {"type": "weird_delta"}}),
        sse_event({"type": "content_block_stop", "index": 42}),
        sse_event({"type": "message_start", "message": {"id": "again"}}),
        sse_event({"type": "message_delta", "delta": {}, "usage": {}}),
        b"event: content_block_delta\ndata: {not json\n\n",
        b"data: \n\n",
        b": a comment\n\n",
        b'event: ping\ndata: {"type": "ping"}\n\n',
        b"\xff\xfe\n\n",
    ]
)


@st.composite
def mangled_streams(draw: st.DrawFn) -> list[bytes]:
    events = list(load_sse(draw(st.sampled_from(BASES))))
    for _ in range(draw(st.integers(0, 4))):
        match draw(st.sampled_from(["insert", "drop", "swap", "truncate", "corrupt"])):
            case "insert":
                events.insert(draw(st.integers(0, len(events))), draw(oddities))
            case "drop" if events:
                events.pop(draw(st.integers(0, len(events) - 1)))
            case "swap" if len(events) > 1:
                i = draw(st.integers(0, len(events) - 2))
                events[i], events[i + 1] = events[i + 1], events[i]
            case "truncate" if events:
                i = draw(st.integers(0, len(events) - 1))
                events[i] = events[i][: draw(st.integers(0, len(events[i])))]
                del events[i + 1 :]
            case "corrupt" if events:
                i = draw(st.integers(0, len(events) - 1))
                raw = events[i]
                cut = draw(st.integers(0, max(0, len(raw) - 3)))
                events[i] = raw[:cut] + b"}{" + raw[cut + 2 :]
    return [event for event in events if event]  # the replay server sends no empty writes


async def _consume(events: list[bytes]) -> str:
    async with ReplayServer() as server:
        server.script(Reply(events=events))
        model = LLM(api_key="k", base_url=server.url)
        ctx = ChatContext()
        ctx.add_message(role="user", content="hi")
        tool = tool_from_schema("get_weather", "", {"type": "object", "properties": {}})
        try:
            async with model.chat(
                chat_ctx=ctx, tools=[tool], conn_options=APIConnectOptions(max_retry=0, timeout=2)
            ) as stream:
                async for _ in stream:
                    pass
            return "finished"
        except APIError:
            return "api_error"
        finally:
            await model.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mangled_streams())
@example([b"\xff\xfe\n\n"])
def test_mangled_streams_end_in_output_or_an_api_error(events: list[bytes]) -> None:
    outcome = asyncio.run(asyncio.wait_for(_consume(events), timeout=10))
    assert outcome in ("finished", "api_error")


def test_a_stream_cut_before_message_stop_is_an_api_error_not_a_short_answer() -> None:
    events = load_sse("text")[:-2]
    assert asyncio.run(_consume(events)) == "api_error"


def test_bytes_that_are_not_utf8_are_an_api_error() -> None:
    events = load_sse("text")
    events.insert(1, b"\xff\xfe\n\n")
    assert asyncio.run(_consume(events)) == "api_error"


def test_invalid_json_in_an_event_is_an_api_error() -> None:
    events = load_sse("text")
    events.insert(2, b'event: content_block_delta\ndata: {"type": \n\n')
    assert asyncio.run(_consume(events)) == "api_error"
    assert json  # the module's json import documents the payloads above
