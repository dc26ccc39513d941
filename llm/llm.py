"""LLM: the Anthropic Messages API as a LiveKit `llm.LLM` (same API as livekit-plugins-anthropic).

`chat()` turns a ChatContext and tools into request parameters and hands `LLMStream` a
factory that sends them; nothing is sent until the stream runs. The client is built
with `max_retries=0`: retries belong to LiveKit's `LLMStream` loop (`conn_options`) or
to whoever drives it with `max_retry=0` (relayq's workers retry at the queue level).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Never, Self, cast

import anthropic
from anthropic.types import RawMessageStreamEvent
from anthropic.types.beta import BetaRawMessageStreamEvent
from livekit.agents import llm
from livekit.agents.llm import ToolChoice
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import is_given

from .models import DEFAULT_MODEL, ChatModels, model_accepts_prefill
from .stream import THINKING_EXTRA_KEY, ChunkStream, LLMStream
from .tools import AnthropicTool

__all__ = ["CACHE_CONTROL_EPHEMERAL", "LLM", "THINKING_EXTRA_KEY"]

CACHE_CONTROL_EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}

_DEFAULT_MAX_TOKENS = 1024
# The API still takes these, but SDK 1.0 removed them from `create()`'s signature.
_SAMPLING_PARAMS = ("temperature", "top_k", "top_p")
_MAX_CONNECT_TIMEOUT = 10.0
_THINKING_BLOCK_TYPES = ("thinking", "redacted_thinking")
_MARKER_PREFIX = "\x00relayq-thinking:"

_Stream = (
    anthropic.AsyncStream[RawMessageStreamEvent] | anthropic.AsyncStream[BetaRawMessageStreamEvent]
)


@dataclass
class _LLMOptions:
    model: str | ChatModels
    user: NotGivenOr[str]
    temperature: NotGivenOr[float]
    parallel_tool_calls: NotGivenOr[bool]
    tool_choice: NotGivenOr[ToolChoice]
    caching: NotGivenOr[Literal["ephemeral"]]
    top_k: NotGivenOr[int]
    max_tokens: NotGivenOr[int]
    thinking: NotGivenOr[dict[str, Any]]
    allow_prefill: bool


class LLM(llm.LLM[Never]):
    def __init__(
        self,
        *,
        model: str | ChatModels = DEFAULT_MODEL,
        api_key: NotGivenOr[str] = NOT_GIVEN,
        base_url: NotGivenOr[str] = NOT_GIVEN,
        user: NotGivenOr[str] = NOT_GIVEN,
        client: anthropic.AsyncClient | None = None,
        top_k: NotGivenOr[int] = NOT_GIVEN,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        caching: NotGivenOr[Literal["ephemeral"]] = NOT_GIVEN,
        thinking: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
        allow_prefill: NotGivenOr[bool] = NOT_GIVEN,
    ) -> None:
        """Create an Anthropic LLM.

        Args:
            model: the model id.
            api_key: defaults to ANTHROPIC_API_KEY; required unless `client` is given.
            base_url: defaults to ANTHROPIC_BASE_URL, then the SDK's default.
            user: sent as `metadata.user_id`.
            client: an `anthropic.AsyncClient` to use instead of building one; it is used
                as given (its own `max_retries` included) and not closed by `aclose()`.
            top_k, temperature: sampling parameters.
            max_tokens: defaults to 1024, plus `budget_tokens` when thinking is enabled.
            parallel_tool_calls: False sends `disable_parallel_tool_use`.
            tool_choice: "auto", "required", "none" or a named function.
            caching: "ephemeral" marks the system prompt, the tools and the last turns
                with `cache_control`.
            thinking: `{"type": "enabled", "budget_tokens": N}` or `{"type": "adaptive"}`;
                thinking is streamed as `extra={"thinking": ...}` chunks, and its signed
                blocks are kept on tool calls and sent back (see `relayq.llm.stream`).
            allow_prefill: whether a context ending with an assistant turn is sent as a
                prefill; when not, a user turn "." is added after it (LiveKit's
                `inject_trailing_user_message`). Defaults to what the model accepts:
                Claude 4.6 and later reject prefill.
        """
        super().__init__()
        self._opts = _LLMOptions(
            model=model,
            user=user,
            temperature=temperature,
            parallel_tool_calls=parallel_tool_calls,
            tool_choice=tool_choice,
            caching=caching,
            top_k=top_k,
            max_tokens=max_tokens,
            thinking=thinking,
            allow_prefill=(
                allow_prefill if is_given(allow_prefill) else model_accepts_prefill(model)
            ),
        )
        self._owns_client = client is None
        if client is None:
            key = api_key if is_given(api_key) else os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise ValueError(
                    "an Anthropic API key is required: pass api_key=, set ANTHROPIC_API_KEY, "
                    "or pass client="
                )
            url = base_url if is_given(base_url) else os.environ.get("ANTHROPIC_BASE_URL")
            client = anthropic.AsyncClient(api_key=key, base_url=url or None, max_retries=0)
        self._client = client

    @property
    def model(self) -> str:
        return self._opts.model

    @property
    def provider(self) -> str:
        return self._client.base_url.netloc.decode("utf-8")

    async def __aenter__(self) -> Self:
        return self

    async def aclose(self) -> None:
        await super().aclose()
        if self._owns_client:
            await self._client.close()

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> LLMStream:
        """Start a streamed completion; the request is sent when the stream is iterated.

        `extra_kwargs` go to `messages.create` and win over the LLM's options; a `betas`
        list among them selects the beta endpoint, as a provider tool's `beta_flag` does.
        `conn_options.timeout` is the read timeout: the longest silence allowed between
        two bytes of the stream, not a limit on the whole response.
        """
        return LLMStream(
            self,
            anthropic_stream=self._request(
                chat_ctx, tools, conn_options, parallel_tool_calls, tool_choice, extra_kwargs
            ),
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=conn_options,
        )

    def chat_chunks(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> ChunkStream:
        """The same request as `chat()`, as one attempt with no retries and no LiveKit
        machinery around it (`ChunkStream`): what a caller that retries on its own iterates
        (`conn_options.max_retry` is not used)."""
        request = self._request(
            chat_ctx, tools, conn_options, parallel_tool_calls, tool_choice, extra_kwargs
        )
        return ChunkStream(
            request,
            strip_thinking_tags=bool(tools),
            span_attributes={"gen_ai.request.model": self.model},
        )

    def _request(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None,
        conn_options: APIConnectOptions,
        parallel_tool_calls: NotGivenOr[bool],
        tool_choice: NotGivenOr[ToolChoice],
        extra_kwargs: NotGivenOr[dict[str, Any]],
    ) -> Callable[[], Awaitable[_Stream]]:
        """A factory that sends the request for this context (once per call)."""
        params = self._base_params()
        if is_given(extra_kwargs):
            params.update(extra_kwargs)
        if not is_given(self._opts.max_tokens) and "max_tokens" not in (extra_kwargs or {}):
            params["max_tokens"] = _default_max_tokens(params.get("thinking"))
        betas: list[str] = list(params.pop("betas", []))

        messages, system = _to_messages(chat_ctx, allow_prefill=self._opts.allow_prefill)
        params["messages"] = messages
        if system:
            params["system"] = [{"type": "text", "text": text} for text in system]

        if tools:
            tool_params, tool_betas = _tool_params(tools)
            betas += [flag for flag in tool_betas if flag not in betas]
            choice = tool_choice if is_given(tool_choice) else self._opts.tool_choice
            parallel = (
                parallel_tool_calls
                if is_given(parallel_tool_calls)
                else self._opts.parallel_tool_calls
            )
            if tool_params:
                # "none" keeps the definitions: a history with tool_use blocks needs them
                params["tools"] = tool_params
                if (choice_param := _tool_choice_param(choice, parallel)) is not None:
                    params["tool_choice"] = choice_param

        if self._opts.caching == "ephemeral":
            _add_cache_control(params)
        _move_sampling_to_body(params)

        timeout = params.pop("timeout", None) or anthropic.Timeout(
            conn_options.timeout, connect=min(conn_options.timeout, _MAX_CONNECT_TIMEOUT)
        )
        client = self._client

        def start_request() -> Awaitable[_Stream]:
            if betas:
                return client.beta.messages.create(
                    betas=betas, stream=True, timeout=timeout, **params
                )
            return client.messages.create(stream=True, timeout=timeout, **params)

        return start_request

    def _base_params(self) -> dict[str, Any]:
        opts = self._opts
        params: dict[str, Any] = {"model": opts.model}
        if is_given(opts.max_tokens):
            params["max_tokens"] = opts.max_tokens
        if is_given(opts.user):
            params["metadata"] = {"user_id": opts.user}
        if is_given(opts.temperature):
            params["temperature"] = opts.temperature
        if is_given(opts.top_k):
            params["top_k"] = opts.top_k
        if is_given(opts.thinking):
            params["thinking"] = opts.thinking
        return params


def _move_sampling_to_body(params: dict[str, Any]) -> None:
    sampling = {name: params.pop(name) for name in _SAMPLING_PARAMS if name in params}
    if sampling:
        params["extra_body"] = {**sampling, **(params.get("extra_body") or {})}


def _default_max_tokens(thinking: object) -> int:
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return _DEFAULT_MAX_TOKENS + int(thinking.get("budget_tokens", 0))
    return _DEFAULT_MAX_TOKENS


def _tool_params(tools: list[llm.Tool]) -> tuple[list[dict[str, Any]], list[str]]:
    """The request's `tools` (function schemas, then provider tools) and the betas they need."""
    tool_ctx = llm.ToolContext(tools)
    params = tool_ctx.parse_function_tools("anthropic")
    betas: list[str] = []
    for tool in tool_ctx.provider_tools:
        if isinstance(tool, AnthropicTool):
            params.append(tool.to_dict())
            if tool.beta_flag and tool.beta_flag not in betas:
                betas.append(tool.beta_flag)
    return params, betas


def _tool_choice_param(
    choice: NotGivenOr[ToolChoice], parallel: NotGivenOr[bool]
) -> dict[str, Any] | None:
    param: dict[str, Any]
    match choice:
        case "none":
            return {"type": "none"}
        case "required":
            param = {"type": "any"}
        case {"type": "function", "function": {"name": name}}:
            param = {"type": "tool", "name": name}
        case "auto":
            param = {"type": "auto"}
        case _ if is_given(parallel):
            param = {"type": "auto"}
        case _:
            return None
    if is_given(parallel):
        param["disable_parallel_tool_use"] = not parallel
    return param


def _to_messages(
    chat_ctx: llm.ChatContext, *, allow_prefill: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """Anthropic `messages` and system texts, with each turn's thinking blocks put first, and a
    user turn after a final assistant turn unless the model takes prefill.

    LiveKit's formatter merges a turn's items into one assistant message, so an assistant
    ChatMessage with thinking gets a marker text to find its message afterwards; a
    FunctionCall is found by its tool_use id.
    """
    by_marker: dict[str, list[dict[str, Any]]] = {}
    by_call_id: dict[str, list[dict[str, Any]]] = {}
    items: list[llm.ChatItem] = []
    for item in chat_ctx.items:
        if item.type == "message" and item.role == "assistant":
            if blocks := item.extra.get(THINKING_EXTRA_KEY):
                marker = f"{_MARKER_PREFIX}{item.id}"
                by_marker[marker] = list(blocks)
                item = item.model_copy(update={"content": [marker, *item.content]})
        elif item.type == "function_call" and (blocks := item.extra.get(THINKING_EXTRA_KEY)):
            by_call_id[item.call_id] = list(blocks)
        items.append(item)

    messages, format_data = llm.ChatContext(items).to_provider_format(
        "anthropic", inject_trailing_user_message=not allow_prefill
    )
    if by_marker or by_call_id:
        for message in messages:
            if message["role"] == "assistant":
                message["content"] = _thinking_first(message["content"], by_marker, by_call_id)
    return cast(list[dict[str, Any]], messages), format_data.system_messages or []


def _thinking_first(
    content: list[dict[str, Any]],
    by_marker: dict[str, list[dict[str, Any]]],
    by_call_id: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    thinking: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for block in content:
        found: list[dict[str, Any]] = []
        if block["type"] == "text" and block["text"] in by_marker:
            found = by_marker[block["text"]]
        else:
            rest.append(block)
            if block["type"] == "tool_use":
                found = by_call_id.get(block["id"], [])
        thinking += [b for b in found if b not in thinking]
    return thinking + rest


def _add_cache_control(params: dict[str, Any]) -> None:
    """Mark the system prompt, the tools, the last assistant turn and the user turn before it."""
    if system := params.get("system"):
        system[-1]["cache_control"] = CACHE_CONTROL_EPHEMERAL
    if tools := params.get("tools"):
        tools[-1]["cache_control"] = CACHE_CONTROL_EPHEMERAL
    seen_assistant = False
    for message in reversed(params["messages"]):
        cacheable = [b for b in message["content"] if b["type"] not in _THINKING_BLOCK_TYPES]
        if not cacheable:
            continue
        if message["role"] == "assistant" and not seen_assistant:
            cacheable[-1]["cache_control"] = CACHE_CONTROL_EPHEMERAL
            seen_assistant = True
        elif message["role"] == "user" and seen_assistant:
            cacheable[-1]["cache_control"] = CACHE_CONTROL_EPHEMERAL
            break
