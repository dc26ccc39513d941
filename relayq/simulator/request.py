"""Reading a Messages API request body: its turns, blocks, tools and options."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def content_blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def block_text(blocks: list[JSON]) -> str:
    return " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def last_user_blocks(body: Mapping[str, Any]) -> list[JSON]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return content_blocks(message.get("content"))
    return []


def system_text(body: Mapping[str, Any]) -> str:
    return block_text(content_blocks(body.get("system")))


def tool_result_text(block: JSON) -> str:
    parts: list[str] = []
    for inner in content_blocks(block.get("content")):
        if inner.get("type") == "text":
            parts.append(str(inner.get("text", "")))
        elif inner.get("type") == "image":
            parts.append("[image]")
    return " ".join(parts)


def custom_tools(body: Mapping[str, Any]) -> list[JSON]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        t
        for t in tools
        if isinstance(t, dict) and t.get("type") in (None, "custom") and "name" in t
    ]


def token_budget(body: Mapping[str, Any]) -> int | None:
    max_tokens = body.get("max_tokens")
    return max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None


def thinking_enabled(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def user_block_lists(body: Mapping[str, Any]) -> list[list[JSON]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [
        content_blocks(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user"
    ]


def fingerprint(body: Mapping[str, Any]) -> str:
    """Hash of the request body without ``stream`` and ``metadata``: retries share it."""
    stripped = {k: v for k, v in body.items() if k not in ("stream", "metadata")}
    return digest(json.dumps(stripped, sort_keys=True, ensure_ascii=False))


def computer_tool(body: Mapping[str, Any]) -> JSON | None:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    return next(
        (
            t
            for t in tools
            if isinstance(t, dict) and str(t.get("type", "")).startswith("computer_")
        ),
        None,
    )


def computer_step(body: Mapping[str, Any]) -> int:
    """How many assistant turns of the conversation called the ``computer`` tool."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(
        1
        for m in messages
        if isinstance(m, dict)
        and m.get("role") == "assistant"
        and any(
            b.get("type") == "tool_use" and b.get("name") == "computer"
            for b in content_blocks(m.get("content"))
        )
    )
