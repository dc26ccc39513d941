"""The Anthropic model layer: LLM, LLMStream and tools, usable alone or in a LiveKit agent.

`ComputerTool` and `PageActions` load on first access, so importing `llm` does not
import Playwright.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import STREAM_ERROR_STATUS, retry_after, translate_error
from .function_schemas import tool_from_schema
from .llm import CACHE_CONTROL_EPHEMERAL, LLM, THINKING_EXTRA_KEY
from .models import DEFAULT_MODEL, ChatModels
from .stream import LLMStream, StreamAccumulator, StreamEvent, StreamFactory, ThinkingTagFilter
from .tools import AnthropicTool, ComputerToolVersion, ComputerUse

__all__ = [
    "CACHE_CONTROL_EPHEMERAL",
    "DEFAULT_MODEL",
    "LLM",
    "STREAM_ERROR_STATUS",
    "THINKING_EXTRA_KEY",
    "AnthropicTool",
    "ChatModels",
    "ComputerTool",
    "ComputerToolVersion",
    "ComputerUse",
    "LLMStream",
    "PageActions",
    "StreamAccumulator",
    "StreamEvent",
    "StreamFactory",
    "ThinkingTagFilter",
    "retry_after",
    "tool_from_schema",
    "translate_error",
]

_LAZY = {"ComputerTool": ".computer_tool", "PageActions": ".page_actions"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
