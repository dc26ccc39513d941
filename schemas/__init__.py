"""The wire contract: every byte that crosses Redis or HTTP is one of these models."""

from .events import (
    Cancelled,
    Done,
    Error,
    ErrorInfo,
    Event,
    Queued,
    Retry,
    Started,
    Text,
    Thinking,
    TokenUsage,
    ToolCall,
    Usage,
    is_terminal,
    parse_event,
)
from .jobs import (
    ChatJob,
    ConnOptions,
    NamedToolChoice,
    ToolSchema,
    new_job_id,
    parse_job,
)
from .settings import Settings

__all__ = [
    "Cancelled",
    "ChatJob",
    "ConnOptions",
    "Done",
    "Error",
    "ErrorInfo",
    "Event",
    "NamedToolChoice",
    "Queued",
    "Retry",
    "Settings",
    "Started",
    "Text",
    "Thinking",
    "TokenUsage",
    "ToolCall",
    "ToolSchema",
    "Usage",
    "is_terminal",
    "new_job_id",
    "parse_event",
    "parse_job",
]
