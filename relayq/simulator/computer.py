"""Computer use: the scripted plans and the assistant turn each step of a plan gets."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .plan import Block, ReplyPlan, finish, sentence, thinking_block, tokens, tool_use_block
from .request import (
    JSON,
    block_text,
    computer_step,
    computer_tool,
    content_blocks,
    last_user_blocks,
    thinking_enabled,
    token_budget,
    user_block_lists,
)

if TYPE_CHECKING:
    from .directives import Directives

ERROR_WORDS = 8
DEFAULT_COMPUTER_PLAN = "look"

DEMO_SIGNUP_TARGETS: dict[str, tuple[int, int]] = {
    "name": (940, 236),
    "email": (940, 316),
    "password": (940, 396),
    "terms": (750, 456),
    "submit": (940, 518),
    "terms_link": (871, 616),
}
"""Centres of the controls of ``relayq/static/demo_signup.html`` at 1280x720, scale 1."""


def _click(target: str) -> JSON:
    x, y = DEMO_SIGNUP_TARGETS[target]
    return {"action": "left_click", "coordinate": [x, y]}


_SCREENSHOT: JSON = {"action": "screenshot"}
# (caption, tool input) per step; the caption is the turn's text: "Step 2 of 7: <caption>."
PLAN_STEPS: dict[str, tuple[tuple[str, JSON], ...]] = {
    "look": (("taking a screenshot", _SCREENSHOT),),
    "signup": (
        ("clicking the Name field", _click("name")),
        ("typing the name", {"action": "type", "text": "Ada Lovelace"}),
        ("clicking the Email field", _click("email")),
        ("typing the email address", {"action": "type", "text": "ada@example.com"}),
        ("ticking the terms checkbox", _click("terms")),
        ("clicking Create account", _click("submit")),
        ("taking a screenshot to check the result", _SCREENSHOT),
    ),
    "loop": (("clicking Create account", _click("submit")),),
    "bad": (
        ("clicking far outside the screen", {"action": "left_click", "coordinate": [5000, 5000]}),
        ("trying the teleport action", {"action": "teleport"}),
        ("taking a screenshot", _SCREENSHOT),
    ),
    "scroll": (
        (
            "scrolling down",
            {
                "action": "scroll",
                "coordinate": [640, 360],
                "scroll_direction": "down",
                "scroll_amount": 5,
            },
        ),
        ("taking a screenshot", _SCREENSHOT),
    ),
    "navigate_blocked": (
        ("clicking the Terms of service link", _click("terms_link")),
        ("taking a screenshot", _SCREENSHOT),
    ),
}
_PLAN_DESCRIPTIONS: dict[str, str] = {
    "look": "took a screenshot of the page",
    "signup": "created the Acme Cloud account for Ada Lovelace (ada@example.com)",
    "loop": "clicked Create account again and again",
    "bad": "tried two invalid actions, then took a screenshot",
    "scroll": "scrolled down the page and took a screenshot",
    "navigate_blocked": "followed the Terms of service link and took a screenshot",
}
ENDLESS_PLANS: frozenset[str] = frozenset({"loop"})
"""Plans that never finish: their steps repeat forever (for loop guards and step budgets)."""

COMPUTER_PLANS: dict[str, list[JSON]] = {
    name: [copy.deepcopy(tool_input) for _, tool_input in steps]
    for name, steps in PLAN_STEPS.items()
}
"""The computer-use plans by name: the ``computer`` tool inputs, in order (see module docs)."""


def _last_error_words(last: list[JSON]) -> list[str] | None:
    """The first words of the last user turn's last failed tool_result, or None if none failed."""
    results = [b for b in last if b.get("type") == "tool_result"]
    if not results or not results[-1].get("is_error"):
        return None
    text = block_text(
        [b for b in content_blocks(results[-1].get("content")) if b.get("type") == "text"]
    )
    words = text.split()
    if len(words) > ERROR_WORDS:
        words = [*words[: ERROR_WORDS - 1], words[ERROR_WORDS - 1].rstrip(".,;:") + "..."]
    return words


def computer_reply(body: Mapping[str, Any], directives: Directives, prompt: str) -> ReplyPlan:
    name = directives.plan or DEFAULT_COMPUTER_PLAN
    steps = PLAN_STEPS[name]
    endless = name in ENDLESS_PLANS
    step = computer_step(body)
    tool = computer_tool(body)
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "none":
        tool = None
    budget = token_budget(body)
    last = last_user_blocks(body)

    blocks: list[Block] = []
    if thinking_enabled(body):
        blocks.append(thinking_block(prompt))
    lead: list[str] = []
    error_words = _last_error_words(last)
    if error_words is not None and tool is not None:
        lead = sentence("The last action failed:", error_words, "no details.")
    action: JSON | None = None
    total = len(steps)
    if tool is None:
        lead = _summary(name, step, body).split()
        stop_reason = "end_turn"
    elif endless or step < total:
        caption, action = steps[step % total]
        where = f"Step {step + 1}:" if endless else f"Step {step + 1} of {total}:"
        lead += [*where.split(), *f"{caption}.".split()]
        stop_reason = "tool_use"
    else:
        lead += f"Task complete: {_PLAN_DESCRIPTIONS[name]}.".split()
        stop_reason = "end_turn"
    text_tokens = tokens(lead, prompt, None)
    if budget is not None and len(text_tokens) > budget:
        text_tokens, stop_reason, action = text_tokens[:budget], "max_tokens", None
    blocks.append(Block("text", tuple(text_tokens)))
    if action is not None:
        blocks.append(
            tool_use_block(
                f"toolu_sim_{step + 1}",
                "computer",
                copy.deepcopy(action),
                badjson=directives.badjson,
            )
        )
    return finish(blocks, stop_reason, directives)


def _summary(name: str, step: int, body: Mapping[str, Any]) -> str:
    failed = sum(
        1
        for blocks in user_block_lists(body)
        for b in blocks
        if b.get("type") == "tool_result" and b.get("is_error")
    )
    errors = f"{failed} of them failed" if failed else "none of them failed"
    total = len(PLAN_STEPS[name])
    if name in ENDLESS_PLANS:
        return f"Summary: I took {step} actions of the endless {name} plan and stopped; {errors}."
    if step >= total:
        return f"Summary: I {_PLAN_DESCRIPTIONS[name]}, in {total} actions; {errors}."
    return (
        f"Summary: I stopped after {step} of the {total} actions of the {name} plan; "
        f"{errors}. The goal was that I {_PLAN_DESCRIPTIONS[name]}."
    )
