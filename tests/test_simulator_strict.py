"""Strict mode: the simulator rejects, with the real API's 400, every request the Messages API is
documented to reject (see "Strict mode" in relayq.simulator's docstring for the sources), and
accepts the same request put right. Requests go through the official SDK over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest

from relayq.simulator import Simulator, scripted_computer_turn
from relayq.simulator.strict import claude_version, model_rejects_prefill
from tests.pngs import png_base64

MODEL = "claude-sim-1"
NO_PREFILL_MODEL = "claude-sonnet-4-6"
COMPUTER_BETA = "computer-use-2025-11-24"
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
COMPUTER: dict[str, Any] = {
    "type": "computer_20251124",
    "name": "computer",
    "display_width_px": 1280,
    "display_height_px": 720,
}
THINKING: dict[str, Any] = {"type": "enabled", "budget_tokens": 1024}


def image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(content)}


def assistant(*content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(tool_id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {"city": "Oslo"}}


def result(tool_id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "sunny"}


ASK = user(text("What is the weather in Oslo?"))
LOOP = [ASK, assistant(text("Checking."), call()), user(result())]


@dataclass
class Case:
    """A request the API rejects (`rejected`) and the same request put right (`accepted`)."""

    rule: str
    rejected: dict[str, Any]
    accepted: dict[str, Any]
    message: str
    betas: list[str] = field(default_factory=list)
    accepted_betas: list[str] | None = None


def body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 2048, "messages": messages, **extra}


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(strict=True) as server:
        yield server


@pytest.fixture(scope="module")
async def sdk(sim: Simulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key="sk-test", max_retries=0
    ) as client:
        yield client


async def send(
    sdk: anthropic.AsyncAnthropic, request: dict[str, Any], betas: list[str] | None = None
) -> Any:
    # SDK 1.0 left the sampling parameters out of create(); the API still takes them
    sampling = {k: request[k] for k in ("temperature", "top_k", "top_p") if k in request}
    request = {k: v for k, v in request.items() if k not in sampling}
    if betas:
        return await sdk.beta.messages.create(betas=betas, extra_body=sampling, **request)
    return await sdk.messages.create(extra_body=sampling, **request)


async def signed_tool_turn(sdk: anthropic.AsyncAnthropic) -> dict[str, Any]:
    """The assistant turn the simulator gives a thinking request with a tool: signed thinking
    first, then the tool_use, exactly as the API returns it."""
    reply = await send(sdk, body([ASK], tools=[WEATHER], thinking=THINKING))
    assert [b.type for b in reply.content] == ["thinking", "text", "tool_use"]
    return assistant(*[b.model_dump(exclude_none=True, exclude={"caller"}) for b in reply.content])


CASES = [
    Case(
        "unknown_betas",
        body([ASK]),
        body([ASK]),
        "Unexpected value(s) `made-up-2099-01-01` for the `anthropic-beta` header",
        betas=["made-up-2099-01-01"],
        accepted_betas=["interleaved-thinking-2025-05-14"],
    ),
    Case(
        "computer_tool_without_its_beta",
        body([ASK], tools=[COMPUTER]),
        body([ASK], tools=[COMPUTER]),
        "requires the `anthropic-beta: computer-use-2025-11-24` header",
        betas=["computer-use-2025-01-24"],
        accepted_betas=[COMPUTER_BETA],
    ),
    Case(
        "computer_tool_without_its_beta",
        body([ASK], tools=[{**COMPUTER, "type": "computer_20990101"}]),
        body([ASK], tools=[COMPUTER]),
        "unknown computer tool version `computer_20990101`",
        betas=[COMPUTER_BETA],
        accepted_betas=[COMPUTER_BETA],
    ),
    Case(
        "thinking_budget_outside_limits",
        body([ASK], thinking={"type": "enabled", "budget_tokens": 512}),
        body([ASK], thinking=THINKING),
        "budget_tokens: Input should be greater than or equal to 1024",
    ),
    Case(
        "thinking_budget_outside_limits",
        body([ASK], max_tokens=1024, thinking=THINKING),
        body([ASK], max_tokens=1025, thinking=THINKING),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    Case(
        "thinking_with_forced_tool_use",
        body([ASK], tools=[WEATHER], tool_choice={"type": "any"}, thinking=THINKING),
        body([ASK], tools=[WEATHER], tool_choice={"type": "auto"}, thinking=THINKING),
        "Thinking may not be enabled when tool_choice forces tool use.",
    ),
    Case(
        "thinking_with_sampling_changes",
        body([ASK], temperature=0.2, thinking=THINKING),
        body([ASK], temperature=1, thinking=THINKING),
        "`temperature` may only be set to 1 when thinking is enabled",
    ),
    Case(
        "empty_text_or_content",
        body([user(text("Hello"), text(""))]),
        body([user(text("Hello"))]),
        "messages: text content blocks must be non-empty",
    ),
    Case(
        "empty_text_or_content",
        body([ASK, {"role": "assistant", "content": ""}, user(text("Go on"))]),
        body([ASK, {"role": "assistant", "content": "Sure."}, user(text("Go on"))]),
        "messages.1: all messages must have non-empty content",
    ),
    Case(
        "tool_history_without_tools",
        body(LOOP),
        body(LOOP, tools=[WEATHER], tool_choice={"type": "none"}),
        "Requests which include `tool_use` or `tool_result` blocks must define tools.",
    ),
    Case(
        "tool_results_not_after_their_tool_use",
        body([ASK, assistant(call()), user(text("never mind"))], tools=[WEATHER]),
        body([ASK, assistant(call()), user(result(), text("never mind"))], tools=[WEATHER]),
        "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    Case(
        "tool_results_not_after_their_tool_use",
        body([ASK, assistant(call()), user(text("Here:"), result())], tools=[WEATHER]),
        body([ASK, assistant(call()), user(result(), text("Here:"))], tools=[WEATHER]),
        "Did not find 1 `tool_result` block(s) at the beginning of this message",
    ),
    Case(
        "tool_results_not_after_their_tool_use",
        body([ASK, assistant(call()), user(result(), result("toolu_2"))], tools=[WEATHER]),
        body(
            [ASK, assistant(call(), call("toolu_2")), user(result(), result("toolu_2"))],
            tools=[WEATHER],
        ),
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_2",
    ),
    Case(
        "prefill_on_a_model_without_it",
        body([ASK, assistant(text("The weather in Oslo is"))], model=NO_PREFILL_MODEL),
        body([ASK, assistant(text("The weather in Oslo is"))], model="claude-haiku-4-5"),
        "This model does not support assistant message prefill.",
    ),
    Case(
        "oversized_or_unreadable_images",
        body([user(image(png_base64(8001, 2)), text("What is this?"))]),
        body([user(image(png_base64(8000, 2)), text("What is this?"))]),
        "At least one of the image dimensions exceed max allowed size: 8000 pixels",
    ),
    Case(
        "oversized_or_unreadable_images",
        body([user(*[image(png_base64(2001, 1))] * 21, text("Compare."))]),
        body([user(*[image(png_base64(2000, 1))] * 21, text("Compare."))]),
        "exceed max allowed size for many-image requests: 2000 pixels",
    ),
    Case(
        "oversized_or_unreadable_images",
        body([user(image(png_base64(4, 4), "image/jpeg"), text("What is this?"))]),
        body([user(image(png_base64(4, 4)), text("What is this?"))]),
        "Image does not match the provided media type image/jpeg",
    ),
    Case(
        "oversized_or_unreadable_images",
        body([user(image(base64.b64encode(b"\x89PNG not really").decode()), text("?"))]),
        body([user(image(png_base64(1, 1)), text("?"))]),
        "Could not process image",
    ),
    Case(
        "oversized_or_unreadable_images",
        body([user(image("A" * (5 * 1024 * 1024 + 4)), text("?"))]),
        body([user(image(png_base64(1, 1)), text("?"))]),
        "image exceeds 5 MB maximum",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}:{c.message[:40]}")
async def test_a_request_the_api_rejects_gets_its_400_and_the_corrected_one_passes(
    sim: Simulator, sdk: anthropic.AsyncAnthropic, case: Case
) -> None:
    before = sim.stats["rejected"].get(case.rule, 0)
    with pytest.raises(anthropic.BadRequestError) as info:
        await send(sdk, case.rejected, case.betas)
    error = info.value
    assert error.status_code == 400
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "invalid_request_error"
    assert case.message in error.body["error"]["message"]
    assert error.request_id == error.body["request_id"]
    assert sim.stats["rejected"][case.rule] == before + 1

    accepted_betas = case.accepted_betas if case.accepted_betas is not None else case.betas
    reply = await send(sdk, case.accepted, accepted_betas)
    assert reply.stop_reason in ("end_turn", "tool_use")


async def test_a_tool_loop_with_thinking_needs_its_signed_thinking_first(
    sim: Simulator, sdk: anthropic.AsyncAnthropic
) -> None:
    turn = await signed_tool_turn(sdk)
    tool_id = turn["content"][-1]["id"]
    without = assistant(*[b for b in turn["content"] if b["type"] != "thinking"])
    loop = [ASK, without, user(result(tool_id))]
    with pytest.raises(anthropic.BadRequestError) as info:
        await send(sdk, body(loop, tools=[WEATHER], thinking=THINKING))
    assert "Expected `thinking` or `redacted_thinking`, but found `text`" in info.value.message

    reply = await send(
        sdk, body([ASK, turn, user(result(tool_id))], tools=[WEATHER], thinking=THINKING)
    )
    assert reply.stop_reason == "end_turn"
    # without thinking the same history is fine: the requirement comes with `thinking`
    await send(sdk, body(loop, tools=[WEATHER]))


async def test_thinking_must_come_back_unmodified(sdk: anthropic.AsyncAnthropic) -> None:
    turn = await signed_tool_turn(sdk)
    tool_id = turn["content"][-1]["id"]
    edited = {**turn["content"][0], "thinking": turn["content"][0]["thinking"].strip() + " "}
    tampered = assistant(edited, *turn["content"][1:])
    with pytest.raises(anthropic.BadRequestError) as info:
        await send(
            sdk, body([ASK, tampered, user(result(tool_id))], tools=[WEATHER], thinking=THINKING)
        )
    assert "Invalid `signature` in `thinking` block" in info.value.message


async def test_strict_mode_also_checks_token_counting(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="must define tools"):
        await sdk.messages.count_tokens(model=MODEL, messages=LOOP)  # type: ignore[arg-type]


async def test_a_lenient_simulator_accepts_what_the_api_rejects() -> None:
    rejected = CASES[0]
    async with (
        Simulator(strict=False) as lenient,
        anthropic.AsyncAnthropic(base_url=lenient.base_url, api_key="k", max_retries=0) as sdk,
    ):
        for case in (c for c in CASES if c.rule != "unknown_betas"):
            reply = await send(sdk, case.rejected, case.betas)
            assert reply.content
        assert await send(sdk, rejected.rejected, rejected.betas)
        assert lenient.stats["rejected"] == {}


def test_the_scripted_turn_of_a_computer_request_is_valid_history() -> None:
    """Replies the simulator scripts are turns the strict rules accept when sent back."""
    first = body([user(text("[[sim:plan=look]] look"))], tools=[COMPUTER], thinking=THINKING)
    turn = scripted_computer_turn(first)
    assert [b["type"] for b in turn["content"]] == ["thinking", "text", "tool_use"]


@pytest.mark.parametrize(
    ("model", "version", "rejects_prefill"),
    [
        ("claude-sonnet-4-6", (4, 6), True),
        ("claude-opus-4-8", (4, 8), True),
        ("claude-opus-4-5-20251101", (4, 5), False),
        ("claude-haiku-4-5", (4, 5), False),
        ("claude-3-7-sonnet-20250219", (3, 7), False),
        ("claude-sonnet-5", (5,), True),
        ("claude-sim-1", (), False),
        ("claude-mythos-preview", (), False),
    ],
)
def test_prefill_is_refused_from_claude_4_6_on(
    model: str, version: tuple[int, ...], rejects_prefill: bool
) -> None:
    assert claude_version(model) == version
    assert model_rejects_prefill(model) is rejects_prefill
