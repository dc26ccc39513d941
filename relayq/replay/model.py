"""A replay's model: a run (a job's final attempt as far as its stream goes), its steps and
their screenshots."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from relayq.replay.actions import describe_action
from relayq.schemas.events import (
    TERMINAL_TYPES,
    Action,
    ErrorInfo,
    Retry,
    Screenshot,
    TokenUsage,
    ToolCall,
)

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Shot:
    """One `screenshot` event and its bytes; `data` is None once the blob has expired."""

    event: Screenshot
    data: bytes | None

    @property
    def expired(self) -> bool:
        return self.data is None

    @property
    def width(self) -> int:
        return self.event.width

    @property
    def height(self) -> int:
        return self.event.height

    @property
    def media_type(self) -> str | None:
        """The image type, from the bytes themselves when possible; None if not an image."""
        if self.data is not None:
            for magic, media_type in _MAGIC:
                if self.data.startswith(magic):
                    return media_type
            if self.data[:4] == b"RIFF" and self.data[8:12] == b"WEBP":
                return "image/webp"
        declared = self.event.media_type.lower()
        return declared if declared in EXTENSIONS else None

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.media_type or "", "bin")

    def data_uri(self) -> str | None:
        if self.data is None or self.media_type is None:
            return None
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class Step:
    """One action of the final attempt. `text`, `thinking` and `usage` belong to the model turn
    that asked for it and are set on the turn's first step only (a turn may act several times).
    """

    number: int
    turn: int
    action: Action
    text: str = ""
    thinking: str = ""
    usage: TokenUsage | None = None
    screenshot: Shot | None = None

    @property
    def name(self) -> str:
        return self.action.action

    @property
    def label(self) -> str:
        return describe_action(self.action)


@dataclass(frozen=True)
class Run:
    """A job as far as its stream goes now: finished, or a snapshot of a running one."""

    job_id: str
    kind: str
    model: str
    status: str
    task: str | None = None
    start_url: str | None = None
    attempt: int = 0
    retries: tuple[Retry, ...] = ()
    initial: Shot | None = None
    steps: tuple[Step, ...] = ()
    final_text: str = ""
    final_thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: TokenUsage = field(default_factory=TokenUsage)
    stop_reason: str | None = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_event_at: datetime | None = None
    unreadable_entries: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_TYPES

    @property
    def duration_s(self) -> float | None:
        end = self.finished_at or self.last_event_at
        if self.started_at is None or end is None:
            return None
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def shots(self) -> list[tuple[Step | None, Shot]]:
        """Every screenshot of the final attempt in order, with the step it followed."""
        shots: list[tuple[Step | None, Shot]] = []
        if self.initial is not None:
            shots.append((None, self.initial))
        shots.extend((s, s.screenshot) for s in self.steps if s.screenshot is not None)
        return shots
