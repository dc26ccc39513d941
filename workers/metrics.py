"""Prometheus metrics of a worker process, observed from the events its jobs publish.

Every event of an attempt passes through `AttemptMetrics.observe`, so the figures are exactly
what subscribers see: outcomes, retries by reason, time to first token, tokens by model.
Queue depth, the age of the oldest queued job and live browser contexts are sampled by the
worker's heartbeat. `relayq worker --metrics-port P` serves them at http://HOST:P/metrics.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from relayq.schemas.events import (
    Action,
    Event,
    Retry,
    Screenshot,
    Started,
    Text,
    Usage,
    is_terminal,
)

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_STARTED = Counter(
    "relayq_job_attempts_started",
    "Attempts started, by queue.",
    ["queue"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "relayq_jobs_finished",
    "Jobs that reached their terminal event here, by queue and outcome.",
    ["queue", "outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "relayq_retries",
    "Attempts voided and retried, by queue and reason.",
    ["queue", "reason"],
    registry=REGISTRY,
)
TTFT = Histogram(
    "relayq_time_to_first_token_seconds",
    "From the start of an attempt to its first text.",
    ["queue", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
    registry=REGISTRY,
)
DURATION = Histogram(
    "relayq_attempt_duration_seconds",
    "From the start of an attempt to its last event, by outcome (or retry).",
    ["queue", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
TOKENS = Counter(
    "relayq_tokens",
    "Tokens by model and kind (input, output, cache_write, cache_read).",
    ["model", "kind"],
    registry=REGISTRY,
)
STEPS = Counter(
    "relayq_computer_steps",
    "Computer-use actions run.",
    ["action"],
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "relayq_computer_step_duration_seconds",
    "From an action event to its screenshot event.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "relayq_queue_depth",
    "Jobs waiting on the queue (running ones hold leases).",
    ["queue"],
    registry=REGISTRY,
)
OLDEST_AGE = Gauge(
    "relayq_queue_oldest_job_age_seconds",
    "Age of the queue's oldest job that is due.",
    ["queue"],
    registry=REGISTRY,
)
CONTEXTS_LIVE = Gauge(
    "relayq_browser_contexts_live", "Browser contexts open in this worker.", registry=REGISTRY
)


class AttemptMetrics:
    """Observes one attempt's events."""

    def __init__(self, queue: str, model: str = "unknown") -> None:
        self.queue = queue
        self.model = model
        self._started = time.monotonic()
        self._first_text = False
        self._action_at: float | None = None

    def observe(self, event: Event) -> None:
        match event:
            case Started():
                JOBS_STARTED.labels(self.queue).inc()
            case Text() if not self._first_text:
                self._first_text = True
                TTFT.labels(self.queue, self.model).observe(time.monotonic() - self._started)
            case Usage():
                for kind, n in (
                    ("input", event.prompt_tokens),
                    ("output", event.completion_tokens),
                    ("cache_write", event.cache_creation_tokens),
                    ("cache_read", event.cache_read_tokens),
                ):
                    if n:
                        TOKENS.labels(self.model, kind).inc(n)
            case Action():
                STEPS.labels(event.action).inc()
                self._action_at = time.monotonic()
            case Screenshot() if self._action_at is not None:
                STEP_DURATION.observe(time.monotonic() - self._action_at)
                self._action_at = None
            case Retry():
                RETRIES.labels(self.queue, event.reason).inc()
                self._finish("retry")
            case _ if is_terminal(event):
                JOBS_FINISHED.labels(self.queue, event.type).inc()
                self._finish(event.type)

    def _finish(self, outcome: str) -> None:
        DURATION.labels(self.queue, outcome).observe(time.monotonic() - self._started)


_serving = False


def serve(port: int, host: str = "0.0.0.0") -> None:
    global _serving
    start_http_server(port, addr=host, registry=REGISTRY)
    _serving = True


def serving() -> bool:
    """Sampling queue gauges costs Redis commands: only done when someone can scrape them."""
    return _serving
