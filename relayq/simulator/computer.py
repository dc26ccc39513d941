"""Computer use: the scripted plans and the assistant turn each step of a plan gets."""

from __future__ import annotations

import base64
import binascii
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .images import image_size
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


API_MAX_LONG_EDGE = 1568
API_MAX_PIXELS = 1_150_000
DEFAULT_VIEW = (1280, 720)


@dataclass(frozen=True)
class ViewPoint:
    """A point of the screen given as fractions of its width and height; a plan step holding
    one clicks where that point is in the image the model sees (see ``model_view``)."""

    fx: float
    fy: float

    def on(self, view: tuple[int, int]) -> list[int]:
        return [int(self.fx * view[0]), int(self.fy * view[1])]


SMALL_TARGET = ViewPoint(0.75, 0.80)
"""The centre of the 10x10 px target of ``SMALL_TARGET_PAGE``, as a fraction of the viewport."""

SMALL_TARGET_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Small target</title>
<style>
  html, body { margin: 0; height: 100%; background: #f4f4f4; font: 16px sans-serif; }
  #status { position: fixed; left: 20px; top: 20px; margin: 0; }
  #target { position: fixed; left: calc(75vw - 5px); top: calc(80vh - 5px);
            width: 10px; height: 10px; background: #d22; }
</style>
</head>
<body>
<p id="status">Click the small red square.</p>
<div id="target"></div>
<script>
  // a click on the square makes the address end with #hit, any other with #miss-X-Y
  document.addEventListener("click", (e) => {
    const hit = e.target.id === "target";
    document.getElementById("status").textContent =
      hit ? "Hit!" : `Missed at ${e.clientX}, ${e.clientY}`;
    document.getElementById("target").style.background = hit ? "#2a2" : "#d22";
    location.hash = hit ? "hit" : `miss-${e.clientX}-${e.clientY}`;
  });
</script>
</body>
</html>
"""
"""The page of the ``small_target`` plan (served at ``/demo/small-target``)."""


def api_view(width: int, height: int) -> tuple[int, int]:
    """The size the API shrinks an image to before the model sees it: a long edge of at most
    1568 px and about 1.15 megapixels
    (https://platform.claude.com/docs/en/build-with-claude/vision, "Evaluate image size")."""
    factor = min(1.0, API_MAX_LONG_EDGE / max(width, height))
    factor = min(factor, math.sqrt(API_MAX_PIXELS / (width * height)))
    return int(width * factor), int(height * factor)


def model_view(body: Mapping[str, Any]) -> tuple[int, int]:
    """The size of the image the model sees of the screen: the request's latest screenshot as
    the API shrinks it, else the computer tool's declared display, else 1280x720."""
    for blocks in reversed(user_block_lists(body)):
        for block in reversed(blocks):
            nested = (
                content_blocks(block.get("content")) if block.get("type") == "tool_result" else []
            )
            for image in reversed([block, *nested]):
                if (size := _image_size(image)) is not None:
                    return api_view(*size)
    tool = computer_tool(body)
    if tool is not None:
        width, height = tool.get("display_width_px"), tool.get("display_height_px")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return api_view(width, height)
    return DEFAULT_VIEW


def _image_size(block: JSON) -> tuple[int, int] | None:
    source = block.get("source")
    if block.get("type") != "image" or not isinstance(source, dict):
        return None
    try:
        size = image_size(base64.b64decode(str(source.get("data", "")), validate=True))
    except (binascii.Error, ValueError):
        return None
    return None if size is None else (size[1], size[2])


def _resolved(tool_input: JSON, view: tuple[int, int]) -> JSON:
    return {
        k: v.on(view) if isinstance(v, ViewPoint) else copy.deepcopy(v)
        for k, v in tool_input.items()
    }


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
    "at_cursor": (
        (
            "moving the pointer onto the Name field",
            {"action": "mouse_move", "coordinate": list(DEMO_SIGNUP_TARGETS["name"])},
        ),
        ("clicking where the pointer is", {"action": "left_click"}),
        ("typing the name", {"action": "type", "text": "Ada Lovelace"}),
        (
            "scrolling where the pointer is",
            {"action": "scroll", "scroll_direction": "down", "scroll_amount": 1},
        ),
        ("taking a screenshot", _SCREENSHOT),
    ),
    "small_target": (
        ("taking a screenshot to find the target", _SCREENSHOT),
        ("clicking the small red square", {"action": "left_click", "coordinate": SMALL_TARGET}),
        ("taking a screenshot to check the result", _SCREENSHOT),
    ),
}
_PLAN_DESCRIPTIONS: dict[str, str] = {
    "look": "took a screenshot of the page",
    "signup": "created the Acme Cloud account for Ada Lovelace (ada@example.com)",
    "loop": "clicked Create account again and again",
    "bad": "tried two invalid actions, then took a screenshot",
    "scroll": "scrolled down the page and took a screenshot",
    "navigate_blocked": "followed the Terms of service link and took a screenshot",
    "at_cursor": "clicked and scrolled where the pointer was and typed the name",
    "small_target": "clicked the small red square",
}
ENDLESS_PLANS: frozenset[str] = frozenset({"loop"})
"""Plans that never finish: their steps repeat forever (for loop guards and step budgets)."""

COMPUTER_PLANS: dict[str, list[JSON]] = {
    name: [_resolved(tool_input, DEFAULT_VIEW) for _, tool_input in steps]
    for name, steps in PLAN_STEPS.items()
}
"""The computer-use plans by name: the ``computer`` tool inputs, in order (see module docs);
a point given relative to the model's view (``small_target``) as it is for a 1280x720 one."""


def plan_inputs(name: str, body: Mapping[str, Any]) -> list[JSON]:
    """The tool inputs of plan `name` for this request (view-relative points resolved)."""
    view = model_view(body)
    return [_resolved(tool_input, view) for _, tool_input in PLAN_STEPS[name]]


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
        caption, unresolved = steps[step % total]
        action = _resolved(unresolved, model_view(body))
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
