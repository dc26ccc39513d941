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


def error_info(error: APIError, *, retry_in: float | None = None) -> ErrorInfo:
    """The failure as events carry it; `retry_in`: the delay of the retry it causes, if any."""
    status_code = error.status_code if isinstance(error, APIStatusError) else None
    request_id = error.request_id if isinstance(error, APIStatusError) else None
    kind = type(error).__name__
    if isinstance(error, APITimeoutError):
        kind = "APITimeoutError"
    message = describe(error)
    if retry_in is not None:
        message += f", retrying in {retry_in:.1f} s"
    elif is_transient(error) and not error.retryable:
        message += "; not retried: output had already been streamed"
    return ErrorInfo(
        type=kind,
        message=message,
        status_code=status_code,
        retryable=error.retryable,
        request_id=request_id,
    )


_STATUS_MEANING = {
    400: "rejected the request",
    401: "rejected the API key (check ANTHROPIC_API_KEY)",
    402: "refused the request for billing reasons",
    403: "refused the request (no permission)",
    404: "does not know this model or endpoint",
    408: "timed out the request",
    409: "reported a conflict",
    413: "rejected the request as too large",
    429: "rate limit hit",
    500: "internal error",
    504: "timed out",
    529: "overloaded",
}
_DETAIL_LIMIT = 300


def describe(error: APIError) -> str:
    """`Anthropic API overloaded (529)`: a failure as a person reads it, never an SDK repr."""
    if isinstance(error, APIStatusError):
        code = error.status_code
        meaning = _STATUS_MEANING.get(code) or ("error" if code >= 500 else "rejected the request")
        text = f"Anthropic API {meaning} ({code})"
        detail = _api_message(error.body)
        if detail and 400 <= code < 500 and code != 429:
            text += f": {detail}"
        return text
    if isinstance(error, APITimeoutError):
        return "Anthropic API did not answer in time"
    reason = _root_reason(error)
    said = f" ({reason})" if reason else ""
    if _never_connected(error):
        return f"could not connect to the Anthropic API{said}"
    return f"the connection to the Anthropic API broke off{said}"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def _never_connected(error: BaseException) -> bool:
    return any(
        isinstance(c, ConnectionRefusedError) or type(c).__name__ == "ConnectError"
        for c in _causes(error)
    )


def _api_message(body: object) -> str:
    """The `error.message` the API sent (its error body), shortened."""
    inner = body.get("error") if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    message = " ".join(message.split())
    return message if len(message) <= _DETAIL_LIMIT else message[: _DETAIL_LIMIT - 1] + "…"


def _root_reason(error: BaseException) -> str:
    """The innermost cause's own words (e.g. `[Errno 111] Connection refused`)."""
    reason = ""
    for cause in _causes(error):
        said = " ".join(str(cause).split())
        if said and said not in ("Connection error.", "Request timed out."):
            reason = said
    return reason[:_DETAIL_LIMIT]
