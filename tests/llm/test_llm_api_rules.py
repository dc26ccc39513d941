"""Requests LLM.chat builds, sent to the strict simulator: the API's documented rules hold for
what LiveKit contexts turn into (prefill, tool definitions in a tool history)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from livekit.agents import APIConnectOptions, APIStatusError
from livekit.agents.llm import ChatContext, FunctionCall, FunctionCallOutput, function_tool
from llm_replay import collect, text_of

from relayq.llm import LLM
from relayq.llm.models import model_accepts_prefill
from relayq.simulator import Simulator

NO_RETRY = APIConnectOptions(max_retry=0, timeout=10.0)


@function_tool
async def get_weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny"


@pytest.fixture
async def make_sim_llm(simulator: Simulator) -> AsyncIterator[Callable[..., LLM]]:
    made: list[LLM] = []

    def make(**kwargs: object) -> LLM:
        instance = LLM(api_key="sk-test", base_url=simulator.base_url, **kwargs)  # type: ignore[arg-type]
        made.append(instance)
        return instance

    yield make
    for instance in made:
        await instance.aclose()


def ending_with_the_assistant() -> ChatContext:
    ctx = ChatContext()
    ctx.add_message(role="user", content="What is the weather in Oslo?")
    ctx.add_message(role="assistant", content="Let me think about Oslo.")
    return ctx


def after_a_tool_call() -> ChatContext:
    ctx = ChatContext()
    ctx.add_message(role="user", content="What is the weather in Oslo?")
    arguments = '{"city": "Oslo"}'
    ctx.items.append(FunctionCall(call_id="toolu_1", name="get_weather", arguments=arguments))
    ctx.items.append(
        FunctionCallOutput(call_id="toolu_1", name="get_weather", output="sunny", is_error=False)
    )
    return ctx


async def test_a_context_ending_with_the_assistant_gets_a_user_turn_on_claude_4_6(
    make_sim_llm: Callable[..., LLM],
) -> None:
    stream = make_sim_llm(model="claude-sonnet-4-6").chat(
        chat_ctx=ending_with_the_assistant(), conn_options=NO_RETRY
    )
    assert text_of(await collect(stream)).startswith("Simulated reply to: .")


async def test_older_models_keep_the_prefill(make_sim_llm: Callable[..., LLM]) -> None:
    stream = make_sim_llm(model="claude-haiku-4-5").chat(
        chat_ctx=ending_with_the_assistant(), conn_options=NO_RETRY
    )
    # the simulator answers the last user turn: the prefill went out as the final turn
    assert text_of(await collect(stream)).startswith("Simulated reply to: What is the weather")


async def test_allow_prefill_overrides_what_the_model_id_says(
    make_sim_llm: Callable[..., LLM],
) -> None:
    stream = make_sim_llm(model="my-claude-alias", allow_prefill=False).chat(
        chat_ctx=ending_with_the_assistant(), conn_options=NO_RETRY
    )
    assert text_of(await collect(stream)).startswith("Simulated reply to: .")


@pytest.mark.parametrize(
    ("model", "accepts"),
    [
        ("claude-sonnet-4-6", False),
        ("us.anthropic.claude-opus-4-6-v1", False),
        ("claude-opus-4-8", False),
        ("claude-sonnet-5", False),
        ("claude-opus-4-5-20251101", True),
        ("claude-haiku-4-5", True),
        ("claude-3-7-sonnet-20250219", True),
        ("my-claude-alias", True),
    ],
)
def test_prefill_is_off_from_claude_4_6(model: str, accepts: bool) -> None:
    assert model_accepts_prefill(model) is accepts


async def test_tool_choice_none_after_a_tool_call_keeps_the_tools_the_history_needs(
    make_sim_llm: Callable[..., LLM],
) -> None:
    stream = make_sim_llm(model="claude-sonnet-4-6").chat(
        chat_ctx=after_a_tool_call(),
        tools=[get_weather],
        tool_choice="none",
        conn_options=NO_RETRY,
    )
    chunks = await collect(stream)
    assert text_of(chunks).startswith("The tool said: sunny.")
    assert not [c for c in chunks if c.delta and c.delta.tool_calls]


async def test_empty_texts_of_a_livekit_context_never_become_empty_text_blocks(
    make_sim_llm: Callable[..., LLM],
) -> None:
    ctx = ChatContext()
    ctx.add_message(role="system", content="")
    ctx.add_message(role="user", content=["", "What is the weather in Oslo?"])
    ctx.add_message(role="assistant", content="")
    ctx.add_message(role="user", content="")
    stream = make_sim_llm(model="claude-sonnet-4-6").chat(chat_ctx=ctx, conn_options=NO_RETRY)
    assert text_of(await collect(stream)).startswith("Simulated reply to: What is the weather")


async def test_a_failure_after_thinking_was_streamed_is_final_not_retried(
    make_sim_llm: Callable[..., LLM],
) -> None:
    ctx = ChatContext()
    ctx.add_message(role="user", content="[[sim:midstream=overloaded_error after=2]] Think first")
    llm = make_sim_llm(
        model="claude-sonnet-4-6",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    stream = llm.chat(
        chat_ctx=ctx, conn_options=APIConnectOptions(max_retry=1, retry_interval=0, timeout=10)
    )
    thinking: list[str] = []
    with pytest.raises(APIStatusError) as info:
        async with stream:
            async for chunk in stream:
                if chunk.delta and chunk.delta.extra and "thinking" in chunk.delta.extra:
                    thinking.append(chunk.delta.extra["thinking"])
    assert info.value.status_code == 529 and info.value.retryable is False
    assert len(thinking) == 2, "the thinking was delivered once, not again by a retry"


async def test_a_thinking_tag_in_the_middle_of_a_reply_is_kept_when_tools_are_offered(
    make_sim_llm: Callable[..., LLM],
) -> None:
    ctx = ChatContext()
    ctx.add_message(role="user", content="Explain what <thinking> tags are for")
    stream = make_sim_llm(model="claude-sonnet-4-6").chat(
        chat_ctx=ctx, tools=[get_weather], tool_choice="none", conn_options=NO_RETRY
    )
    text = text_of(await collect(stream))
    assert text.startswith("Simulated reply to: Explain what <thinking> tags are for.")
