"""Events: what a job's stream carries, one JSON object per stream entry (field ``event``).

Every event has ``v`` (format version), ``type``, ``job_id``, ``attempt`` (1-based; the arq try
that produced it) and ``ts`` (unix seconds). A ``retry`` event voids the output of the attempt it
names: subscribers keep only the output of the attempt that reaches a terminal event.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

EVENT_VERSION: Literal[1] = 1

RetryReason = Literal["api_error", "timeout", "worker_lost", "shutdown"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(_Model):
    v: Literal[1] = EVENT_VERSION
    job_id: str
    attempt: int = Field(ge=0)
    ts: float = Field(default_factory=time.time)


class ErrorInfo(_Model):
    """What failed, in LiveKit's APIError terms."""

    type: str = Field(description="APIStatusError, APITimeoutError, APIConnectionError, ...")
    message: str
    status_code: int | None = None
    retryable: bool = False
    request_id: str | None = None


class TokenUsage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Queued(_Event):
    type: Literal["queued"] = "queued"
    kind: str
    model: str


class Started(_Event):
    type: Literal["started"] = "started"
    worker: str


class Text(_Event):
    type: Literal["text"] = "text"
    text: str


class Thinking(_Event):
    """Extended thinking. A thinking block arrives as pieces of `text`; its last event carries
    the `signature`. A redacted_thinking block arrives whole, as one event with `redacted`."""

    type: Literal["thinking"] = "thinking"
    text: str = ""
    signature: str | None = Field(
        default=None, description="Set on the block's last event; the block is then complete."
    )
    redacted: str | None = Field(
        default=None, description="The encrypted data of a redacted_thinking block."
    )


class ToolCall(_Event):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: str = Field(description="The tool input as a JSON string, exactly as streamed.")


class Usage(_Event, TokenUsage):
    type: Literal["usage"] = "usage"

    @property
    def tokens(self) -> TokenUsage:
        """The token counts alone, to add up."""
        return TokenUsage.model_validate(self.model_dump(include=set(TokenUsage.model_fields)))


class Action(_Event):
    """The model asked for a browser action (input redacted per the job's rules)."""

    type: Literal["action"] = "action"
    step: int = Field(ge=1)
    tool_use_id: str
    action: str
    input: dict[str, JsonValue]


class Screenshot(_Event):
    """The screen after step `step`; the bytes live at `relayq:{<job_id>}:blob:<blob>`."""

    type: Literal["screenshot"] = "screenshot"
    step: int = Field(ge=0)
    blob: int = Field(ge=1)
    media_type: str
    width: int
    height: int
    size: int = Field(description="Bytes of the image.")
    settle_ms: float | None = None
    url: str | None = Field(default=None, description="The page's URL when it was taken.")


class Retry(_Event):
    """Attempt ``attempt`` is void; attempt ``attempt + 1`` starts after ``delay`` seconds."""

    type: Literal["retry"] = "retry"
    reason: RetryReason
    error: ErrorInfo | None = None
    delay: float = Field(ge=0.0)


class Error(_Event):
    type: Literal["error"] = "error"
    error: ErrorInfo


class Done(_Event):
    type: Literal["done"] = "done"
    stop_reason: str | None = None
    usage: TokenUsage = TokenUsage()


class Cancelled(_Event):
    type: Literal["cancelled"] = "cancelled"
    reason: str = "cancelled by a client"


Event = Annotated[
    Queued
    | Started
    | Text
    | Thinking
    | ToolCall
    | Usage
    | Action
    | Screenshot
    | Retry
    | Error
    | Done
    | Cancelled,
    Field(discriminator="type"),
]
TERMINAL_TYPES = frozenset({"done", "error", "cancelled"})
OUTPUT_TYPES = frozenset({"text", "thinking", "tool_call", "usage", "action", "screenshot"})

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: str | bytes) -> Event:
    return event_adapter.validate_json(raw)


def is_terminal(event: Event) -> bool:
    return event.type in TERMINAL_TYPES
