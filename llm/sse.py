"""The events of a streamed Messages response, read straight from its body.

The SDK sends the request (auth, headers, timeouts, and its exceptions for an HTTP error);
`message_events` then reads the response body itself: it splits the server-sent events,
parses each one's JSON, and yields it as a dict, without the SDK's per-event decoder and
pydantic validation, which cost more CPU than the rest of a relayq worker together.

As the SDK's own stream does, it skips events without a name and `ping`s, and raises
`anthropic.APIStatusError` for an `error` event (the HTTP status then is 200, and the error's
type is in the body). Lines end with LF or CRLF (the API sends LF). Bytes that are not UTF-8
raise `UnicodeDecodeError`, and data that is not JSON `json.JSONDecodeError`, as in the SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

__all__ = ["message_events"]

_EVENT_END = b"\n\n"


async def message_events(response: httpx2.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON object of each event of `response`, in order."""
    pending = b""
    async for chunk in response.aiter_bytes():
        pending += chunk
        if b"\r" in pending:  # the whole buffer: a CRLF may straddle two chunks
            pending = pending.replace(b"\r\n", b"\n")
        if _EVENT_END not in pending:
            continue
        *complete, pending = pending.split(_EVENT_END)
        for raw in complete:
            event = _parse(raw, response)
            if event is not None:
                yield event
    # as in the SDK, an event the body ends in the middle of (no blank line after it) is dropped


def _parse(raw: bytes, response: httpx2.Response) -> dict[str, Any] | None:
    name: str | None = None
    data: list[str] = []
    for line in raw.decode().split("\n"):
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        # comments (a line that starts with ':'), `id` and `retry` carry nothing we use
    if name == "error":
        raise _stream_error("\n".join(data), response)
    if name is None or name == "ping" or not data:
        return None
    event: dict[str, Any] = json.loads("\n".join(data))
    return event


def _stream_error(text: str, response: httpx2.Response) -> anthropic.APIStatusError:
    """What the SDK raises for an `error` event inside a stream that began with HTTP 200."""
    body: object = text
    try:
        body = json.loads(text)
        message = f"{body}"
    except ValueError:
        message = text or f"Error code: {response.status_code}"
    return anthropic.APIStatusError(message, response=response, body=body)
