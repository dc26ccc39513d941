"""What the simulator checks in a request before it answers it."""

from __future__ import annotations

from .request import JSON


def shape_problem(body: JSON, *, need_max_tokens: bool) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required" if "model" not in body else "model: Input should be a string"
    if need_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return "max_tokens: Field required"
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), str | list):
            return f"messages.{i}.content: Field required"
    return None
