"""What a job produced, as a subscriber should show it: the output of the final attempt only.

A pure accumulator over events, like the anthropic SDK's `accumulate_event`: feed it every event
of a job in stream order; a `retry` event voids the output of the attempt it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relayq.schemas.events import (
    Action,
    Done,
    Error,
    ErrorInfo,
    Event,
    Retry,
    Screenshot,
    Text,
    Thinking,
    TokenUsage,
    ToolCall,
    Usage,
    is_terminal,
)


@dataclass
class Transcript:
    attempt: int = 0
    text: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    screenshots: list[Screenshot] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    retries: list[Retry] = field(default_factory=list)
    terminal: Event | None = None

    @property
    def finished(self) -> bool:
        return self.terminal is not None

    @property
    def outcome(self) -> str | None:
        return self.terminal.type if self.terminal is not None else None

    @property
    def error(self) -> ErrorInfo | None:
        return self.terminal.error if isinstance(self.terminal, Error) else None

    @property
    def stop_reason(self) -> str | None:
        return self.terminal.stop_reason if isinstance(self.terminal, Done) else None

    def feed(self, event: Event) -> bool:
        """Applies one event. Returns False when the event belongs to a voided attempt."""
        if is_terminal(event):
            self.terminal = event
            return True
        if event.attempt < self.attempt:
            return False
        if event.attempt > self.attempt:
            self._start_attempt(event.attempt)
        match event:
            case Retry():
                self.retries.append(event)
                self._start_attempt(event.attempt + 1)
            case Text():
                self.text += event.text
            case Thinking():
                self.thinking += event.text
            case ToolCall():
                self.tool_calls.append(event)
            case Action():
                self.actions.append(event)
            case Screenshot():
                self.screenshots.append(event)
            case Usage():
                self.usage = self.usage + event.tokens
        return True

    def _start_attempt(self, attempt: int) -> None:
        self.attempt = attempt
        self.text = ""
        self.thinking = ""
        self.tool_calls = []
        self.actions = []
        self.screenshots = []
        self.usage = TokenUsage()


def transcript_of(events: list[Event]) -> Transcript:
    transcript = Transcript()
    for event in events:
        transcript.feed(event)
    return transcript
