"""What `relayq watch` knows about a job while it follows the stream: the final attempt's output
(a `relayq.Transcript`) grouped into model turns, tokens and cost over every attempt (a voided
attempt was billed too), timings, and the job's queue position while it waits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relayq.pricing import PRICES, Price, estimate_cost
from relayq.schemas.events import (
    Action,
    Done,
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
)
from relayq.transcript import Transcript


@dataclass
class Turn:
    """One model turn of the final attempt: what it said, then what it did."""

    text: str = ""
    thinking: str = ""
    actions: list[Action] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class QueuePlace:
    queue: str
    position: int | None
    """1-based among waiting jobs; None when the job is not waiting (e.g. delayed)."""
    workers_serving: int


@dataclass
class JobFacts:
    """From the job hash: what the stream may not say (it can be watched from any id)."""

    kind: str = ""
    model: str = ""
    queue: str = ""
    created_ts: float | None = None
    max_steps: int | None = None


@dataclass
class WatchState:
    job_id: str
    facts: JobFacts = field(default_factory=JobFacts)
    prices: Mapping[str, Price] = field(default_factory=lambda: PRICES)
    transcript: Transcript = field(default_factory=Transcript)
    turns: list[Turn] = field(default_factory=lambda: [Turn()])
    billed: TokenUsage = field(default_factory=TokenUsage)
    started_ts: float | None = None
    ended_ts: float | None = None
    place: QueuePlace | None = None
    phase: str = "queued"
    _acting: bool = False

    def feed(self, event: Event) -> None:
        before = self.transcript.attempt
        if isinstance(event, Usage):
            self.billed = self.billed + event.tokens
        if isinstance(event, Queued):
            self.facts.kind = self.facts.kind or event.kind
            self.facts.model = self.facts.model or event.model
            self.facts.created_ts = self.facts.created_ts or event.ts
        if is_terminal(event):
            self.ended_ts = event.ts
            self.phase = event.type
            if isinstance(event, Done) and self.billed == TokenUsage():
                self.billed = event.usage  # watched from after the usage events
        if not self.transcript.feed(event):
            return
        if self.transcript.attempt != before:
            self.turns, self._acting = [Turn()], False
        match event:
            case Started():
                self.started_ts = event.ts
                self.place = None
                self.phase = "running"
            case Retry():
                self.phase = "retrying"
            case Text():
                self._turn().text += event.text
            case Thinking():
                self._turn().thinking += event.text
            case ToolCall():
                self.turns[-1].tool_calls.append(event)
            case Action():
                self.turns[-1].actions.append(event)
                self._acting = True

    def _turn(self) -> Turn:
        if self._acting:
            self.turns.append(Turn())
            self._acting = False
        return self.turns[-1]

    @property
    def step(self) -> int:
        return max((a.step for turn in self.turns for a in turn.actions), default=0)

    @property
    def cost_usd(self) -> float:
        return estimate_cost(self.facts.model, self.billed, self.prices)

    def elapsed_s(self, now: float) -> float | None:
        start = self.facts.created_ts or self.started_ts
        if start is None:
            return None
        return max(0.0, (self.ended_ts or now) - start)
