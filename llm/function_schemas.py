"""Function tools declared by a name, a description and a JSON schema, with no Python callable.

Producers in other languages send their tools as JSON schemas; the model's calls to them
come back as tool calls for the producer to run.
"""

from __future__ import annotations

import re
from typing import Any

from livekit.agents.llm import RawFunctionTool, function_tool

__all__ = ["tool_from_schema"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def tool_from_schema(
    name: str, description: str, input_schema: dict[str, Any]
) -> RawFunctionTool[..., Any]:
    """A tool for `LLM.chat(tools=[...])` whose `input_schema` goes to Anthropic unchanged.

    Raises ValueError for a name the API would reject or a schema that is not an object
    schema. Executing the tool in-process raises NotImplementedError.
    """
    if not _TOOL_NAME.match(name):
        raise ValueError(f"invalid tool name {name!r}: 1-64 characters of a-z A-Z 0-9 _ -")
    if not isinstance(input_schema, dict) or input_schema.get("type") != "object":
        raise ValueError(f"input_schema of tool {name!r} must be a JSON schema of type 'object'")

    async def not_executable(raw_arguments: dict[str, Any]) -> Any:
        raise NotImplementedError(
            f"tool {name!r} was declared by schema only; its calls are for the caller to run"
        )

    return function_tool(
        not_executable,
        raw_schema={"name": name, "description": description, "parameters": input_schema},
    )
