"""Job requests: what a producer puts on a queue.

A job is plain JSON validated here; the worker re-validates what it reads from Redis, so a
payload written by any producer (Python, Lua, HTTP, another language) meets the same checks.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .validation import error_text

ENVELOPE_VERSION: Literal[1] = 1
DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 1024
"""A job's `max_tokens` when it gives none; with extended thinking, plus its budget."""
THINKING_EXTRA_KEY = "anthropic_thinking"
"""`extra` key, in a ChatJob's `messages` (a LiveKit ChatContext dict), of an assistant message
or function call holding the signed thinking blocks of its turn: the worker sends them back
first in that assistant turn, as the API requires in a tool loop with thinking on."""

MAX_JOB_BYTES = 4 * 1024 * 1024
MAX_MESSAGES = 1000
MAX_TOOLS = 128
MAX_TEXT_CHARS = 1_000_000
MAX_METADATA_KEYS = 64
MAX_SCHEMA_DEPTH = 32
MAX_OUTPUT_TOKENS = 128_000

JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
ShortText = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
MetadataValue = str | int | float | bool | None


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ConnOptions(_Strict):
    """LiveKit's APIConnectOptions on the wire. `timeout` is the streaming read timeout."""

    max_retry: int = Field(default=3, ge=0, le=20)
    retry_interval: float = Field(default=2.0, ge=0.0, le=600.0)
    timeout: float = Field(default=30.0, gt=0.0, le=3600.0)


class ToolSchema(_Strict):
    """A function tool as a JSON schema, so producers need no Python callable."""

    name: ToolName
    description: str = Field(default="", max_length=16_384)
    input_schema: dict[str, JsonValue]

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        if schema.get("type") != "object":
            raise ValueError('input_schema must be a JSON schema with "type": "object"')
        if _depth(schema) > MAX_SCHEMA_DEPTH:
            raise ValueError(f"input_schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
        return schema


class NamedToolChoice(_Strict):
    type: Literal["function"] = "function"
    name: ToolName


ToolChoice = Literal["auto", "required", "none"] | NamedToolChoice


class ThinkingEnabled(_Strict):
    type: Literal["enabled"] = "enabled"
    budget_tokens: int = Field(ge=1024, le=128_000)


class ThinkingAdaptive(_Strict):
    type: Literal["adaptive"] = "adaptive"


Thinking = Annotated[ThinkingEnabled | ThinkingAdaptive, Field(discriminator="type")]


def _default_max_tokens(thinking: object) -> int:
    if isinstance(thinking, ThinkingEnabled):
        return min(DEFAULT_MAX_TOKENS + thinking.budget_tokens, MAX_OUTPUT_TOKENS)
    return DEFAULT_MAX_TOKENS


class _JobBase(_Strict):
    v: Literal[1] = ENVELOPE_VERSION
    id: JobId = Field(default_factory=new_job_id)
    model: str = Field(default=DEFAULT_MODEL, min_length=1, max_length=128)
    thinking: Thinking | None = None
    max_tokens: int = Field(
        default_factory=lambda data: _default_max_tokens(data.get("thinking")),
        ge=1,
        le=MAX_OUTPUT_TOKENS,
        description="Default 1024, plus the thinking budget when thinking is enabled.",
    )
    caching: Literal["ephemeral"] | None = None
    conn_options: ConnOptions = ConnOptions()
    deadline: AwareDatetime | None = Field(
        default=None, description="When the job must end by: ISO 8601 with a timezone."
    )
    restart_after_output: bool = Field(
        default=False,
        description="Retry an attempt that already streamed output (its output is voided).",
    )
    metadata: dict[Annotated[str, StringConstraints(max_length=128)], MetadataValue] = Field(
        default_factory=dict
    )
    trace_context: (
        dict[
            Literal["traceparent", "tracestate"],
            Annotated[str, StringConstraints(max_length=512)],
        ]
        | None
    ) = Field(default=None, description="W3C trace context of the producer's span.")

    @model_validator(mode="after")
    def _thinking_leaves_room_for_the_reply(self) -> Any:
        thinking = self.thinking
        if isinstance(thinking, ThinkingEnabled) and self.max_tokens <= thinking.budget_tokens:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must be greater than thinking.budget_tokens "
                f"({thinking.budget_tokens}): it covers the thinking and the reply"
            )
        return self

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, metadata: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has more than {MAX_METADATA_KEYS} keys")
        if any(isinstance(v, str) and len(v) > 4096 for v in metadata.values()):
            raise ValueError("metadata values are limited to 4096 characters")
        return metadata


class ChatJob(_JobBase):
    """A chat generation job: either a LiveKit ChatContext dict or a plain prompt/system."""

    kind: Literal["chat"] = "chat"
    messages: dict[str, JsonValue] | None = Field(
        default=None, description="ChatContext.to_dict(exclude_image=False) output."
    )
    prompt: ShortText | None = None
    system: ShortText | None = None
    tools: list[ToolSchema] = Field(default_factory=list, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_conversation(self) -> ChatJob:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of `messages` (a ChatContext dict) or `prompt`")
        if self.messages is not None and self.system is not None:
            raise ValueError("`system` goes with `prompt`; put system turns inside `messages`")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.name not in {
            t.name for t in self.tools
        }:
            raise ValueError("tool_choice names an unknown tool (one not in `tools`)")
        if len({t.name for t in self.tools}) != len(self.tools):
            raise ValueError("tool names must be unique")
        return self

    @field_validator("messages")
    @classmethod
    def _chat_context(cls, messages: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if messages is None:
            return None
        items = messages.get("items")
        if not isinstance(items, list) or not items:
            raise ValueError("messages must be a ChatContext dict with a non-empty `items` list")
        if len(items) > MAX_MESSAGES:
            raise ValueError(f"messages has more than {MAX_MESSAGES} items")
        # livekit is imported lazily: validating a ChatContext needs it, the rest of the
        # contract does not, and producers importing schemas should not pay for it.
        from livekit.agents.llm import ChatContext

        try:
            ChatContext.from_dict(dict(messages))
        except Exception as e:
            # the ChatContext's own message would quote the messages: say where, not what
            detail = error_text(e) if isinstance(e, ValidationError) else type(e).__name__
            raise ValueError(f"messages is not a valid ChatContext: {detail}") from e
        return messages


class ComputerUseJob(_JobBase):
    """Claude drives an isolated Chromium to carry out `task`, starting at `start_url`."""

    kind: Literal["computer_use"] = "computer_use"
    task: ShortText = Field(min_length=1)
    start_url: str = Field(min_length=1, max_length=8192)
    system: ShortText | None = Field(
        default=None, description="Added to relayq's computer-use system prompt."
    )
    display_width: int = Field(default=1280, ge=320, le=1920)
    display_height: int = Field(default=720, ge=240, le=1200)
    tool_version: Literal["computer_20251124", "computer_20250124"] = "computer_20251124"
    enable_zoom: bool = False
    max_steps: int = Field(default=30, ge=1, le=500, description="Model turns that act.")
    allowed_domains: list[Annotated[str, StringConstraints(max_length=253)]] = Field(
        default_factory=list, max_length=256, description="Empty: any public host."
    )
    allow_private_network: bool = Field(
        default=False, description="Let the browser reach loopback and private addresses."
    )
    screenshot_format: Literal["png", "jpeg", "webp"] = "png"
    screenshot_quality: int | None = Field(default=None, ge=1, le=100)
    keep_screenshots: int = Field(
        default=3, ge=1, le=50, description="Most recent screenshots kept in the model's context."
    )
    caching: Literal["ephemeral"] | None = "ephemeral"
    redact_typed_text: bool = Field(
        default=False, description="Replace typed text with *** in action events."
    )
    secrets: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        default_factory=list,
        max_length=64,
        description="Values masked as *** wherever they would appear in events.",
    )

    @field_validator("start_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("start_url must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _zoom_needs_new_tool(self) -> ComputerUseJob:
        if self.enable_zoom and self.tool_version != "computer_20251124":
            raise ValueError("enable_zoom needs tool_version computer_20251124")
        if self.screenshot_quality is not None and self.screenshot_format == "png":
            raise ValueError("screenshot_quality applies to jpeg and webp only")
        return self


JOB_KINDS: dict[str, type[_JobBase]] = {"chat": ChatJob, "computer_use": ComputerUseJob}


def parse_job(raw: str | bytes) -> _JobBase:
    """Validates a job payload as read from Redis. Raises ValueError with a readable message."""
    if len(raw) > MAX_JOB_BYTES:
        raise ValueError(f"job payload is {len(raw)} bytes; the limit is {MAX_JOB_BYTES}")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"job payload is not valid UTF-8 JSON: {e}") from e
    except RecursionError as e:
        raise ValueError("job payload nests too deeply") from e
    if not isinstance(data, dict):
        raise ValueError("job payload must be a JSON object")
    kind = data.get("kind", "chat")
    model = JOB_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"unknown job kind; expected one of {sorted(JOB_KINDS)}")
    try:
        return model.model_validate_json(raw)
    except RecursionError as e:
        raise ValueError("job payload nests too deeply") from e


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_SCHEMA_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level
