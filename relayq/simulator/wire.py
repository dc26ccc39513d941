"""The Messages API on the wire: SSE events, message JSON and error bodies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import JSONResponse

from .plan import Block, ReplyPlan, Usage
from .request import JSON, dumps

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Invalid request (simulated)",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low (simulated)",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found (simulated)",
    "timeout_error": "Request timed out (simulated)",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your rate limit (simulated).",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}
STATUS_FOR_ERROR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "api_error": 500,
    "overloaded_error": 529,
}


def final_block(block: Block) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": "".join(block.pieces), "signature": block.signature}
    if block.kind == "text":
        return {"type": "text", "text": "".join(block.pieces)}
    return {
        "type": "tool_use",
        "id": block.tool_id,
        "name": block.tool_name,
        "input": block.tool_input,
        "caller": {"type": "direct"},
    }


def start_block(block: Block) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block.kind == "text":
        return {"type": "text", "text": ""}
    return {
        "type": "tool_use",
        "id": block.tool_id,
        "name": block.tool_name,
        "input": {},
        "caller": {"type": "direct"},
    }


def delta_payload(block: Block, piece: str) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking_delta", "thinking": piece}
    if block.kind == "text":
        return {"type": "text_delta", "text": piece}
    return {"type": "input_json_delta", "partial_json": piece}


@dataclass(frozen=True)
class Event:
    name: str
    data: JSON
    is_delta: bool = False


def message_shell(msg_id: str, model: str) -> JSON:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def stream_events(plan: ReplyPlan, usage: Usage, msg_id: str, model: str) -> list[Event]:
    start_usage: JSON = {**usage.payload(1), "service_tier": "standard"}
    events = [
        Event(
            "message_start",
            {
                "type": "message_start",
                "message": {**message_shell(msg_id, model), "usage": start_usage},
            },
        )
    ]
    for index, block in enumerate(plan.blocks):
        events.append(
            Event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": start_block(block),
                },
            )
        )
        if index == 0:
            events.append(Event("ping", {"type": "ping"}))
        for piece in block.pieces:
            events.append(
                Event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": delta_payload(block, piece),
                    },
                    is_delta=True,
                )
            )
        if block.kind == "thinking":
            events.append(
                Event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block.signature},
                    },
                )
            )
        events.append(Event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not plan.blocks:
        events.append(Event("ping", {"type": "ping"}))
    events.append(
        Event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
                "usage": usage.payload(plan.output_tokens),
            },
        )
    )
    events.append(Event("message_stop", {"type": "message_stop"}))
    return events


def sse(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


def error_body(error_type: str, message: str, request_id: str) -> JSON:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(error_type, message, request_id),
        status_code=status,
        headers={"request-id": request_id, **(headers or {})},
    )
