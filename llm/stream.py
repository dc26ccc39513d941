"""LLMStream: one streamed Messages request, turned into LiveKit ChatChunks.

`StreamAccumulator` is the pure part: stream events in (the JSON objects the API sends, or
the SDK's models of them), ChatChunks out, no I/O. `LLMStream._run` makes one attempt: a
fresh request from the factory (sent by the SDK), its body read by `relayq.llm.sse` (lean:
no per-event pydantic validation), a fresh accumulator, and SDK failures translated where
they enter (see `relayq.llm.errors`).

What each event becomes:

=========================================  ===============================================
event                                      ChatChunk (id = the message id)
=========================================  ===============================================
text_delta                                 delta(role="assistant", content=text); with
                                           tools, a `<thinking>...</thinking>` span that
                                           opens the text block is removed
tool_use block, at content_block_stop      delta(tool_calls=[FunctionToolCall(name, call_id,
                                           arguments=the raw JSON text, even if invalid,
                                           extra={THINKING_EXTRA_KEY: the message's thinking
                                           blocks so far} when it has any)])
thinking_delta                             delta(extra={"thinking": text}), content None
thinking block, at content_block_stop      delta(extra={"thinking_block": {"type": "thinking",
                                           "thinking": full text, "signature": sig},
                                           THINKING_EXTRA_KEY: every block so far})
redacted_thinking block, at its stop       delta(extra={"thinking_block":
                                           {"type": "redacted_thinking", "data": ...},
                                           THINKING_EXTRA_KEY: every block so far})
message_stop                               usage=CompletionUsage (prompt = input + cache
                                           creation + cache read)
message_start, message_delta               nothing; they feed the ids, usage, stop_reason
ping, citations_delta, server tool blocks  nothing
and event types this code does not know
=========================================  ===============================================

The signed thinking blocks ride along so that a LiveKit AgentSession keeps them: it stores a
tool call's `FunctionToolCall.extra` on the FunctionCall it adds to the chat context, and the
merged `delta.extra` of a reply on its assistant message; `LLM.chat` sends them back first in
that assistant turn, as the API requires in a tool loop with thinking enabled. Thinking counts
as output: once any was delivered, a failed attempt is not retried (it would be delivered
twice).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias

import anthropic
from anthropic.types import RawMessageStreamEvent
from anthropic.types.beta import BetaRawMessageStreamEvent
from livekit.agents import APIConnectionError, llm
from livekit.agents.llm import ChatChunk, ChoiceDelta, CompletionUsage, FunctionToolCall, Tool
from livekit.agents.types import APIConnectOptions
from opentelemetry import trace

from relayq.schemas.jobs import THINKING_EXTRA_KEY

from .errors import MalformedStreamError, translate_error
from .sse import message_events

_tracer = trace.get_tracer("relayq.llm")

if TYPE_CHECKING:
    from .llm import LLM

__all__ = [
    "THINKING_EXTRA_KEY",
    "ChunkStream",
    "LLMStream",
    "StreamAccumulator",
    "StreamEvent",
    "StreamFactory",
    "ThinkingTagFilter",
]


StreamEvent: TypeAlias = RawMessageStreamEvent | BetaRawMessageStreamEvent
AnthropicStream: TypeAlias = (
    anthropic.AsyncStream[RawMessageStreamEvent] | anthropic.AsyncStream[BetaRawMessageStreamEvent]
)
StreamAwaitable: TypeAlias = Awaitable[AnthropicStream]
"""One streaming request, sent when awaited (a coroutine of `messages.create(stream=True)`)."""
StreamFactory: TypeAlias = Callable[[], StreamAwaitable]
"""Starts one streaming request and returns its stream: called once per attempt."""

_OPEN_TAG = "<thinking>"
_CLOSE_TAG = "</thinking>"


class ThinkingTagFilter:
    """Removes the `<thinking>...</thinking>` span that opens a text block, and the whitespace
    after it.

    Older Claude models write their chain of thought inline, at the start of the text, when
    tools are offered. Only a span at the very start of the block (after whitespace) is removed:
    a `<thinking>` later in the text is part of the answer and stays. A tag may be split across
    deltas, so text that could still be the start of one is held back until the next piece (or
    `flush`) shows what it is. One filter serves one text block at a time; `flush` ends it.
    """

    def __init__(self) -> None:
        self._state: Literal["start", "inside", "after", "passing"] = "start"
        self._held = ""

    def feed(self, text: str) -> str:
        buf, self._held = self._held + text, ""
        if self._state == "start":
            stripped = buf.lstrip()
            if _OPEN_TAG.startswith(stripped):  # only whitespace, or a tag not yet complete
                self._held = buf
                return ""
            if not stripped.startswith(_OPEN_TAG):
                self._state = "passing"
                return buf
            buf, self._state = stripped[len(_OPEN_TAG) :], "inside"
        if self._state == "inside":
            end = buf.find(_CLOSE_TAG)
            if end < 0:
                self._held = buf[len(buf) - _partial_tag_len(buf, _CLOSE_TAG) :]
                return ""
            buf, self._state = buf[end + len(_CLOSE_TAG) :], "after"
        if self._state == "after":
            buf = buf.lstrip()
            if not buf:
                return ""
            self._state = "passing"
        return buf

    def flush(self) -> str:
        """The held-back text at the end of a text block (an unclosed span is dropped)."""
        text = self._held if self._state == "start" else ""
        self._state, self._held = "start", ""
        return text


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest proper prefix of `tag` that `text` ends with."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


@dataclass
class _Block:
    kind: Literal["text", "tool_use", "thinking", "redacted_thinking", "other"]
    call_id: str = ""
    name: str = ""
    initial_input: object = None
    parts: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""


class StreamAccumulator:
    """State of one attempt's stream: feed it events in order, in a fresh instance per attempt.

    `strip_thinking_tags` removes inline `<thinking>` spans from text (set it when tools
    were offered, as the LiveKit plugin does).
    """

    def __init__(self, *, strip_thinking_tags: bool = False) -> None:
        self._filter = ThinkingTagFilter() if strip_thinking_tags else None
        self._blocks: dict[int, _Block] = {}
        self.message_id = ""
        self.stop_reason: str | None = None
        self.completed = False
        self.produced_output = False
        self.thinking_blocks: list[dict[str, Any]] = []
        self._input_tokens = 0
        self._output_tokens = 0
        self._cache_creation_tokens = 0
        self._cache_read_tokens = 0
        self._reasoning_tokens = 0

    @property
    def usage(self) -> CompletionUsage:
        prompt = self._input_tokens + self._cache_creation_tokens + self._cache_read_tokens
        return CompletionUsage(
            completion_tokens=self._output_tokens,
            prompt_tokens=prompt,
            prompt_cached_tokens=self._cache_read_tokens,
            cache_creation_tokens=self._cache_creation_tokens,
            cache_read_tokens=self._cache_read_tokens,
            reasoning_tokens=self._reasoning_tokens,
            total_tokens=prompt + self._output_tokens,
        )

    def feed(self, event: StreamEvent | dict[str, Any]) -> list[ChatChunk]:
        """Takes one event: its JSON object as the API sent it, or the SDK's model of it."""
        data: dict[str, Any] = event if isinstance(event, dict) else event.model_dump()
        match data["type"]:
            case "message_start":
                message = data["message"]
                self.message_id = message["id"]
                usage = message["usage"]
                self._input_tokens = usage.get("input_tokens") or 0
                self._output_tokens = usage.get("output_tokens") or 0
                self._cache_creation_tokens = usage.get("cache_creation_input_tokens") or 0
                self._cache_read_tokens = usage.get("cache_read_input_tokens") or 0
            case "content_block_start":
                return self._start_block(data["index"], data["content_block"])
            case "content_block_delta":
                return self._apply_delta(data["index"], data["delta"])
            case "content_block_stop":
                return self._stop_block(data["index"])
            case "message_delta":
                self.stop_reason = data["delta"].get("stop_reason") or self.stop_reason
                self._update_usage(data["usage"])
            case "message_stop":
                self.completed = True
                return [ChatChunk(id=self.message_id, usage=self.usage)]
            case _:
                pass
        return []

    def _start_block(self, index: int, block: dict[str, Any]) -> list[ChatChunk]:
        match block["type"]:
            case "text":
                self._blocks[index] = _Block("text")
                return self._text(block.get("text") or "")
            case "tool_use":
                self._blocks[index] = _Block(
                    "tool_use",
                    call_id=block["id"],
                    name=block["name"],
                    initial_input=block.get("input"),
                )
            case "thinking":
                self._blocks[index] = _Block("thinking", signature=block.get("signature") or "")
                return self._thinking(block.get("thinking") or "", index)
            case "redacted_thinking":
                self._blocks[index] = _Block("redacted_thinking", data=block["data"])
            case _:
                self._blocks[index] = _Block("other")
        return []

    def _apply_delta(self, index: int, delta: dict[str, Any]) -> list[ChatChunk]:
        block = self._blocks.get(index)
        if block is None:
            return []
        match delta["type"]:
            case "text_delta" if block.kind == "text":
                return self._text(delta["text"])
            case "input_json_delta" if block.kind == "tool_use":
                block.parts.append(delta["partial_json"])
            case "thinking_delta" if block.kind == "thinking":
                return self._thinking(delta["thinking"], index)
            case "signature_delta" if block.kind == "thinking":
                block.signature = delta["signature"]
            case _:
                pass
        return []

    def _stop_block(self, index: int) -> list[ChatChunk]:
        block = self._blocks.pop(index, None)
        if block is None:
            return []
        match block.kind:
            case "text":
                return self._text(self._filter.flush()) if self._filter else []
            case "tool_use":
                self.produced_output = True
                call = FunctionToolCall(
                    name=block.name,
                    call_id=block.call_id,
                    arguments=_arguments(block),
                    extra=self._thinking_extra() or None,
                )
                return [self._chunk(ChoiceDelta(role="assistant", tool_calls=[call]))]
            case "thinking":
                thinking = {
                    "type": "thinking",
                    "thinking": "".join(block.parts),
                    "signature": block.signature,
                }
                return [self._thinking_block(thinking)]
            case "redacted_thinking":
                return [self._thinking_block({"type": "redacted_thinking", "data": block.data})]
            case _:
                return []

    def _text(self, text: str) -> list[ChatChunk]:
        if self._filter is not None:
            text = self._filter.feed(text)
        if not text:
            return []
        self.produced_output = True
        return [self._chunk(ChoiceDelta(role="assistant", content=text))]

    def _thinking(self, text: str, index: int) -> list[ChatChunk]:
        if not text:
            return []
        self.produced_output = True
        self._blocks[index].parts.append(text)
        return [self._chunk(ChoiceDelta(role="assistant", extra={"thinking": text}))]

    def _thinking_block(self, block: dict[str, Any]) -> ChatChunk:
        self.produced_output = True
        self.thinking_blocks.append(block)
        extra = {"thinking_block": block, **self._thinking_extra()}
        return self._chunk(ChoiceDelta(role="assistant", extra=extra))

    def _thinking_extra(self) -> dict[str, Any]:
        if not self.thinking_blocks:
            return {}
        return {THINKING_EXTRA_KEY: [dict(b) for b in self.thinking_blocks]}

    def _update_usage(self, usage: dict[str, Any]) -> None:
        self._output_tokens = usage["output_tokens"]
        if (n := usage.get("input_tokens")) is not None:
            self._input_tokens = n
        if (n := usage.get("cache_creation_input_tokens")) is not None:
            self._cache_creation_tokens = n
        if (n := usage.get("cache_read_input_tokens")) is not None:
            self._cache_read_tokens = n
        if (details := usage.get("output_tokens_details")) is not None:
            self._reasoning_tokens = details.get("thinking_tokens") or 0

    def _chunk(self, delta: ChoiceDelta) -> ChatChunk:
        return ChatChunk(id=self.message_id, delta=delta)


def _arguments(block: _Block) -> str:
    return "".join(block.parts) or json.dumps(block.initial_input or {})


class _ReplyDescription:
    """What a stream knows of its reply once read: shared by LLMStream and ChunkStream."""

    _accumulator: StreamAccumulator
    _request_id: str | None

    @property
    def stop_reason(self) -> str | None:
        """Why the model stopped ("end_turn", "tool_use", "max_tokens", ...), once known."""
        return self._accumulator.stop_reason

    @property
    def request_id(self) -> str | None:
        """The `request-id` response header of the last attempt."""
        return self._request_id

    @property
    def message_id(self) -> str:
        """The id of the message being streamed (the id of every ChatChunk)."""
        return self._accumulator.message_id

    @property
    def thinking_blocks(self) -> list[dict[str, Any]]:
        """The completed thinking blocks, as they must be sent back in the next turn."""
        return list(self._accumulator.thinking_blocks)

    def _note_request_id(self, request_id: str | None) -> None:
        self._request_id = request_id


class LLMStream(_ReplyDescription, llm.LLMStream):
    """A streamed chat completion; iterate it for ChatChunks.

    `anthropic_stream` sends the request: a zero-argument callable returning the awaitable of
    the SDK's `AsyncStream` (e.g. `lambda: client.messages.create(..., stream=True)`), called
    once per attempt so that a retry sends a fresh request; or, as in livekit-plugins-anthropic,
    that awaitable itself. An awaitable can be sent only once, so its stream is never retried
    (its failures are final); `LLM.chat` always passes a callable.

    After iteration, `stop_reason`, `request_id`, `message_id` and `thinking_blocks`
    describe the last attempt.
    """

    def __init__(
        self,
        llm: LLM,
        *,
        anthropic_stream: StreamFactory | StreamAwaitable,
        chat_ctx: llm.ChatContext,
        tools: list[Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        if not callable(anthropic_stream) and not inspect.isawaitable(anthropic_stream):
            raise TypeError(
                "anthropic_stream must be a zero-argument callable returning the request's "
                f"awaitable, or that awaitable; got {type(anthropic_stream).__name__}"
            )
        super().__init__(llm, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._stream_factory: StreamFactory | None = None
        self._single_request: StreamAwaitable | None = None
        if callable(anthropic_stream):
            self._stream_factory = anthropic_stream
        else:
            self._single_request = anthropic_stream
        # A retry after delivered output would deliver it twice.
        self._retry_on_chunk_sent = False
        self._accumulator = StreamAccumulator()
        self._request_id: str | None = None

    async def aclose(self) -> None:
        await super().aclose()
        if inspect.iscoroutine(self._single_request):
            self._single_request.close()  # never sent: no "coroutine never awaited" warning
        self._single_request = None

    async def _run(self) -> None:
        accumulator = self._accumulator = StreamAccumulator(strip_thinking_tags=bool(self._tools))
        self._request_id = None
        attempt = attempt_chunks(
            self._start_request,
            accumulator,
            output_final=self._stream_factory is None,
            on_response=self._note_request_id,
        )
        async for chunk in attempt:
            self._event_ch.send_nowait(chunk)

    async def _start_request(self) -> AnthropicStream:
        if self._stream_factory is not None:
            return await self._stream_factory()
        request, self._single_request = self._single_request, None
        if request is None:
            raise APIConnectionError(
                "the request was given as an awaitable, which can be sent only once; pass a "
                "zero-argument callable as anthropic_stream to retry it",
                retryable=False,
            )
        return await request


async def attempt_chunks(
    request: Callable[[], StreamAwaitable],
    accumulator: StreamAccumulator,
    *,
    output_final: bool = False,
    on_response: Callable[[str | None], None] | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """One attempt: sends `request()`, reads its body leanly (`relayq.llm.sse`) into
    `accumulator`, and yields the ChatChunks; failures come out as LiveKit APIErrors.
    `output_final` makes them final whether or not output was delivered (a request that
    cannot be sent again); `on_response` gets the response's `request-id` header."""
    try:
        stream = await request()
        if on_response is not None:
            on_response(stream.response.headers.get("request-id"))
        async with stream:  # closes the response, however the reading ends
            async for event in message_events(stream.response):
                try:
                    chunks = accumulator.feed(event)
                except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
                    kind = event.get("type") if isinstance(event, dict) else type(event)
                    raise MalformedStreamError(f"malformed {kind} event: {e!r}") from e
                for chunk in chunks:
                    yield chunk
    except Exception as e:
        translated = translate_error(e, output_sent=accumulator.produced_output or output_final)
        if translated is None:
            raise
        raise translated from e
    if not accumulator.completed:
        raise APIConnectionError(
            "stream ended before message_stop",
            retryable=not (accumulator.produced_output or output_final),
        )


class ChunkStream(_ReplyDescription):
    """One attempt of a streamed request as ChatChunks, without LiveKit's LLMStream around it
    (its task, event channel, tee and metrics, which cost as much CPU per chunk as the
    parsing): for a caller that retries on its own, as relayq's worker does. Failures are the
    same LiveKit APIErrors as LLMStream's. Iterate it once; `stop_reason`, `request_id`,
    `message_id` and `thinking_blocks` then describe the reply."""

    def __init__(
        self,
        request: StreamFactory,
        *,
        strip_thinking_tags: bool = False,
        span_attributes: dict[str, str] | None = None,
    ) -> None:
        self._request: StreamFactory | None = request
        self._span_attributes = span_attributes or {}
        self._accumulator = StreamAccumulator(strip_thinking_tags=strip_thinking_tags)
        self._chunks: AsyncGenerator[ChatChunk, None] | None = None
        self._request_id: str | None = None

    def __aiter__(self) -> AsyncGenerator[ChatChunk, None]:
        if self._request is None:
            raise RuntimeError("a ChunkStream is iterated once")
        request, self._request = self._request, None
        chunks = attempt_chunks(request, self._accumulator, on_response=self._note_request_id)
        self._chunks = _traced(chunks, self._span_attributes)
        return self._chunks

    async def aclose(self) -> None:
        """Stops reading (and closes the response) if the iteration did not finish."""
        if self._chunks is not None:
            await self._chunks.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _traced(
    chunks: AsyncGenerator[ChatChunk, None], attributes: dict[str, str]
) -> AsyncGenerator[ChatChunk, None]:
    """`chunks` inside an `llm_request` span, as LiveKit's LLMStream makes one (a child of
    the span current when iteration starts; a no-op without an OpenTelemetry SDK)."""
    span = _tracer.start_span("llm_request", attributes=attributes)
    try:
        async for chunk in chunks:
            yield chunk
    except Exception as e:
        span.record_exception(e)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(e)))
        raise
    finally:
        await chunks.aclose()
        span.end()
