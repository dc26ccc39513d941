"""The `chat` job: one attempt of a ChatJob, streamed through llm.LLM onto the job's stream."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from arq import Retry as ArqRetry
from livekit.agents import APIConnectOptions, APIError
from livekit.agents.llm import ChatChunk, ChatContext, Tool, ToolChoice

from relayq.llm import LLM
from relayq.llm.function_schemas import tool_from_schema
from relayq.schemas.events import (
    Done,
    Error,
    ErrorInfo,
    Event,
    Retry,
    RetryReason,
    Text,
    Thinking,
    TokenUsage,
    ToolCall,
    Usage,
)
from relayq.schemas.jobs import ChatJob, NamedToolChoice, _JobBase
from relayq.workers.attempts import AttemptContext
from relayq.workers.retry_policy import error_info, retry_delay

logger = logging.getLogger(__name__)


async def chat(attempt: AttemptContext) -> None:
    """The `chat` job body: one attempt of a ChatJob; its JSON is validated here like any input."""
    job = await attempt.parse(ChatJob)
    if job is None:
        return
    publisher = attempt.publisher
    usage_total = TokenUsage()
    model = LLM(
        model=job.model,
        client=attempt.runtime.anthropic_client,
        max_tokens=job.max_tokens,
        **_llm_options(job),
    )
    # one attempt, no LiveKit machinery around it: relayq retries at the queue level
    stream = model.chat_chunks(
        chat_ctx=chat_context(job),
        tools=tools(job),
        conn_options=APIConnectOptions(max_retry=0, timeout=job.conn_options.timeout),
    )
    try:
        async with asyncio.timeout_at(deadline_loop_time(job)):
            async with stream:
                async for chunk in stream:
                    for event in chunk_events(chunk, job.id, attempt.number):
                        if isinstance(event, Usage):
                            usage_total += event.tokens
                            publisher.emit(event, usage=usage_total)
                        else:
                            publisher.emit(event)
    except APIError as e:
        delay = retry_delay(e, job, attempt.number)
        info = error_info(e, retry_in=delay)
        if delay is None:
            await publisher.finish(
                Error(job_id=job.id, attempt=attempt.number, error=info), usage=usage_total
            )
            return
        reason: RetryReason = "timeout" if info.type == "APITimeoutError" else "api_error"
        await publisher.finish(
            Retry(job_id=job.id, attempt=attempt.number, reason=reason, error=info, delay=delay)
        )
        raise ArqRetry(defer=delay) from e
    except TimeoutError:
        await publisher.finish(
            Error(
                job_id=job.id,
                attempt=attempt.number,
                error=ErrorInfo(
                    type="APITimeoutError",
                    message=f"job deadline {job.deadline.isoformat() if job.deadline else ''} "
                    "exceeded",
                    retryable=False,
                ),
            ),
            usage=usage_total,
        )
        return
    finally:
        await model.aclose()
    await publisher.finish(
        Done(
            job_id=job.id,
            attempt=attempt.number,
            stop_reason=stream.stop_reason,
            usage=usage_total,
        ),
        usage=usage_total,
    )


def chat_context(job: ChatJob) -> ChatContext:
    if job.messages is not None:
        return ChatContext.from_dict(dict(job.messages))
    ctx = ChatContext()
    if job.system:
        ctx.add_message(role="system", content=job.system)
    ctx.add_message(role="user", content=job.prompt or "")
    return ctx


def tools(job: ChatJob) -> list[Tool]:
    return [tool_from_schema(t.name, t.description, dict(t.input_schema)) for t in job.tools]


def chunk_events(chunk: ChatChunk, job_id: str, attempt: int) -> list[Event]:
    """Maps one LiveKit ChatChunk to the events it stands for. Pure."""
    events: list[Event] = []
    delta = chunk.delta
    if delta is not None:
        extra = delta.extra or {}
        if thinking := extra.get("thinking"):
            events.append(Thinking(job_id=job_id, attempt=attempt, text=str(thinking)))
        block = extra.get("thinking_block")
        if isinstance(block, dict) and block.get("type") == "thinking":
            signature = str(block.get("signature") or "")
            events.append(Thinking(job_id=job_id, attempt=attempt, signature=signature))
        elif isinstance(block, dict) and block.get("type") == "redacted_thinking":
            redacted = str(block.get("data") or "")
            events.append(Thinking(job_id=job_id, attempt=attempt, redacted=redacted))
        if delta.content:
            events.append(Text(job_id=job_id, attempt=attempt, text=delta.content))
        for call in delta.tool_calls:
            events.append(
                ToolCall(
                    job_id=job_id,
                    attempt=attempt,
                    call_id=call.call_id,
                    name=call.name,
                    arguments=call.arguments,
                )
            )
    if chunk.usage is not None:
        u = chunk.usage
        events.append(
            Usage(
                job_id=job_id,
                attempt=attempt,
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                cache_creation_tokens=u.cache_creation_tokens,
                cache_read_tokens=u.cache_read_tokens,
                total_tokens=u.total_tokens,
            )
        )
    return events


def _llm_options(job: ChatJob) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if job.temperature is not None:
        options["temperature"] = job.temperature
    if job.top_k is not None:
        options["top_k"] = job.top_k
    if job.parallel_tool_calls is not None:
        options["parallel_tool_calls"] = job.parallel_tool_calls
    if job.tool_choice is not None:
        options["tool_choice"] = _tool_choice(job.tool_choice)
    if job.caching is not None:
        options["caching"] = job.caching
    if job.thinking is not None:
        options["thinking"] = job.thinking.model_dump()
    return options


def _tool_choice(choice: str | NamedToolChoice) -> ToolChoice:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    match choice:
        case "auto" | "required" | "none":
            return choice
    raise ValueError(f"unknown tool_choice {choice!r}")


def deadline_loop_time(job: _JobBase) -> float | None:
    """The job's deadline on the event loop's clock, for `asyncio.timeout_at`."""
    if job.deadline is None:
        return None
    remaining = (job.deadline - datetime.now(UTC)).total_seconds()
    return asyncio.get_running_loop().time() + remaining


__all__ = ["chat", "chat_context", "chunk_events", "deadline_loop_time", "tools"]
