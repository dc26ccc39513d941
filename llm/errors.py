"""Translation of Anthropic SDK failures into LiveKit's API errors.

Everything that leaves `llm` is one of LiveKit's exception classes, with the SDK
exception kept as `__cause__`::

    livekit.agents.APIError                    retryable: bool
    ├── APIStatusError                         status_code, request_id, body
    │     <- anthropic.APIStatusError          HTTP 4xx / 5xx before the stream began
    │     <- SSE `event: error` after HTTP 200 status_code from error.type
    │                                          (overloaded_error -> 529, api_error -> 500, ...)
    └── APIConnectionError
          <- anthropic.APIConnectionError, httpx2 / httpx transport errors,
             a malformed event (invalid JSON, bytes that are not UTF-8),
             a stream that ends before `message_stop`
          └── APITimeoutError
                <- anthropic.APITimeoutError, httpx2 / httpx timeouts
                   (connect, or a gap between bytes longer than the read timeout)

`retryable` follows LiveKit (4xx other than 408, 429 and 499 are final) and is forced
to False once the failed attempt produced output: text or a tool call was already
delivered, and a retry would deliver it again.
"""

from __future__ import annotations

import email.utils
import json
import time

import anthropic
import httpx
import httpx2
from livekit.agents import APIConnectionError, APIError, APIStatusError, APITimeoutError

__all__ = ["STREAM_ERROR_STATUS", "MalformedStreamError", "retry_after", "translate_error"]

# The HTTP status each error type maps to when the API answers without streaming
# (https://docs.claude.com/en/api/errors); an SSE error event carries only the type.
STREAM_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_TIMEOUTS = (anthropic.APITimeoutError, httpx2.TimeoutException, httpx.TimeoutException)
_CONNECTION_FAILURES = (
    anthropic.APIError,
    httpx2.HTTPError,
    httpx.HTTPError,
    json.JSONDecodeError,
    UnicodeDecodeError,  # bytes that are not UTF-8, raised by the SDK's SSE decoder
)


class MalformedStreamError(Exception):
    """An SSE event that parsed but cannot be what the Messages API sends (missing fields,
    an unknown block index, a delta for a block that was never started)."""


def translate_error(error: Exception, *, output_sent: bool) -> APIError | None:
    """The LiveKit error for an SDK or transport failure, or None for anything else.

    Raise the result `from error`. `output_sent` says whether the failed attempt already
    delivered text or a tool call; it makes every error final.
    """
    retryable = not output_sent
    if isinstance(error, anthropic.APIStatusError):
        return APIStatusError(
            error.message,
            status_code=_status_code(error),
            request_id=error.request_id,
            body=error.body,
            retryable=None if retryable else False,
        )
    if isinstance(error, _TIMEOUTS):
        return APITimeoutError(retryable=retryable)
    if isinstance(error, _CONNECTION_FAILURES):
        return APIConnectionError(retryable=retryable)
    if isinstance(error, MalformedStreamError):
        return APIConnectionError(str(error), retryable=retryable)
    return None


def _status_code(error: anthropic.APIStatusError) -> int:
    if 200 <= error.status_code < 300:
        # an error event inside a stream that started with HTTP 200
        return STREAM_ERROR_STATUS.get(str(error.type), 500)
    return error.status_code


def retry_after(error: BaseException) -> float | None:
    """Seconds the API asked to wait before retrying, from the SDK error behind `error`.

    Reads `retry-after-ms`, then `retry-after` (seconds or an HTTP date), from the
    response headers of the first `anthropic.APIStatusError` in the `__cause__` chain.
    No upper cap is applied: the caller decides what it is prepared to wait.
    """
    cause: BaseException | None = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, anthropic.APIStatusError):
            return _retry_after_from_headers(cause.response.headers)
        seen.add(id(cause))
        cause = cause.__cause__
    return None


def _retry_after_from_headers(headers: httpx2.Headers) -> float | None:
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        date = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(date.timestamp() - time.time(), 0.0)
