"""Which failures are retried, and after how long: LiveKit's APIError rules, decided per attempt.

    APIError                      retryable as LiveKit sets it; False once output was streamed
    ├── APIStatusError            4xx not retryable, except 408, 429 and 499; 5xx and 529 are
    └── APIConnectionError        retryable
        └── APITimeoutError       retryable

A job with `restart_after_output` also retries a transient failure after output (the attempt's
output is voided by the `retry` event). Delays grow exponentially from `retry_interval` with
jitter, and `retry-after` from the API is honoured however long it is: the job is deferred on the
queue, not slept on in the worker.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from livekit.agents import APIConnectionError, APIError, APIStatusError, APITimeoutError

from relayq.llm.errors import retry_after
from relayq.schemas.events import ErrorInfo
from relayq.schemas.jobs import _JobBase

MAX_BACKOFF_S = 60.0


def is_transient(error: APIError) -> bool:
    """Would LiveKit retry this failure if no output had been streamed yet?"""
    if isinstance(error, APIStatusError):
        return error.status_code in (408, 429, 499) or error.status_code >= 500
    return isinstance(error, APIConnectionError)


def retry_delay(error: APIError, job: _JobBase, attempt: int) -> float | None:
    """Seconds until the next attempt, or None when attempt `attempt` was the last one."""
    retryable = error.retryable or (job.restart_after_output and is_transient(error))
    if not retryable or attempt > job.conn_options.max_retry:
        return None
    delay = backoff(job.conn_options.retry_interval, attempt)
    if (server_delay := retry_after(error)) is not None:
        delay = max(delay, server_delay)
    if job.deadline is not None and datetime.now(UTC) + timedelta(seconds=delay) >= job.deadline:
        return None
    return delay


def backoff(retry_interval: float, attempt: int) -> float:
    """Exponential from `retry_interval`, capped, with jitter in [50 %, 100 %]."""
    ceiling: float = min(retry_interval * 2.0 ** (attempt - 1), MAX_BACKOFF_S)
    return ceiling * random.uniform(0.5, 1.0)


def error_info(error: APIError) -> ErrorInfo:
    status_code = error.status_code if isinstance(error, APIStatusError) else None
    request_id = error.request_id if isinstance(error, APIStatusError) else None
    kind = type(error).__name__
    if isinstance(error, APITimeoutError):
        kind = "APITimeoutError"
    return ErrorInfo(
        type=kind,
        message=error.message,
        status_code=status_code,
        retryable=error.retryable,
        request_id=request_id,
    )
