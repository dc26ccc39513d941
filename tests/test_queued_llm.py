"""QueuedLLM: LiveKit's LLM interface, served by the relayq fleet."""

from __future__ import annotations

import asyncio

import pytest
from livekit.agents import Agent, AgentSession, APIStatusError, function_tool
from livekit.agents.llm import ChatContext
from livekit.agents.metrics import LLMMetrics

from relayq.client import Client
from relayq.queued_llm import QueuedLLM
from relayq.schemas.jobs import THINKING_EXTRA_KEY, ChatJob
from relayq.simulator import Simulator, scripted_reply
from tests.conftest import WorkerProcess


@pytest.fixture
async def queued(client: Client, worker: WorkerProcess) -> QueuedLLM:
    return QueuedLLM(client=client, model="claude-sonnet-4-6")


def user_turn(text: str) -> ChatContext:
    ctx = ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def test_chat_streams_the_jobs_text_as_chat_chunks(queued: QueuedLLM) -> None:
    chunks = []
    async with queued.chat(chat_ctx=user_turn("Hello via the queue")) as stream:
        async for chunk in stream:
            chunks.append(chunk)

    text = "".join(c.delta.content or "" for c in chunks if c.delta)
    assert text == scripted_reply(
        {"messages": [{"role": "user", "content": "Hello via the queue"}]}
    )
    assert any(c.usage is not None and c.usage.completion_tokens > 0 for c in chunks)


async def test_metrics_collected_reports_ttft_and_tokens(queued: QueuedLLM) -> None:
    seen: list[LLMMetrics] = []
    queued.on("metrics_collected", seen.append)

    async with queued.chat(chat_ctx=user_turn("Measure me")) as stream:
        async for _ in stream:
            pass
    await asyncio.sleep(0)  # the metrics task runs after the last chunk

    assert seen and seen[-1].ttft > 0 and seen[-1].completion_tokens > 0


async def test_a_terminal_error_raises_the_matching_api_error(queued: QueuedLLM) -> None:
    with pytest.raises(APIStatusError) as raised:
        async with queued.chat(chat_ctx=user_turn("[[sim:fail=400]] refuse")) as stream:
            async for _ in stream:
                pass

    assert raised.value.status_code == 400
    assert raised.value.retryable is False


async def test_output_of_a_voided_attempt_is_not_yielded_twice(queued: QueuedLLM) -> None:
    prompt = "[[sim:midstream=overloaded_error after=4]] restart me"
    text = ""
    async with queued.chat(
        chat_ctx=user_turn(prompt), extra_kwargs={"restart_after_output": True}
    ) as stream:
        async for chunk in stream:
            text += (chunk.delta.content or "") if chunk.delta else ""

    assert text == scripted_reply({"messages": [{"role": "user", "content": prompt}]})


async def test_closing_the_stream_cancels_the_job(queued: QueuedLLM, client: Client) -> None:
    stream = queued.chat(chat_ctx=user_turn("[[sim:tokens=300 rate=30]] take your time"))
    async for _ in stream:
        break
    await stream.aclose()

    events = [e.event async for e in client.events(stream.job.id)]
    assert events[-1].type == "cancelled"


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


async def test_an_agent_session_turn_runs_its_tool_call_through_the_queue(
    queued: QueuedLLM,
) -> None:
    async with AgentSession(llm=queued) as session:
        await session.start(WeatherAgent())
        result = await session.run(user_input="What is the weather in Paris?")

    result.expect.skip_next_event_if(type="message", role="assistant")
    call = result.expect.next_event().is_function_call(name="get_weather")
    result.expect.next_event().is_function_call_output()
    reply = result.expect.next_event().is_message(role="assistant")
    assert "Sunny and 21 degrees" in str(reply.event().item.content)
    assert call.event().item.arguments


async def test_an_agent_session_tool_loop_with_thinking_sends_the_signed_thinking_back(
    client: Client, worker: WorkerProcess, simulator: Simulator
) -> None:
    thinking = QueuedLLM(
        client=client,
        model="claude-sonnet-4-6",
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    rejected_before = sum(simulator.stats["rejected"].values())
    async with AgentSession(llm=thinking) as session:
        await session.start(WeatherAgent())
        result = await session.run(user_input="What is the weather in Oslo?")

    result.expect.skip_next_event_if(type="message", role="assistant")
    call = result.expect.next_event().is_function_call(name="get_weather")
    result.expect.next_event().is_function_call_output()
    reply = result.expect.next_event().is_message(role="assistant")
    assert "Sunny and 21 degrees" in str(reply.event().item.content)
    blocks = call.event().item.extra[THINKING_EXTRA_KEY]
    assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
    assert sum(simulator.stats["rejected"].values()) == rejected_before


def test_a_thinking_job_leaves_room_for_the_reply_in_max_tokens() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    assert ChatJob(prompt="hi", thinking=thinking).max_tokens == 1024 + 2048
    with pytest.raises(ValueError, match=r"max_tokens \(2048\) must be greater"):
        ChatJob(prompt="hi", thinking=thinking, max_tokens=2048)
