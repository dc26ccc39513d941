"""The `computer_use` job: Claude drives an isolated Chromium, step by step, on the job's stream.

One attempt: lease a fresh guarded context, open the start URL, then repeat {stream a model turn;
for each tool_use publish `action`, run it through ComputerTool, store the screenshot and publish
`screenshot`; feed the tool_result back} until the model ends its turn, `max_steps` (then one last
turn without tools for a summary), the deadline, a cancel, or the loop guard. A retried attempt
starts again from the start URL in a new context; its `retry` event voids the earlier steps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from arq import Retry as ArqRetry
from livekit.agents import NOT_GIVEN, APIConnectOptions, APIError
from livekit.agents.llm import ChatContext, FunctionCall, FunctionCallOutput, FunctionToolCall

from relayq.llm import LLM
from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import PageActionError, PageActions
from relayq.llm.stream import LLMStream
from relayq.schemas.events import (
    Action,
    Done,
    Error,
    ErrorInfo,
    Retry,
    RetryReason,
    Screenshot,
    Text,
    Thinking,
    TokenUsage,
    Usage,
)
from relayq.schemas.jobs import THINKING_EXTRA_KEY, ComputerUseJob
from relayq.workers.attempts import AttemptContext
from relayq.workers.browser.policy import NetworkPolicy, Violation
from relayq.workers.chat import chunk_events, deadline_loop_time
from relayq.workers.retry_policy import error_info, retry_delay

logger = logging.getLogger(__name__)

SCREENSHOT_PLACEHOLDER = "[older screenshot removed to save context]"
TRIM_BATCH = 5
LOOP_LIMIT = 4
REDACTED = "***"
SUMMARY_REQUEST = (
    "You have used all the steps allowed for this task. Do not call any more tools. "
    "Summarise what you did, what you saw last, and whether the task is complete."
)

SYSTEM_PROMPT = """\
You are operating a Chromium browser through the `computer` tool. The screen is \
{width}x{height} pixels and shows only the web page (no address bar, no other windows). The \
browser has opened {start_url}. Coordinates are screen pixels from the top-left corner. After \
each action you receive a screenshot of the screen. Some addresses are blocked by the browser's \
network policy; when an action reports a blocked address, do not try to reach it another way. \
When the task is done, or cannot be done, stop calling tools and reply with a short summary."""


async def computer_use(attempt: AttemptContext) -> None:
    """The `computer_use` job body; its JSON is validated here like any input."""
    await _run_computer_use(attempt)


@dataclass
class _Turn:
    text: str = ""
    calls: list[FunctionToolCall] = field(default_factory=list)
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    stop_reason: str | None = None


class LoopDetected(Exception):
    pass


class _Loop:
    def __init__(self, attempt: AttemptContext, job: ComputerUseJob) -> None:
        self.attempt = attempt
        self.job = job
        self.publisher = attempt.publisher
        self.usage = TokenUsage()
        self.step = 0
        self.violations: list[Violation] = []
        self._reported_violations = 0
        self._last_signature: tuple[str, str] | None = None
        self.display = (job.display_width, job.display_height)
        """The display the model sees (its screenshots' size), once the tool is built."""
        self._repeats = 0
        self.model = LLM(
            model=job.model,
            client=attempt.runtime.anthropic_client,
            max_tokens=job.max_tokens,
            caching=job.caching or NOT_GIVEN,
            thinking=job.thinking.model_dump() if job.thinking else NOT_GIVEN,
        )

    async def run(self) -> None:
        runtime = self.attempt.runtime
        job = self.job
        pool = runtime.browser_pool
        if pool is None:
            raise RuntimeError("this worker serves no computer queue (no browser pool)")
        policy = NetworkPolicy(
            allowed_domains=job.allowed_domains,
            allow_private_network=job.allow_private_network,
        )
        async with pool.lease(
            (job.display_width, job.display_height), policy, on_violation=self.violations.append
        ) as lease:
            actions = PageActions(
                page=lease.page,
                image_format=job.screenshot_format,
                image_quality=job.screenshot_quality,
            )
            tool = ComputerTool(
                actions=actions,
                width=job.display_width,
                height=job.display_height,
                tool_version=job.tool_version,
                enable_zoom=job.enable_zoom,
            )
            try:
                if (refused := await lease.guard.check_url(job.start_url)) is not None:
                    await self._fail("navigation_blocked", refused.reason)
                    return
                try:
                    await actions.navigate(job.start_url)
                except PageActionError as e:
                    # a redirect hop the policy refused reaches Chromium as a failed connection
                    # (ERR_SOCKS_CONNECTION_FAILED): the violation is the real reason
                    if refusal := self._refused_navigation(job.start_url):
                        await self._fail("navigation_blocked", refusal)
                    else:
                        await self._fail("navigation_failed", str(e))
                    return
                await actions.settle()
                self.display = tool.display_size
                first = await actions.screenshot(size=self.display)
                await self._publish_screenshot(actions, first)
                await self._converse(tool, actions)
            finally:
                await tool.aclose()
                await self.model.aclose()

    async def _converse(self, tool: ComputerTool, actions: PageActions) -> None:
        job = self.job
        ctx = ChatContext()
        width, height = tool.display_size  # what the model sees: scaled above API limits
        ctx.add_message(
            role="system",
            content=SYSTEM_PROMPT.format(width=width, height=height, start_url=job.start_url)
            + (f"\n\n{job.system}" if job.system else ""),
        )
        ctx.add_message(role="user", content=job.task)
        while True:
            if self.step >= job.max_steps:
                ctx.add_message(role="user", content=SUMMARY_REQUEST)
                # tools stay declared (the history holds tool_use blocks) but may not be used
                await self._model_turn(ctx, tools=list(tool.tools), tool_choice_none=True)
                await self._finish_done("max_steps")
                return
            turn = await self._model_turn(ctx, tools=list(tool.tools))
            _append_assistant_turn(ctx, turn)
            if not turn.calls:
                await self._finish_done(turn.stop_reason)
                return
            for call in turn.calls:
                self.step += 1
                result = await self._act(tool, actions, call)
                ctx.items.append(
                    FunctionCallOutput(
                        call_id=call.call_id,
                        name=call.name,
                        output=json.dumps(result["content"]),
                        is_error=bool(result.get("is_error")),
                    )
                )
            trim_screenshots(ctx, keep=job.keep_screenshots, batch=TRIM_BATCH)

    async def _model_turn(
        self, ctx: ChatContext, *, tools: list[Any], tool_choice_none: bool = False
    ) -> _Turn:
        stream = self.model.chat(
            chat_ctx=ctx,
            tools=tools,
            conn_options=APIConnectOptions(max_retry=0, timeout=self.job.conn_options.timeout),
            tool_choice="none" if tool_choice_none else NOT_GIVEN,
        )
        assert isinstance(stream, LLMStream)
        turn = _Turn()
        async with stream:
            async for chunk in stream:
                if chunk.delta is not None:
                    turn.calls.extend(chunk.delta.tool_calls)
                for event in chunk_events(chunk, self.job.id, self.attempt.number):
                    match event:
                        case Text():
                            turn.text += event.text
                            self.publisher.emit(
                                event.model_copy(update={"text": self._mask(event.text)})
                            )
                        case Thinking():
                            self.publisher.emit(
                                event.model_copy(update={"text": self._mask(event.text)})
                            )
                        case Usage():
                            turn.usage = turn.usage + event.tokens
                            self.usage = self.usage + event.tokens
                            self.publisher.emit(event, usage=self.usage)
                        case _:
                            pass  # tool calls become `action` events when they run
        turn.thinking_blocks = stream.thinking_blocks
        turn.stop_reason = stream.stop_reason
        return turn

    async def _act(
        self, tool: ComputerTool, actions: PageActions, call: FunctionToolCall
    ) -> dict[str, Any]:
        try:
            tool_input = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            tool_input = None
        if not isinstance(tool_input, dict):
            return _error_result(call.call_id, "the tool input was not a JSON object")
        name = str(tool_input.get("action", ""))
        self.publisher.emit(
            Action(
                job_id=self.job.id,
                attempt=self.attempt.number,
                step=self.step,
                tool_use_id=call.call_id,
                action=name,
                input=self._redacted_input(tool_input),
            )
        )
        before = _digest(actions.last_frame)
        result = await tool.tool_result(call.call_id, tool_input)
        frame = actions.last_frame
        if frame is not None:
            await self._publish_screenshot(actions, frame, settle_ms=tool.last_settle_ms)
        self._guard_against_loops(name, tool_input, before, _digest(frame))
        if blocked := self._new_violations():
            result["content"] = [
                {"type": "text", "text": "The browser's network policy " + blocked},
                *result["content"],
            ]
        return result

    def _guard_against_loops(
        self, name: str, tool_input: dict[str, Any], before: str, after: str
    ) -> None:
        signature = (name, json.dumps(tool_input, sort_keys=True))
        unchanged = before == after
        if signature == self._last_signature and unchanged:
            self._repeats += 1
        else:
            self._repeats = 1 if unchanged else 0
        self._last_signature = signature
        if self._repeats >= LOOP_LIMIT:
            raise LoopDetected(
                f"the model repeated {name} {tool_input!r} {self._repeats} times on a screen "
                "that did not change; stopped to save the step budget"
            )

    def _refused_navigation(self, url: str) -> str:
        """What the network policy refused while `url` was being opened, or ''."""
        fresh = self.violations[self._reported_violations :]
        self._reported_violations = len(self.violations)
        if not fresh:
            return ""
        refused = fresh[0]
        rule = refused.reason.removeprefix("blocked: ")
        where = "" if refused.url == url else f" led to {refused.url}, which"
        return f"{url}{where} is blocked by the browser's network policy: {rule}"

    def _new_violations(self) -> str:
        fresh = self.violations[self._reported_violations :]
        self._reported_violations = len(self.violations)
        reasons = sorted({v.reason for v in fresh})
        return ("refused: " + "; ".join(reasons)) if reasons else ""

    async def _publish_screenshot(
        self, actions: PageActions, image: bytes, *, settle_ms: float | None = None
    ) -> None:
        runtime = self.attempt.runtime
        blob = await runtime.store_blob(self.job.id, self.attempt.number, image)
        self.publisher.emit(
            Screenshot(
                job_id=self.job.id,
                attempt=self.attempt.number,
                step=self.step,
                blob=blob,
                media_type=actions.media_type,
                width=self.display[0],
                height=self.display[1],
                size=len(image),
                settle_ms=settle_ms,
                url=actions.page.url,
            )
        )

    async def _finish_done(self, stop_reason: str | None) -> None:
        await self.publisher.finish(
            Done(
                job_id=self.job.id,
                attempt=self.attempt.number,
                stop_reason=stop_reason,
                usage=self.usage,
            ),
            usage=self.usage,
        )

    async def _fail(self, kind: str, message: str, *, retryable: bool = False) -> None:
        await self.publisher.finish(
            Error(
                job_id=self.job.id,
                attempt=self.attempt.number,
                error=ErrorInfo(type=kind, message=message, retryable=retryable),
            ),
            usage=self.usage,
        )

    def _mask(self, text: str) -> str:
        for secret in self.job.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _redacted_input(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = {}
        for key, value in tool_input.items():
            if isinstance(value, str):
                typed = key == "text" and tool_input.get("action") == "type"
                value = REDACTED if typed and self.job.redact_typed_text else self._mask(value)
            redacted[key] = value
        return redacted


async def _run_computer_use(attempt: AttemptContext) -> None:
    job = await attempt.parse(ComputerUseJob)
    if job is None:
        return
    loop = _Loop(attempt, job)
    try:
        async with asyncio.timeout_at(deadline_loop_time(job)):
            await loop.run()
    except APIError as e:
        delay = retry_delay(e, job, attempt.number)
        info = error_info(e, retry_in=delay)
        if delay is None:
            await loop._fail(info.type, info.message, retryable=info.retryable)
            return
        reason: RetryReason = "timeout" if info.type == "APITimeoutError" else "api_error"
        await attempt.publisher.finish(
            Retry(job_id=job.id, attempt=attempt.number, reason=reason, error=info, delay=delay)
        )
        raise ArqRetry(defer=delay) from e
    except LoopDetected as e:
        await loop._fail("loop_detected", str(e))
    except TimeoutError:
        await loop._fail("APITimeoutError", "job deadline exceeded")


def trim_screenshots(ctx: ChatContext, *, keep: int, batch: int) -> int:
    """Replaces all but the `keep` most recent screenshots with a text placeholder, removing
    them only `batch` at a time so that the cached prompt prefix stays the same for a while.
    Returns how many were removed. Pure on the ChatContext's items."""
    located: list[tuple[int, int]] = []
    outputs: dict[int, list[Any]] = {}
    for index, item in enumerate(ctx.items):
        if not isinstance(item, FunctionCallOutput):
            continue
        try:
            content = json.loads(item.output)
        except json.JSONDecodeError:
            continue
        if not isinstance(content, list):
            continue
        outputs[index] = content
        located += [(index, i) for i, b in enumerate(content) if _is_image(b)]
    excess = len(located) - keep
    remove = excess - excess % batch if excess > 0 else 0
    for index, block in located[:remove]:
        outputs[index][block] = {"type": "text", "text": SCREENSHOT_PLACEHOLDER}
    for index in {index for index, _ in located[:remove]}:
        item = ctx.items[index]
        assert isinstance(item, FunctionCallOutput)
        ctx.items[index] = item.model_copy(update={"output": json.dumps(outputs[index])})
    return remove


def _is_image(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") == "image"


def _append_assistant_turn(ctx: ChatContext, turn: _Turn) -> None:
    extra = {THINKING_EXTRA_KEY: turn.thinking_blocks} if turn.thinking_blocks else {}
    if turn.text:
        ctx.add_message(role="assistant", content=turn.text, extra=extra)
        extra = {}
    for call in turn.calls:
        ctx.items.append(
            FunctionCall(
                call_id=call.call_id, name=call.name, arguments=call.arguments, extra=extra
            )
        )


def _error_result(tool_use_id: str, message: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": [{"type": "text", "text": f"Error: {message}"}],
        "is_error": True,
    }


def _digest(frame: bytes | None) -> str:
    return hashlib.blake2b(frame or b"", digest_size=16).hexdigest()


__all__ = ["computer_use", "trim_screenshots"]
