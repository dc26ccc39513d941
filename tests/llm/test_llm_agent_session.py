"""relayq.llm.LLM in a real LiveKit AgentSession against the strict simulator: a tool loop with
extended thinking, where the follow-up request must carry the turn's signed thinking first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from livekit.agents import Agent, AgentSession, function_tool

from relayq.llm import LLM
from relayq.simulator import Simulator

THINKING = {"type": "enabled", "budget_tokens": 1024}


@function_tool
async def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: the city name
    """
    return f"Sunny and 21 degrees in {city}"


class WeatherAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You answer weather questions.", tools=[get_weather])


@pytest.fixture
async def thinking_llm(simulator: Simulator) -> AsyncIterator[LLM]:
    model = LLM(
        model="claude-sonnet-4-6",
        api_key="sk-test",
        base_url=simulator.base_url,
        max_tokens=4096,
        thinking=THINKING,
    )
    yield model
    await model.aclose()


async def test_a_tool_loop_with_thinking_sends_the_signed_thinking_back(
    thinking_llm: LLM, simulator: Simulator
) -> None:
    rejected_before = sum(simulator.stats["rejected"].values())
    async with AgentSession(llm=thinking_llm) as session:
        await session.start(WeatherAgent())
        result = await session.run(user_input="What is the weather in Paris?")

    result.expect.skip_next_event_if(type="message", role="assistant")
    call = result.expect.next_event().is_function_call(name="get_weather")
    result.expect.next_event().is_function_call_output()
    reply = result.expect.next_event().is_message(role="assistant")
    assert "Sunny and 21 degrees" in str(reply.event().item.content)
    blocks = call.event().item.extra["anthropic_thinking"]
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
    assert sum(simulator.stats["rejected"].values()) == rejected_before
