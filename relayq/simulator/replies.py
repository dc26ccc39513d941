"""Scripted replies: which text, tool call and thinking a request gets, and its token usage."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from .computer import DEFAULT_COMPUTER_PLAN, computer_reply, plan_inputs
from .directives import DirectiveError, request_directives, strip_directives
from .plan import (
    PROMPT_WORDS,
    Block,
    ReplyPlan,
    Usage,
    finish,
    sentence,
    split_words,
    stable_index,
    thinking_block,
    tokens,
    tool_use_block,
)
from .request import (
    JSON,
    block_text,
    computer_step,
    computer_tool,
    content_blocks,
    custom_tools,
    digest,
    dumps,
    fingerprint,
    last_user_blocks,
    thinking_enabled,
    token_budget,
    tool_result_text,
)
from .wire import final_block

DEFAULT_REPLY_TOKENS = 24
IMAGE_TOKENS = 1200
"""Input tokens an image block counts for (about a 1280x720 screenshot), whatever its size."""
RESULT_WORDS = 20


def example_value(schema: Any, key: str = "value", depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return f"sim {key}"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[stable_index(key, len(enum))]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return example_value(options[0], key, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "string":
        return _example_string(schema, key)
    if kind in ("integer", "number"):
        return _example_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), 2)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [example_value(schema.get("items"), f"{key}{i}", depth + 1) for i in range(count)]
    if kind == "object":
        properties = schema.get("properties")
        required = schema.get("required")
        props: dict[str, Any] = properties if isinstance(properties, dict) else {}
        names = list(props)
        if isinstance(required, list):
            names += [r for r in required if isinstance(r, str) and r not in props]
        if depth >= 6:
            names = [n for n in names if isinstance(required, list) and n in required]
        return {name: example_value(props.get(name), name, depth + 1) for name in names}
    return f"sim {key}"


def _example_string(schema: JSON, key: str) -> str:
    formats = {
        "date-time": "2025-01-01T12:00:00Z",
        "date": "2025-01-01",
        "time": "12:00:00",
        "email": "sim@example.com",
        "uri": "https://example.com/sim",
        "url": "https://example.com/sim",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    text = formats.get(str(schema.get("format")), f"sim {key}")
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    if "minLength" in schema:
        text = text.ljust(int(schema["minLength"]), "x")
    return text


def _example_number(schema: JSON, *, integer: bool) -> int | float:
    value: float = 42 if integer else 3.5
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, int | float) and value < low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return int(value) if integer else float(value)


def _plan_name(body: Mapping[str, Any]) -> str:
    return request_directives(body).plan or DEFAULT_COMPUTER_PLAN


def computer_plan(body: Mapping[str, Any]) -> list[JSON]:
    """The ``computer`` tool inputs the request's plan runs through, in order (a copy).

    The plan is named by ``[[sim:plan=NAME]]`` in the task or the system prompt (default
    ``look``); an endless plan (``ENDLESS_PLANS``) repeats its list forever. A point given
    relative to the model's view is resolved for this request's view. Raises ``ValueError``
    for an unknown plan or another malformed directive.
    """
    return plan_inputs(_plan_name(body), body)


def reply_plan(body: Mapping[str, Any]) -> ReplyPlan:
    directives = request_directives(body)
    last = last_user_blocks(body)
    prompt = " ".join(strip_directives(block_text(last)).split())
    if computer_tool(body) is not None or computer_step(body) > 0:
        return computer_reply(body, directives, prompt)
    results = [b for b in last if b.get("type") == "tool_result"]
    tool_choice = body.get("tool_choice")
    choice: JSON = tool_choice if isinstance(tool_choice, dict) else {}
    tools = custom_tools(body)
    budget = token_budget(body)
    body_id = fingerprint(body)

    blocks: list[Block] = []
    if thinking_enabled(body):
        blocks.append(thinking_block(prompt))

    tool: JSON | None = None
    if tools and not results and choice.get("type") != "none":
        if choice.get("type") == "tool":
            tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
            if tool is None:
                raise DirectiveError(f"tool_choice names unknown tool {choice.get('name')!r}")
        else:
            tool = tools[0]

    stop_reason = "end_turn"
    if results:
        text_of_results = " ".join(tool_result_text(r) for r in results)
        failed = any(r.get("is_error") for r in results)
        lead = sentence(
            "The tool reported an error:" if failed else "The tool said:",
            split_words(text_of_results)[:RESULT_WORDS],
            "nothing.",
        )
        count: int | None = directives.tokens or max(DEFAULT_REPLY_TOKENS, len(lead))
    else:
        lead = sentence("Simulated reply to:", split_words(prompt)[:PROMPT_WORDS], "(empty).")
        count = directives.tokens or DEFAULT_REPLY_TOKENS
        if tool is not None:
            lead += ["Calling", f"{tool['name']}."]
            count = directives.tokens
    text_tokens = tokens(lead, prompt, count)
    if tool is not None and choice.get("type") in ("tool", "any"):
        text_tokens = []
    if budget is not None and len(text_tokens) > budget:
        text_tokens, stop_reason, tool = text_tokens[:budget], "max_tokens", None
    if text_tokens:
        blocks.append(Block("text", tuple(text_tokens)))

    if tool is not None:
        tool_input = example_value(tool.get("input_schema", {"type": "object"}), "input")
        if not isinstance(tool_input, dict):
            tool_input = {"value": tool_input}
        blocks.append(
            tool_use_block(
                "toolu_sim" + body_id[:20],
                str(tool["name"]),
                tool_input,
                badjson=directives.badjson,
            )
        )
        stop_reason = "tool_use"
    return finish(blocks, stop_reason, directives)


def scripted_reply(body: Mapping[str, Any]) -> str:
    """The text a request gets back: all its text blocks, concatenated (thinking excluded).

    Pure and deterministic; the simulator streams exactly this text, one token per
    ``text_delta``. Raises ``ValueError`` for a malformed ``[[sim:...]]`` directive.
    """
    plan = reply_plan(body)
    return "".join("".join(b.pieces) for b in plan.blocks if b.kind == "text")


def scripted_computer_turn(body: Mapping[str, Any]) -> JSON:
    """The assistant turn a request gets: ``{"role", "content", "stop_reason"}``.

    ``content`` holds the blocks exactly as the non-streaming API returns them (a streamed reply
    accumulates to the same). Pure and deterministic; meant for computer-use conversations but
    works for any request. Raises ``ValueError`` for a malformed ``[[sim:...]]`` directive.
    """
    plan = reply_plan(body)
    return {
        "role": "assistant",
        "content": [final_block(b) for b in plan.blocks],
        "stop_reason": plan.stop_reason,
    }


_IMAGE_STUB_SIZE = len(dumps({"type": "image", "sim_image": digest("")[:32]}))


def _stub_images(value: Any, images: list[int]) -> Any:
    """``value`` with every image block replaced by a fixed-size stub naming its data's hash."""
    if isinstance(value, list):
        return [_stub_images(v, images) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("type") == "image":
        images.append(1)
        return {"type": "image", "sim_image": digest(dumps(value.get("source")))[:32]}
    return {k: _stub_images(v, images) for k, v in value.items()}


def prompt_segments(body: Mapping[str, Any]) -> list[tuple[str, bool, int]]:
    """(canonical JSON without cache_control, is a breakpoint, size in chars) in the API's prefix
    order. An image block counts as ``IMAGE_TOKENS`` tokens (4 chars each), whatever its size."""

    def segment(role: str, block: Any) -> tuple[str, bool, int]:
        images: list[int] = []
        if isinstance(block, dict):
            clean = {k: v for k, v in block.items() if k != "cache_control"}
            text = dumps({"role": role, "block": _stub_images(clean, images)})
            marked = block.get("cache_control") is not None
        else:
            text, marked = dumps({"role": role, "block": block}), False
        return text, marked, len(text) + len(images) * (IMAGE_TOKENS * 4 - _IMAGE_STUB_SIZE)

    segments: list[tuple[str, bool, int]] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        segments.append(segment("tool", tool))
    for block in content_blocks(body.get("system")):
        segments.append(segment("system", block))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            for block in content_blocks(message.get("content")):
                segments.append(segment(str(message.get("role")), block))
    return segments


def count_input_tokens(body: Mapping[str, Any]) -> int:
    return max(1, sum(size for _, _, size in prompt_segments(body)) // 4)


class PromptCache:
    """The prefixes a simulator has seen up to a ``cache_control`` breakpoint (per model)."""

    def __init__(self) -> None:
        self._prefixes: set[str] = set()

    def clear(self) -> None:
        self._prefixes.clear()

    def usage(self, body: Mapping[str, Any]) -> Usage:
        """The request's input usage; remembers its breakpoints' prefixes for later requests."""
        segments = prompt_segments(body)
        running = hashlib.sha256(str(body.get("model")).encode())
        prefix_hashes: list[str] = []
        prefix_tokens: list[int] = []
        size = 0
        for text, _, length in segments:
            running.update(b"\x1e" + text.encode())
            prefix_hashes.append(running.hexdigest())
            size += length
            prefix_tokens.append(size // 4)
        total = max(1, size // 4)
        breakpoints = [i for i, (_, marked, _) in enumerate(segments) if marked]
        if not breakpoints:
            return Usage(total, 0, 0)
        last = breakpoints[-1]
        cache = self._prefixes
        read = next((prefix_tokens[i] for i in range(last, -1, -1) if prefix_hashes[i] in cache), 0)
        created = 0 if prefix_hashes[last] in cache else prefix_tokens[last] - read
        cache.update(prefix_hashes[i] for i in breakpoints)
        return Usage(max(0, total - prefix_tokens[last]), created, read)
