"""Recorded transcripts served over HTTP to the real SDK, parsed into ChatChunks."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from livekit.agents import APIConnectionError, APIConnectOptions
from livekit.agents.llm import function_tool
from llm_replay import (
    ReplayServer,
    Reply,
    collect,
    load_sse,
    sse_event,
    text_of,
    tool_calls_of,
    user_ctx,
)

from relayq.llm import LLM, THINKING_EXTRA_KEY, LLMStream

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)


@function_tool
async def get_weather(location: str) -> str:
    """Current weather for a location."""
    return "sunny"


async def test_text_deltas_arrive_in_order_followed_by_one_usage_chunk(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text")))
    stream = make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY)
    chunks = await collect(stream)

    assert [c.delta.content for c in chunks if c.delta] == ["Hello", " world", "!"]
    assert all(c.id == "msg_01TextHello" for c in chunks)
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and chunks[-1].usage is usage[0]
    assert (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (
        25,
        12,
        37,
    )


async def test_stop_reason_request_id_and_message_id_are_known_after_iteration(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("tool_use_split_json"), headers={"request-id": "req_abc"}))
    stream = make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    assert isinstance(stream, LLMStream) and stream.stop_reason is None
    await collect(stream)

    assert stream.stop_reason == "tool_use"
    assert stream.request_id == "req_abc"
    assert stream.message_id == "msg_01ToolSplit"


async def test_tool_use_json_split_across_deltas_becomes_one_call_with_joined_arguments(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("tool_use_split_json")))
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    )

    calls = tool_calls_of(chunks)
    assert [(c.name, c.call_id) for c in calls] == [
        ("get_weather", "toolu_01WeatherParis"),
        ("get_time", "toolu_02ClockNoArgs"),
    ]
    assert json.loads(calls[0].arguments) == {"location": "Paris", "unit": "celsius"}
    assert text_of(chunks) == "Checking the weather."


async def test_tool_use_without_input_deltas_gets_an_empty_object(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("tool_use_split_json")))
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    )
    assert tool_calls_of(chunks)[1].arguments == "{}"


async def test_invalid_tool_json_is_delivered_raw_and_the_stream_completes(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("tool_use_invalid_json")))
    stream = make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    chunks = await collect(stream)

    [call] = tool_calls_of(chunks)
    assert call.arguments == '{"location": "Paris", "unit": celsius}'
    assert stream.stop_reason == "tool_use"
    assert chunks[-1].usage is not None


async def test_cache_creation_and_read_tokens_count_into_prompt_tokens(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("cache_usage")))
    chunks = await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == 20 + 1200 + 3400
    assert usage.cache_creation_tokens == 1200
    assert usage.cache_read_tokens == usage.prompt_cached_tokens == 3400
    assert usage.completion_tokens == 30
    assert usage.total_tokens == 20 + 1200 + 3400 + 30


async def test_pings_unknown_events_and_server_tool_blocks_produce_nothing(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("ping_unknown_events")))
    chunks = await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    assert text_of(chunks) == "Found it."
    assert tool_calls_of(chunks) == []
    assert [c for c in chunks if c.delta and c.delta.extra] == []


async def test_events_cut_into_small_network_pieces_parse_the_same(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("tool_use_split_json"), split=7))
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    )
    assert json.loads(tool_calls_of(chunks)[0].arguments)["location"] == "Paris"


async def test_inline_thinking_tags_are_stripped_when_tools_are_offered_even_when_split(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("inline_thinking_tags")))
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    )
    assert text_of(chunks) == "Let me check."
    assert len(tool_calls_of(chunks)) == 1


async def test_a_thinking_tag_inside_the_answer_is_kept_when_tools_are_offered(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    pieces = ["Wrap it in <thin", "king>...</thin", "king> tags."]
    start, *_, stop, message_delta, message_stop = load_sse("text")
    deltas = [
        sse_event(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        )
        for p in pieces
    ]
    block = sse_event(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    )
    server.script(Reply(events=[start, block, *deltas, stop, message_delta, message_stop]))
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY)
    )
    assert text_of(chunks) == "".join(pieces)


async def test_inline_thinking_tags_are_kept_as_text_without_tools(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("inline_thinking_tags")))
    chunks = await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert text_of(chunks).startswith("<thinking>The user asks")


async def test_thinking_deltas_stream_as_extra_and_the_signed_block_arrives_at_its_stop(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("thinking_tool_use")))
    stream = make_llm(thinking={"type": "enabled", "budget_tokens": 2048}).chat(
        chat_ctx=user_ctx(), tools=[get_weather], conn_options=NO_RETRY
    )
    chunks = await collect(stream)

    extras = [c.delta.extra for c in chunks if c.delta and c.delta.extra]
    assert extras[:2] == [
        {"thinking": "The user wants the weather in Paris."},
        {"thinking": " I should call get_weather."},
    ]
    assert all(c.delta.content is None for c in chunks if c.delta and c.delta.extra)
    signed = {
        "type": "thinking",
        "thinking": "The user wants the weather in Paris. I should call get_weather.",
        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
        "4zGsXxKqZ1bFHNRf0zSk8Zq0Ik",
    }
    redacted = {
        "type": "redacted_thinking",
        "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3"
        "qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj",
    }
    assert extras[2:] == [
        {"thinking_block": signed, THINKING_EXTRA_KEY: [signed]},
        {"thinking_block": redacted, THINKING_EXTRA_KEY: [signed, redacted]},
    ]
    [call] = tool_calls_of(chunks)
    assert call.extra == {THINKING_EXTRA_KEY: [signed, redacted]}
    assert stream.thinking_blocks == [signed, redacted]
    usage = chunks[-1].usage
    assert usage is not None and usage.reasoning_tokens == 97


async def test_a_stream_that_ends_before_message_stop_is_a_connection_error(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text")[:4]))
    stream = make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY)
    with pytest.raises(APIConnectionError) as info:
        await collect(stream)
    assert "message_stop" in str(info.value)
    assert info.value.retryable is False
