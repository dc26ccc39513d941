"""What LLM.chat sends: recorded by the replay server from real SDK requests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from livekit.agents import APIConnectOptions
from livekit.agents.llm import ChatContext, FunctionCall, FunctionCallOutput, function_tool
from llm_replay import ReplayServer, Reply, collect, load_sse, user_ctx

from relayq.llm import LLM, THINKING_EXTRA_KEY, ComputerUse, tool_from_schema

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)


@function_tool
async def get_weather(location: str) -> str:
    """Current weather for a location."""
    return "sunny"


@function_tool
async def get_time() -> str:
    """Current time."""
    return "noon"


async def sent(
    server: ReplayServer, llm: LLM, ctx: ChatContext | None = None, **chat: Any
) -> dict[str, Any]:
    """The JSON body of the one request `llm.chat(...)` sends."""
    server.script(Reply(events=load_sse("text")))
    await collect(llm.chat(chat_ctx=ctx or user_ctx(), conn_options=NO_RETRY, **chat))
    return server.requests[-1].body


async def test_plain_request_carries_model_messages_stream_and_default_max_tokens(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(), user_ctx("hello", system="be brief"))

    assert server.requests[0].path == "/v1/messages"
    assert body["model"] == "claude-sonnet-4-6"
    assert body["stream"] is True
    assert body["max_tokens"] == 1024
    assert body["system"] == [{"type": "text", "text": "be brief"}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert "tools" not in body and "tool_choice" not in body


async def test_options_map_to_request_fields_and_user_goes_to_metadata(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    llm = make_llm(model="claude-haiku-4-5", user="u-42", temperature=0.3, top_k=5, max_tokens=99)
    # SDK 1.0 dropped temperature and top_k from create(); they travel in extra_body
    body = await sent(server, llm)
    assert body["model"] == "claude-haiku-4-5"
    assert body["metadata"] == {"user_id": "u-42"}
    assert (body["temperature"], body["top_k"], body["max_tokens"]) == (0.3, 5, 99)


async def test_extra_kwargs_win_over_llm_options(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(max_tokens=99), extra_kwargs={"max_tokens": 7})
    assert body["max_tokens"] == 7


async def test_function_tools_are_sent_with_their_schemas(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(), tools=[get_weather, get_time])
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    weather = body["tools"][0]
    assert weather["description"] == "Current weather for a location."
    assert weather["input_schema"]["properties"]["location"]["type"] == "string"
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("auto", True, {"type": "auto", "disable_parallel_tool_use": False}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            {"type": "tool", "name": "get_time"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
async def test_tool_choice_and_parallel_tool_calls_map_to_anthropic_tool_choice(
    server: ReplayServer,
    make_llm: Callable[..., LLM],
    tool_choice: Any,
    parallel: bool | None,
    expected: dict[str, Any],
) -> None:
    chat: dict[str, Any] = {"tools": [get_weather, get_time]}
    if tool_choice is not None:
        chat["tool_choice"] = tool_choice
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    body = await sent(server, make_llm(), **chat)
    assert body["tool_choice"] == expected


async def test_llm_level_tool_choice_applies_when_chat_gives_none(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(
        server, make_llm(tool_choice="required", parallel_tool_calls=True), tools=[get_weather]
    )
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": False}


async def test_tool_choice_none_keeps_the_tool_definitions(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(), tools=[get_weather], tool_choice="none")
    assert [t["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tool_choice"] == {"type": "none"}


async def test_tool_from_schema_sends_exactly_the_given_schema(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    schema = {
        "type": "object",
        "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"}},
        "required": ["sku"],
        "additionalProperties": False,
    }
    tool = tool_from_schema("lookup_sku", "Find a product by SKU.", schema)
    body = await sent(server, make_llm(), tools=[tool])
    assert body["tools"] == [
        {"name": "lookup_sku", "description": "Find a product by SKU.", "input_schema": schema}
    ]


@pytest.mark.parametrize(
    ("name", "schema"),
    [("has space", {"type": "object"}), ("x" * 65, {"type": "object"}), ("ok", {"type": "array"})],
)
def test_tool_from_schema_rejects_names_and_schemas_the_api_would_reject(
    name: str, schema: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        tool_from_schema(name, "d", schema)


async def test_computer_use_tool_goes_to_the_beta_endpoint_with_its_beta_header(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    computer = ComputerUse(display_width_px=1024, display_height_px=768)
    body = await sent(server, make_llm(), tools=[get_weather, computer])

    request = server.requests[-1]
    # SDK 2.x keeps the beta qualifier out of the URL (1.x sent `?beta=true`)
    assert request.path == "/v1/messages"
    assert request.headers["anthropic-beta"] == "computer-use-2025-11-24"
    assert body["tools"][1] == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1024,
        "display_height_px": 768,
        "display_number": 1,
    }


async def test_betas_in_extra_kwargs_are_merged_with_tool_betas(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    await sent(
        server,
        make_llm(),
        tools=[ComputerUse()],
        extra_kwargs={"betas": ["interleaved-thinking-2025-05-14"]},
    )
    request = server.requests[-1]
    assert request.headers["anthropic-beta"] == (
        "interleaved-thinking-2025-05-14,computer-use-2025-11-24"
    )
    assert "betas" not in request.body


async def test_request_without_provider_tools_uses_the_regular_endpoint_without_betas(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    await sent(server, make_llm(), tools=[get_weather])
    assert server.requests[-1].path == "/v1/messages"
    assert "anthropic-beta" not in server.requests[-1].headers


def conversation() -> ChatContext:
    ctx = user_ctx("what's the weather?", system="be brief")
    ctx.add_message(role="assistant", content="Let me look.")
    ctx.insert(FunctionCall(call_id="toolu_1", name="get_weather", arguments='{"location":"P"}'))
    ctx.insert(
        FunctionCallOutput(call_id="toolu_1", name="get_weather", output="sunny", is_error=False)
    )
    ctx.add_message(role="assistant", content="It is sunny.")
    ctx.add_message(role="user", content="thanks")
    return ctx


async def test_caching_marks_system_last_tool_last_assistant_turn_and_the_user_turn_before(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(
        server, make_llm(caching="ephemeral"), conversation(), tools=[get_weather, get_time]
    )
    ephemeral = {"type": "ephemeral"}

    assert body["system"][-1]["cache_control"] == ephemeral
    assert [t.get("cache_control") for t in body["tools"]] == [None, ephemeral]
    marked = [
        (i, message["role"], j)
        for i, message in enumerate(body["messages"])
        for j, block in enumerate(message["content"])
        if "cache_control" in block
    ]
    # messages: user, assistant(text, tool_use), user(tool_result), assistant(text), user
    assert marked == [(2, "user", 0), (3, "assistant", 0)]


async def test_without_caching_nothing_is_marked(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(), conversation(), tools=[get_weather])
    assert "cache_control" not in str(body)


async def test_thinking_option_is_sent_and_default_max_tokens_leaves_room_for_the_budget(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(thinking={"type": "enabled", "budget_tokens": 2048}))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2048 + 1024


async def test_adaptive_thinking_can_be_passed_per_call(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    body = await sent(server, make_llm(), extra_kwargs={"thinking": {"type": "adaptive"}})
    assert body["thinking"] == {"type": "adaptive"}


async def test_thinking_blocks_round_trip_first_in_the_assistant_tool_use_message(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    llm = make_llm(thinking={"type": "enabled", "budget_tokens": 2048})
    ctx = user_ctx("weather in Paris?")
    server.script(Reply(events=load_sse("thinking_tool_use")))
    stream = llm.chat(chat_ctx=ctx, tools=[get_weather], conn_options=NO_RETRY)
    chunks = await collect(stream)
    blocks = [
        c.delta.extra["thinking_block"]
        for c in chunks
        if c.delta and c.delta.extra and "thinking_block" in c.delta.extra
    ]
    [call] = [call for c in chunks if c.delta for call in c.delta.tool_calls]

    ctx.insert(
        FunctionCall(
            call_id=call.call_id,
            name=call.name,
            arguments=call.arguments,
            extra={THINKING_EXTRA_KEY: blocks},
        )
    )
    ctx.insert(
        FunctionCallOutput(call_id=call.call_id, name=call.name, output="sunny", is_error=False)
    )
    body = await sent(server, llm, ctx, tools=[get_weather])

    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"] == [
        *blocks,
        {
            "type": "tool_use",
            "id": "toolu_01ThinkThenCall",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    ]
    assert blocks[0]["signature"].startswith("EqQB")


async def test_thinking_on_an_assistant_message_goes_before_its_text_and_tool_use_once(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    block = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    ctx = user_ctx("weather?")
    ctx.add_message(role="assistant", content="Let me look.", extra={THINKING_EXTRA_KEY: [block]})
    ctx.insert(
        FunctionCall(
            call_id="toolu_9",
            name="get_weather",
            arguments="{}",
            extra={THINKING_EXTRA_KEY: [block]},
        )
    )
    ctx.insert(
        FunctionCallOutput(call_id="toolu_9", name="get_weather", output="sunny", is_error=False)
    )
    body = await sent(server, make_llm(caching="ephemeral"), ctx, tools=[get_weather])

    content = body["messages"][1]["content"]
    assert [b["type"] for b in content] == ["thinking", "text", "tool_use"]
    assert content[0] == block
    assert content[1]["text"] == "Let me look."
    assert "cache_control" not in content[0]


def test_missing_api_key_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        LLM()


async def test_api_key_and_base_url_come_from_the_environment(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    async with LLM() as llm:
        await sent(server, llm)
    assert server.requests[-1].headers["authorization"] == "Bearer env-key"
    assert llm.provider == server.url.removeprefix("http://")
    assert llm.model == "claude-sonnet-4-6"


async def test_a_given_client_needs_no_api_key_and_is_not_closed_by_aclose(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    client = anthropic.AsyncClient(api_key="mine", base_url=server.url, max_retries=0)
    llm = LLM(client=client)
    await sent(server, llm)
    await llm.aclose()
    assert not client.is_closed()
    assert server.requests[-1].headers["authorization"] == "Bearer mine"
    await client.close()


def test_importing_llm_does_not_import_playwright() -> None:
    code = "import sys, llm; assert 'playwright' not in sys.modules, 'playwright imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
