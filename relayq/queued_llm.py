"""QueuedLLM: a LiveKit `llm.LLM` whose generations run on the relayq fleet.

`chat()` submits a ChatJob and returns an LLMStream of LiveKit ChatChunks read from the job's
stream, so an AgentSession can swap `anthropic.LLM` for `QueuedLLM` with no other change:

    session = AgentSession(llm=relayq.QueuedLLM(redis_url="redis://...", model="claude-..."))

Function tools are sent as JSON schemas; tool calls come back as FunctionToolCall chunks for the
agent to run. With extended thinking, the signed thinking blocks come back as LLMStream sends
them (`delta.extra`, and on each FunctionToolCall's `extra`), so the agent's next request of the
tool loop carries them, as the API requires.

The queue is the only retry layer: a terminal `error` raises the matching APIError (same
`retryable`), and LiveKit's own retry loop is switched off for these streams. Output of a voided
attempt is never yielded twice: the next attempt's output is checked against what was already
yielded and only the new part goes out (if it diverges, the stream fails, not repeats). Closing
the stream before the job ends cancels the job.
"""

from __future__ import annotations

import contextlib
from typing import Any, Never

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    NotGivenOr,
    llm,
)
from livekit.agents.utils import is_given

from relayq.client import Client
from relayq.schemas.events import Done, Error, ErrorInfo, Retry, Text, Thinking, ToolCall, Usage
from relayq.schemas.jobs import (
    DEFAULT_MODEL,
    THINKING_EXTRA_KEY,
    ChatJob,
    ConnOptions,
    NamedToolChoice,
    ToolSchema,
)
from relayq.schemas.settings import Settings


class QueuedLLM(llm.LLM[Never]):
    def __init__(
        self,
        *,
        redis_url: str | None = None,
        client: Client | None = None,
        model: str = DEFAULT_MODEL,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        top_k: NotGivenOr[int] = NOT_GIVEN,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        caching: NotGivenOr[str] = NOT_GIVEN,
        thinking: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
        settings: Settings | None = None,
    ) -> None:
        super().__init__()
        self._owns_client = client is None
        self._client = client or Client(redis_url, settings=settings)
        self._model = model
        self._fields: dict[str, Any] = {"model": model}
        for name, value in (
            ("max_tokens", max_tokens),
            ("temperature", temperature),
            ("top_k", top_k),
            ("parallel_tool_calls", parallel_tool_calls),
            ("caching", caching),
            ("thinking", thinking),
        ):
            if is_given(value):
                self._fields[name] = value
        self._tool_choice = tool_choice

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return "relayq"

    @property
    def client(self) -> Client:
        return self._client

    async def aclose(self) -> None:
        await super().aclose()
        if self._owns_client:
            await self._client.aclose()

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> QueuedLLMStream:
        fields = dict(self._fields)
        if is_given(parallel_tool_calls):
            fields["parallel_tool_calls"] = parallel_tool_calls
        choice = tool_choice if is_given(tool_choice) else self._tool_choice
        if is_given(choice):
            fields["tool_choice"] = _tool_choice(choice)
        if is_given(extra_kwargs):
            fields.update(extra_kwargs)
        job = ChatJob.model_validate(
            {
                **fields,
                "messages": chat_ctx.to_dict(exclude_image=False),
                "tools": [t.model_dump() for t in tool_schemas(tools or [])],
                "conn_options": ConnOptions(
                    max_retry=conn_options.max_retry,
                    retry_interval=conn_options.retry_interval,
                    timeout=conn_options.timeout,
                ).model_dump(),
            }
        )
        return QueuedLLMStream(
            self, job=job, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class QueuedLLMStream(llm.LLMStream):
    def __init__(
        self,
        queued_llm: QueuedLLM,
        *,
        job: ChatJob,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        # the queue retries; LiveKit's loop around _run must not add a second layer
        single = APIConnectOptions(max_retry=0, timeout=conn_options.timeout)
        super().__init__(queued_llm, chat_ctx=chat_ctx, tools=tools, conn_options=single)
        self._client = queued_llm.client
        self.job = job
        self._finished = False

    async def _run(self) -> None:
        await self._client.submit(self.job)
        yielded = _Yielded()
        attempt_text = ""
        attempt_calls: list[ToolCall] = []
        thinking = _ThinkingBlocks()
        attempt = 0
        try:
            async for entry in self._client.events(self.job.id):
                event = entry.event
                if event.attempt > attempt and event.type != "cancelled":
                    attempt, attempt_text, attempt_calls = event.attempt, "", []
                    thinking = _ThinkingBlocks()
                match event:
                    case Text():
                        attempt_text += event.text
                        self._send_text(yielded.new_text(attempt_text))
                    case Thinking():
                        self._send_thinking(event, thinking)
                    case ToolCall():
                        attempt_calls.append(event)
                        if yielded.new_call(attempt_calls):
                            self._send_call(event, thinking.blocks)
                    case Usage():
                        self._send_usage(event)
                    case Retry():
                        attempt, attempt_text, attempt_calls = event.attempt + 1, "", []
                        thinking = _ThinkingBlocks()
                    case Done():
                        self._finished = True
                        return
                    case Error():
                        self._finished = True
                        raise _api_error(event.error)
                    case _ if event.type == "cancelled":
                        self._finished = True
                        raise APIConnectionError("the job was cancelled", retryable=False)
        finally:
            if not self._finished:
                with contextlib.suppress(Exception):
                    await self._client.cancel(self.job.id, "the LiveKit stream was closed")

    def _send_text(self, text: str) -> None:
        if text:
            self._event_ch.send_nowait(
                llm.ChatChunk(id=self.job.id, delta=llm.ChoiceDelta(role="assistant", content=text))
            )

    def _send_thinking(self, event: Thinking, thinking: _ThinkingBlocks) -> None:
        """Thinking as LLMStream streams it: pieces as `extra["thinking"]`, each completed block
        as `extra["thinking_block"]` with every block so far under THINKING_EXTRA_KEY."""
        if event.text:
            self._send_extra({"thinking": event.text})
        if (block := thinking.add(event)) is not None:
            self._send_extra({"thinking_block": block, THINKING_EXTRA_KEY: thinking.blocks})

    def _send_extra(self, extra: dict[str, Any]) -> None:
        self._event_ch.send_nowait(
            llm.ChatChunk(id=self.job.id, delta=llm.ChoiceDelta(role="assistant", extra=extra))
        )

    def _send_call(self, call: ToolCall, thinking: list[dict[str, Any]]) -> None:
        # the signed thinking travels with the call, so that an AgentSession keeps it on the
        # FunctionCall and the next job of the tool loop sends it back
        extra = {THINKING_EXTRA_KEY: thinking} if thinking else None
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=self.job.id,
                delta=llm.ChoiceDelta(
                    role="assistant",
                    tool_calls=[
                        llm.FunctionToolCall(
                            name=call.name,
                            arguments=call.arguments,
                            call_id=call.call_id,
                            extra=extra,
                        )
                    ],
                ),
            )
        )

    def _send_usage(self, usage: Usage) -> None:
        u = usage.tokens
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=self.job.id,
                usage=llm.CompletionUsage(
                    completion_tokens=u.completion_tokens,
                    prompt_tokens=u.prompt_tokens,
                    prompt_cached_tokens=u.cache_read_tokens,
                    cache_creation_tokens=u.cache_creation_tokens,
                    cache_read_tokens=u.cache_read_tokens,
                    total_tokens=u.total_tokens,
                ),
            )
        )


class _ThinkingBlocks:
    """The thinking blocks of one attempt, rebuilt from its `thinking` events."""

    def __init__(self) -> None:
        self._text = ""
        self._blocks: list[dict[str, Any]] = []

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return [dict(b) for b in self._blocks]

    def add(self, event: Thinking) -> dict[str, Any] | None:
        """Takes one event; returns the block it completes, if any."""
        block: dict[str, Any]
        if event.redacted is not None:
            block = {"type": "redacted_thinking", "data": event.redacted}
        elif event.signature is not None:
            block = {"type": "thinking", "thinking": self._text + event.text}
            block["signature"] = event.signature
            self._text = ""
        else:
            self._text += event.text
            return None
        self._blocks.append(block)
        return dict(block)


class _Yielded:
    """What has gone out to the caller across attempts, so a retry never repeats it."""

    def __init__(self) -> None:
        self.text = ""
        self.call_ids: list[tuple[str, str, str]] = []

    def new_text(self, attempt_text: str) -> str:
        """The part of this attempt's text not yet yielded. Raises if the attempts diverge."""
        if len(attempt_text) <= len(self.text):
            if not self.text.startswith(attempt_text):
                raise _diverged()
            return ""
        if not attempt_text.startswith(self.text):
            raise _diverged()
        fresh = attempt_text[len(self.text) :]
        self.text = attempt_text
        return fresh

    def new_call(self, attempt_calls: list[ToolCall]) -> bool:
        signature = [(c.name, c.arguments, c.call_id) for c in attempt_calls]
        n = len(signature)
        if n <= len(self.call_ids):
            # a retried attempt re-issuing a call already yielded: same name and input is fine
            if [s[:2] for s in signature] != [s[:2] for s in self.call_ids[:n]]:
                raise _diverged()
            return False
        self.call_ids = signature
        return True


def _diverged() -> APIError:
    return APIConnectionError(
        "a retried attempt produced output different from what was already streamed",
        retryable=False,
    )


def _api_error(info: ErrorInfo) -> APIError:
    if info.status_code is not None:
        return APIStatusError(
            info.message,
            status_code=info.status_code,
            request_id=info.request_id,
            retryable=info.retryable,
        )
    if info.type == "APITimeoutError":
        return APITimeoutError(info.message, retryable=info.retryable)
    if info.type == "APIConnectionError":
        return APIConnectionError(info.message, retryable=info.retryable)
    return APIError(f"{info.type}: {info.message}", retryable=info.retryable)


def tool_schemas(tools: list[llm.Tool]) -> list[ToolSchema]:
    """Function tools as the JSON schemas a ChatJob carries; provider tools cannot travel."""
    context = llm.ToolContext(tools)
    if context.provider_tools:
        names = ", ".join(type(t).__name__ for t in context.provider_tools)
        raise ValueError(f"provider tools cannot run on the queue: {names}")
    # LiveKit marks its generated schemas `strict`; the schema itself travels, the flag not
    return [
        ToolSchema.model_validate({k: v for k, v in schema.items() if k != "strict"})
        for schema in context.parse_function_tools("anthropic")
    ]


def _tool_choice(choice: llm.ToolChoice) -> str | dict[str, str]:
    if isinstance(choice, dict):
        return NamedToolChoice(name=choice["function"]["name"]).model_dump()
    return str(choice)
