"""The simulator's scripted computer-use mode, and the demo page its `signup` plan fills in.

The conversation is driven the way relayq's computer-use loop drives the real API: the beta
streaming endpoint with a computer_20251124 tool, assistant turns fed back verbatim, tool_results
carrying screenshots (or error text). The browser tests run each plan's actions through the real
ComputerTool on a real Chromium page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from relayq.simulator import (
    COMPUTER_PLANS,
    DEMO_SIGNUP_TARGETS,
    IMAGE_TOKENS,
    SMALL_TARGET,
    Simulator,
    computer_plan,
    computer_step,
    count_input_tokens,
    model_view,
    scripted_computer_turn,
)
from tests.pngs import png_base64

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
MODEL = "claude-sim-computer"
BETAS = ["computer-use-2025-11-24"]
WIDTH, HEIGHT = 1280, 720
COMPUTER_TOOL: dict[str, Any] = {
    "type": "computer_20251124",
    "name": "computer",
    "display_width_px": WIDTH,
    "display_height_px": HEIGHT,
    "display_number": 1,
}
# a real 1x1 PNG (strict mode reads every image's header, as the API does)
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2e2"
        "9b5d0000000049454e44ae426082"
    )
).decode()


SIGNUP_STEPS = [
    "Step 1 of 7: clicking the Name field.",
    "Step 2 of 7: typing the name.",
    "Step 3 of 7: clicking the Email field.",
    "Step 4 of 7: typing the email address.",
    "Step 5 of 7: ticking the terms checkbox.",
    "Step 6 of 7: clicking Create account.",
    "Step 7 of 7: taking a screenshot to check the result.",
]


def screenshot_result(tool_use_id: str, data: str = PNG_1PX) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
        ],
    }


def error_result(tool_use_id: str, message: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "is_error": True,
        "content": [{"type": "text", "text": message}],
    }


def computer_body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [COMPUTER_TOOL],
        "messages": messages,
        **extra,
    }


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as server:
        yield server


@pytest.fixture(scope="module")
async def sdk(sim: Simulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key="sk-test", max_retries=0
    ) as client:
        yield client


class Turn:
    """One streamed assistant turn, accumulated from the raw beta stream events."""

    def __init__(self) -> None:
        self.content: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.json_pieces = 0
        self._partial: dict[int, str] = {}

    @property
    def text(self) -> str:
        return "".join(b["text"] for b in self.content if b["type"] == "text")

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b["type"] == "tool_use"]

    def add(self, event: Any) -> None:
        if event.type == "message_start":
            self.usage = event.message.usage.model_dump()
        elif event.type == "content_block_start":
            block = event.content_block.model_dump(exclude_none=True)
            block.pop("caller", None)
            self.content.append(block)
        elif event.type == "content_block_delta":
            block = self.content[event.index]
            if event.delta.type == "text_delta":
                block["text"] += event.delta.text
            elif event.delta.type == "input_json_delta":
                self._partial[event.index] = (
                    self._partial.get(event.index, "") + event.delta.partial_json
                )
                self.json_pieces += 1
        elif event.type == "content_block_stop":
            if event.index in self._partial:
                self.content[event.index]["input"] = json.loads(self._partial.pop(event.index))
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason
            self.usage.update(event.usage.model_dump(exclude_none=True))


async def take_turn(sdk: anthropic.AsyncAnthropic, body: dict[str, Any]) -> Turn:
    turn = Turn()
    stream = await sdk.beta.messages.create(betas=BETAS, stream=True, **body)
    async for event in stream:
        turn.add(event)
    assert turn.stop_reason is not None
    return turn


def assert_matches_script(turn: Turn, body: dict[str, Any]) -> None:
    expected = scripted_computer_turn(body)
    assert turn.stop_reason == expected["stop_reason"]
    assert turn.content == [
        {k: v for k, v in block.items() if k != "caller"} for block in expected["content"]
    ]


async def drive(
    sdk: anthropic.AsyncAnthropic,
    task: str,
    *,
    turns: int,
    errors: dict[int, str] | None = None,
    **extra: Any,
) -> tuple[list[Turn], list[dict[str, Any]]]:
    """Run up to `turns` model turns, answering each tool_use with a screenshot (or the error
    given for that step). Returns the turns and the conversation so far."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    seen: list[Turn] = []
    for index in range(turns):
        body = computer_body(messages, **extra)
        assert computer_step(body) == index
        turn = await take_turn(sdk, body)
        assert_matches_script(turn, body)
        seen.append(turn)
        messages.append({"role": "assistant", "content": turn.content})
        if turn.stop_reason != "tool_use":
            break
        (tool_use,) = turn.tool_uses
        if errors and index in errors:
            result = error_result(tool_use["id"], errors[index])
        else:
            result = screenshot_result(tool_use["id"])
        messages.append({"role": "user", "content": [result]})
    return seen, messages


# --------------------------------------------------------------------------- plans over HTTP


async def test_signup_plan_turn_by_turn(sdk: anthropic.AsyncAnthropic) -> None:
    task = "Sign up for Acme Cloud as Ada Lovelace. [[sim:plan=signup]]"
    turns, messages = await drive(sdk, task, turns=20)

    assert len(turns) == len(COMPUTER_PLANS["signup"]) + 1
    for index, (turn, action) in enumerate(zip(turns, COMPUTER_PLANS["signup"], strict=False)):
        assert turn.stop_reason == "tool_use"
        assert turn.text == SIGNUP_STEPS[index]
        assert turn.tool_uses == [
            {
                "type": "tool_use",
                "id": f"toolu_sim_{index + 1}",
                "name": "computer",
                "input": action,
            }
        ]
        assert turn.json_pieces > 1  # the input arrives as several input_json_delta pieces
    final = turns[-1]
    assert final.stop_reason == "end_turn" and not final.tool_uses
    assert final.text == (
        "Task complete: created the Acme Cloud account for Ada Lovelace (ada@example.com)."
    )
    assert [a["action"] for a in COMPUTER_PLANS["signup"]] == [
        "left_click", "type", "left_click", "type", "left_click", "left_click", "screenshot"
    ]  # fmt: skip

    # the loop's last request after its step budget: tools declared (the history holds tool_use
    # blocks) but tool_choice none, asking for a summary
    last_results = messages[6]["content"]
    ask = {"type": "text", "text": "Step budget exhausted. Summarise what you did."}
    budget_cut = [*messages[:6], {"role": "user", "content": [*last_results, ask]}]
    summary_body = computer_body(budget_cut, max_tokens=512, tool_choice={"type": "none"})
    summary = await take_turn(sdk, summary_body)
    assert_matches_script(summary, summary_body)
    assert summary.stop_reason == "end_turn" and not summary.tool_uses
    assert summary.text.startswith("Summary: I stopped after 3 of the 7 actions of the signup plan")
    assert "none of them failed" in summary.text


async def test_loop_plan_repeats_forever(sdk: anthropic.AsyncAnthropic) -> None:
    turns, _ = await drive(sdk, "Click it. [[sim:plan=loop]]", turns=12)
    assert len(turns) == 12
    assert all(t.stop_reason == "tool_use" for t in turns)
    assert {json.dumps(t.tool_uses[0]["input"]) for t in turns} == {
        json.dumps({"action": "left_click", "coordinate": list(DEMO_SIGNUP_TARGETS["submit"])})
    }
    assert turns[11].text == "Step 12: clicking Create account."
    assert len({t.tool_uses[0]["id"] for t in turns}) == 12


async def test_bad_plan_reports_errors_and_goes_on(sdk: anthropic.AsyncAnthropic) -> None:
    errors = {
        0: "coordinate (5000, 5000) is outside the 1280x720 display",
        1: "unknown action 'teleport'; expected one of double_click, key, left_click",
    }
    turns, messages = await drive(sdk, "Misbehave. [[sim:plan=bad]]", turns=10, errors=errors)
    assert [t.tool_uses[0]["input"] for t in turns[:3]] == COMPUTER_PLANS["bad"]
    assert turns[0].text == "Step 1 of 3: clicking far outside the screen."
    assert turns[1].text == (
        "The last action failed: coordinate (5000, 5000) is outside the 1280x720 display. "
        "Step 2 of 3: trying the teleport action."
    )
    assert turns[2].text == (
        "The last action failed: unknown action 'teleport'; expected one of double_click, key... "
        "Step 3 of 3: taking a screenshot."
    )
    assert turns[3].text == "Task complete: tried two invalid actions, then took a screenshot."
    assert turns[3].stop_reason == "end_turn"

    summary_body = {"model": MODEL, "max_tokens": 512, "messages": [
        *messages, {"role": "user", "content": "Summarise."}]}  # fmt: skip
    summary_text = scripted_computer_turn(summary_body)["content"][0]["text"]
    assert summary_text == (
        "Summary: I tried two invalid actions, then took a screenshot, in 3 actions; "
        "2 of them failed."
    )


async def test_plan_from_system_prompt_and_default_plan(sdk: anthropic.AsyncAnthropic) -> None:
    system = [{"type": "text", "text": "You operate a browser. [[sim:plan=scroll]]"}]
    turns, _ = await drive(sdk, "Look further down the page.", turns=5, system=system)
    assert [t.tool_uses[0]["input"] for t in turns if t.tool_uses] == COMPUTER_PLANS["scroll"]
    assert COMPUTER_PLANS["scroll"][0] == {
        "action": "scroll", "coordinate": [640, 360], "scroll_direction": "down", "scroll_amount": 5
    }  # fmt: skip

    # the task's directive wins over the system prompt's
    body = computer_body([{"role": "user", "content": "[[sim:plan=bad]]"}], system=system)
    assert computer_plan(body) == COMPUTER_PLANS["bad"]

    turns, _ = await drive(sdk, "What is on the screen?", turns=5)
    assert [t.tool_uses[0]["input"] for t in turns if t.tool_uses] == [{"action": "screenshot"}]
    assert turns[-1].text == "Task complete: took a screenshot of the page."


async def test_text_placeholders_for_old_screenshots_keep_the_step(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    _, messages = await drive(sdk, "[[sim:plan=signup]] go", turns=4)
    trimmed = [
        {"role": m["role"], "content": [
            {**b, "content": [{"type": "text", "text": "[screenshot removed]"}]}
            if b.get("type") == "tool_result" else b
            for b in m["content"]
        ]} if isinstance(m["content"], list) else m
        for m in messages
    ]  # fmt: skip
    turn = await take_turn(sdk, computer_body(trimmed))
    assert turn.tool_uses[0]["input"] == COMPUTER_PLANS["signup"][4]
    assert turn.text == SIGNUP_STEPS[4]


async def test_non_streaming_turn_equals_the_script(sdk: anthropic.AsyncAnthropic) -> None:
    body = computer_body([{"role": "user", "content": "[[sim:plan=signup]]"}])
    message = await sdk.beta.messages.create(betas=BETAS, **body)
    assert message.stop_reason == "tool_use"
    expected = scripted_computer_turn(body)
    assert [b.model_dump(exclude_none=True) for b in message.content] == expected["content"]
    assert message.content[1].input == COMPUTER_PLANS["signup"][0]


async def test_max_tokens_cuts_the_turn_before_the_tool(sdk: anthropic.AsyncAnthropic) -> None:
    body = computer_body([{"role": "user", "content": "[[sim:plan=signup]]"}], max_tokens=3)
    turn = await take_turn(sdk, body)
    assert turn.stop_reason == "max_tokens" and not turn.tool_uses
    assert turn.text == "Step 1 of "


# --------------------------------------------------------------------------- faults and usage


async def test_fault_directives_in_computer_mode(sdk: anthropic.AsyncAnthropic) -> None:
    # a fault in the task strikes the first turn only
    first = computer_body([{"role": "user", "content": "[[sim:plan=signup]] [[sim:fail=529]]"}])
    with pytest.raises(anthropic.APIStatusError) as caught:
        await take_turn(sdk, first)
    assert caught.value.status_code == 529
    turn = await take_turn(sdk, first)  # the retry goes through
    assert turn.tool_uses[0]["input"] == COMPUTER_PLANS["signup"][0]

    # step=K aims a fault at one later turn; it breaks that turn mid-stream once
    task = "[[sim:plan=signup]] [[sim:midstream=overloaded_error after=2 step=1]]"
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    turn = await take_turn(sdk, computer_body(messages))
    messages += [
        {"role": "assistant", "content": turn.content},
        {"role": "user", "content": [screenshot_result(turn.tool_uses[0]["id"])]},
    ]
    with pytest.raises(anthropic.APIStatusError) as caught:
        await take_turn(sdk, computer_body(messages))
    assert caught.value.type == "overloaded_error"
    turn = await take_turn(sdk, computer_body(messages))
    assert turn.tool_uses[0]["input"] == COMPUTER_PLANS["signup"][1]

    # an unknown plan is a 400, as any bad directive
    with pytest.raises(anthropic.BadRequestError, match="plan='nope'"):
        await take_turn(sdk, computer_body([{"role": "user", "content": "[[sim:plan=nope]]"}]))


async def test_images_count_as_fixed_tokens_and_cache(sdk: anthropic.AsyncAnthropic) -> None:
    def with_image(data: str) -> dict[str, Any]:
        return computer_body([
            {"role": "user", "content": "[[sim:plan=look]]"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_sim_1",
                                               "name": "computer",
                                               "input": {"action": "screenshot"}}]},
            {"role": "user", "content": [screenshot_result("toolu_sim_1", data)]},
        ])  # fmt: skip

    small, big = with_image(PNG_1PX), with_image(png_base64(400, 300, noise=True))
    assert count_input_tokens(small) == count_input_tokens(big)
    placeholder = with_image(PNG_1PX)
    placeholder["messages"][2]["content"][0]["content"] = [{"type": "text", "text": "x"}]
    difference = count_input_tokens(small) - count_input_tokens(placeholder)
    assert IMAGE_TOKENS - 40 < difference < IMAGE_TOKENS + 10
    counted = await sdk.beta.messages.count_tokens(
        betas=BETAS, model=MODEL, messages=big["messages"], tools=big["tools"]
    )
    assert counted.input_tokens == count_input_tokens(small)

    # prompt caching: a breakpoint on the newest tool_result, moved forward each turn
    task = "[[sim:plan=signup]] cache me"
    messages: list[dict[str, Any]] = [{"role": "user", "content": task}]
    usages: list[dict[str, Any]] = []
    for _ in range(3):
        body = computer_body(messages)
        turn = await take_turn(sdk, body)
        usages.append(turn.usage)
        result = screenshot_result(turn.tool_uses[0]["id"])
        for message in messages:  # keep one breakpoint: drop the old ones
            if isinstance(message["content"], list):
                for block in message["content"]:
                    block.pop("cache_control", None)
        messages += [
            {"role": "assistant", "content": turn.content},
            {"role": "user", "content": [{**result, "cache_control": {"type": "ephemeral"}}]},
        ]
    # turn 1 had no breakpoint; turn 2 writes its prefix; turn 3 reads it and writes the rest
    assert usages[0]["cache_creation_input_tokens"] == 0
    assert usages[1]["cache_creation_input_tokens"] > IMAGE_TOKENS
    assert usages[1]["cache_read_input_tokens"] == 0
    assert usages[2]["cache_read_input_tokens"] == usages[1]["cache_creation_input_tokens"]
    assert 0 < usages[2]["cache_creation_input_tokens"] < usages[1]["cache_creation_input_tokens"]


# --------------------------------------------------------------------------- the demo page


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    from relayq.llm.page_actions import launch_chromium

    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def demo(browser: Any, site: str) -> AsyncIterator[Any]:
    """A ComputerTool on a fresh 1280x720 page showing the demo sign-up page."""
    from relayq.llm.computer_tool import ComputerTool
    from relayq.llm.page_actions import PageActions

    context = await browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1
    )
    try:
        page = await context.new_page()
        await page.goto(f"{site}/demo_signup.html")
        actions = PageActions(page=page)
        try:
            yield ComputerTool(actions=actions, width=WIDTH, height=HEIGHT)
        finally:
            await actions.aclose()
    finally:
        await context.close()


@pytest.mark.browser
async def test_signup_plan_fills_the_demo_page(demo: Any) -> None:
    page = demo.actions.page
    # every click target is the centre of its control
    element_ids = {"name": "name", "email": "email", "password": "password", "terms": "terms",
                   "submit": "create", "terms_link": "terms-link"}  # fmt: skip
    for target, element_id in element_ids.items():
        x, y = DEMO_SIGNUP_TARGETS[target]
        box = await page.locator(f"#{element_id}").bounding_box()
        assert box is not None
        assert (round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)) == (x, y)
        hit = await page.evaluate("([x, y]) => document.elementFromPoint(x, y).id", [x, y])
        assert hit == element_id, target
    assert await page.evaluate("document.body.dataset.state") == "ready"
    # navigate_blocked's link leads off-site (for allow-list tests); the page itself stays put
    href = await page.get_attribute("#terms-link", "href")
    assert href == "https://terms.acme-cloud.example/"

    content: list[dict[str, Any]] = []
    for tool_input in COMPUTER_PLANS["signup"]:
        params = dict(tool_input)
        content = await demo.execute(params.pop("action"), **params)
        assert content[0]["type"] == "image"

    assert await page.evaluate("window.signup") == {
        "name": "Ada Lovelace", "email": "ada@example.com", "agreed": True
    }  # fmt: skip
    assert await page.evaluate("document.body.dataset.state") == "done"
    welcome = page.locator("#welcome-message")
    assert await welcome.is_visible()
    assert await welcome.inner_text() == (
        "Welcome, Ada Lovelace! We sent a confirmation to ada@example.com."
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    frame = base64.b64decode(content[0]["source"]["data"])
    (OUTPUT / "demo_signup_done.png").write_bytes(frame)
    assert frame.startswith(b"\x89PNG")


@pytest.mark.browser
async def test_scroll_bad_and_invalid_submit_on_the_demo_page(demo: Any) -> None:
    page = demo.actions.page
    # Create account on an empty form: the page refuses, as the `loop` plan keeps finding
    (loop_click,) = COMPUTER_PLANS["loop"]
    await demo.execute("left_click", coordinate=loop_click["coordinate"])
    assert await page.evaluate("document.body.dataset.state") == "invalid"
    assert await page.evaluate("window.signup") is None
    assert await page.locator("#name-error").inner_text() == "Please enter your name"

    results = []
    for index, tool_input in enumerate(COMPUTER_PLANS["bad"]):
        results.append(await demo.tool_result(f"toolu_sim_{index + 1}", tool_input))
    assert [r["is_error"] for r in results] == [True, True, False]

    for tool_input in COMPUTER_PLANS["scroll"]:
        params = dict(tool_input)
        await demo.execute(params.pop("action"), **params)
    assert await page.evaluate("window.scrollY") == 500
    assert await page.locator("#features h3").is_visible()


@pytest.mark.parametrize(
    ("screenshot", "declared", "view"),
    [
        ((1920, 1080), (1920, 1080), (1429, 804)),  # the API shrinks it: long edge, 1.15 MP
        ((1366, 768), (1366, 768), (1366, 768)),  # within the limits: seen as it is
        (None, (1920, 1200), (1356, 847)),  # no screenshot yet: the declared display, shrunk
        (None, None, (1280, 720)),
    ],
)
def test_the_small_target_is_clicked_where_the_model_sees_it(
    screenshot: tuple[int, int] | None,
    declared: tuple[int, int] | None,
    view: tuple[int, int],
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "[[sim:plan=small_target]]"}]
    if screenshot is not None:
        messages += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_sim_1",
                                               "name": "computer",
                                               "input": {"action": "screenshot"}}]},
            {"role": "user", "content": [
                screenshot_result("toolu_sim_1", png_base64(*screenshot))
            ]},
        ]  # fmt: skip
    tools = [] if declared is None else [
        {**COMPUTER_TOOL, "display_width_px": declared[0], "display_height_px": declared[1]}
    ]  # fmt: skip
    body = {"model": MODEL, "max_tokens": 1024, "tools": tools, "messages": messages}
    assert model_view(body) == view
    assert computer_plan(body)[1] == {"action": "left_click", "coordinate": SMALL_TARGET.on(view)}
