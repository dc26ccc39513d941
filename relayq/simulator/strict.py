"""Strict mode: what the real Messages API is documented to reject, rejected the same way.

Each rule returns the message of the API's HTTP 400 ``invalid_request_error`` (its wording where
the API's own is known) or None; ``strict_problem`` runs them in order and returns the first. The
sources are listed in the package docstring ("Strict mode").
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .images import image_size
from .plan import thinking_signature
from .request import JSON, content_blocks

MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 8000
MAX_IMAGE_SIDE_MANY = 2000
MANY_IMAGES = 20
MIN_THINKING_BUDGET = 1024
PREFILL_REMOVED_FROM = (4, 6)

COMPUTER_TOOL_BETAS: dict[str, str] = {
    "computer_20241022": "computer-use-2024-10-22",
    "computer_20250124": "computer-use-2025-01-24",
    "computer_20251124": "computer-use-2025-11-24",
}
"""Each computer tool version and the ``anthropic-beta`` value it is only accepted with."""

KNOWN_BETAS: frozenset[str] = frozenset(
    {
        "admin-user-sign-out-2026-10-08", "advisor-tool-2026-03-01", "agent-memory-2026-07-22",
        "analytics-usage-cost-2026-08-24", "cache-diagnosis-2026-04-07",
        "ce-claude-code-managed-settings-2026-10-06", "ce-plugins-2026-09-01",
        "ce-user-management-2026-07-13", "code-execution-2025-05-22", "compact-2026-01-12",
        "compact-2026-09-04", "computer-use-2024-10-22", "computer-use-2025-01-24",
        "computer-use-2025-11-24", "context-1m-2025-08-07", "context-management-2025-06-27",
        "dev-full-thinking-2025-05-14", "dreaming-2026-04-21", "efs-2026-10-01",
        "experimental-claude-tag-2026-10-21", "extended-cache-ttl-2025-04-11",
        "fallback-credit-2026-06-01", "fallback-credit-2026-07-01", "fast-mode-2026-02-01",
        "files-api-2025-04-14", "fine-grained-tool-streaming-2025-05-14",
        "google-managed-data-controls-2026-09-01", "inline-tools-2026-09-15",
        "interleaved-thinking-2025-05-14", "managed-agents-2026-04-01", "mcp-client-2025-04-04",
        "mcp-client-2025-11-20", "mcp-client-2026-09-15", "mcp-tunnels-2026-06-22",
        "message-batches-2024-09-24", "message-threads-2026-08-12",
        "mid-conversation-output-config-2026-07-01", "mid-conversation-system-clear-at-2026-08-21",
        "mid-conversation-tool-changes-2026-07-01", "model-context-window-exceeded-2025-08-26",
        "output-128k-2025-02-19", "output-300k-2026-03-24", "pdfs-2024-09-25",
        "prompt-caching-2024-07-31", "server-side-fallback-2026-06-01",
        "server-side-fallback-2026-07-01", "skills-2025-10-02", "spend-limit-reads-2026-09-26",
        "structured-outputs-2025-11-13", "task-budgets-2026-03-13",
        "telemetry-destinations-2026-08-11", "thinking-binding-controls-2026-08-01",
        "thinking-display-updates-2026-08-18", "thinking-token-count-2026-05-13",
        "token-counting-2024-11-01", "token-efficient-tools-2025-02-19", "user-profiles-2026-03-24",
        "user-profiles-2026-08-18", "user-profiles-2026-09-04", "user-profiles-billing-2026-10-01",
        "webhooks-2026-10-07",
    }
)  # fmt: skip
"""``anthropic-beta`` values the API knows: its reference's enumeration of the header (as the
``anthropic`` SDK's ``AnthropicBetaParam`` lists it), and fine-grained tool streaming."""

_THINKING_TYPES = ("thinking", "redacted_thinking")
_FAMILIES = frozenset({"opus", "sonnet", "haiku", "fable", "mythos"})


@dataclass(frozen=True)
class StrictRequest:
    body: JSON
    betas: tuple[str, ...]

    @property
    def messages(self) -> list[JSON]:
        messages = self.body.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def tools(self) -> list[JSON]:
        tools = self.body.get("tools")
        return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []

    @property
    def thinking(self) -> JSON:
        thinking = self.body.get("thinking")
        return thinking if isinstance(thinking, dict) else {}

    @property
    def thinking_on(self) -> bool:
        return self.thinking.get("type") in ("enabled", "adaptive")


Rule = Callable[[StrictRequest], str | None]


@dataclass(frozen=True)
class Rejection:
    rule: str
    """The name of the rule, e.g. ``prefill_on_a_model_without_it``."""
    message: str
    """The error message of the API's 400."""


def strict_problem(body: JSON, betas: Sequence[str] = ()) -> Rejection | None:
    """The first documented reason the real API would answer this request with a 400."""
    request = StrictRequest(body, tuple(betas))
    for rule in RULES:
        if (message := rule(request)) is not None:
            return Rejection(rule.__name__, message)
    return None


def parse_beta_header(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# --------------------------------------------------------------------------- the rules


def unknown_betas(request: StrictRequest) -> str | None:
    unknown = [beta for beta in request.betas if beta not in KNOWN_BETAS]
    if not unknown:
        return None
    values = ", ".join(f"`{beta}`" for beta in unknown)
    return (
        f"Unexpected value(s) {values} for the `anthropic-beta` header. Please consult our "
        "documentation at docs.claude.com or try again without the header."
    )


def computer_tool_without_its_beta(request: StrictRequest) -> str | None:
    for i, tool in enumerate(request.tools):
        kind = str(tool.get("type", ""))
        if not kind.startswith("computer_"):
            continue
        beta = COMPUTER_TOOL_BETAS.get(kind)
        if beta is None:
            return (
                f"tools.{i}.type: unknown computer tool version `{kind}`; expected one of "
                f"{', '.join(sorted(COMPUTER_TOOL_BETAS))}"
            )
        if beta not in request.betas:
            return f"tools.{i}: the `{kind}` tool requires the `anthropic-beta: {beta}` header"
        if tool.get("enable_zoom") and kind != "computer_20251124":
            return f"tools.{i}.enable_zoom: Extra inputs are not permitted"
    return None


def thinking_budget_outside_limits(request: StrictRequest) -> str | None:
    thinking = request.thinking
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        return (
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    max_tokens = request.body.get("max_tokens")
    interleaved = "interleaved-thinking-2025-05-14" in request.betas
    if isinstance(max_tokens, int) and budget >= max_tokens and not interleaved:
        return (
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            "#max-tokens-and-context-window-size"
        )
    return None


def thinking_with_forced_tool_use(request: StrictRequest) -> str | None:
    choice = request.body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    if request.thinking.get("type") == "enabled" and forced:
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def thinking_with_sampling_changes(request: StrictRequest) -> str | None:
    if not request.thinking_on:
        return None
    sampling = request.body
    temperature = sampling.get("temperature")
    if temperature is not None and temperature != 1:
        return (
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            "#feature-compatibility"
        )
    if sampling.get("top_k") is not None:
        return (
            "`top_k` must be unset when thinking is enabled. Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            "#feature-compatibility"
        )
    top_p = sampling.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        return "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
    return None


def empty_text_or_content(request: StrictRequest) -> str | None:
    system = request.body.get("system")
    if system == "" or (
        isinstance(system, list) and any(_is_empty_text(b) for b in content_blocks(system))
    ):
        return "system: text content blocks must be non-empty"
    messages = request.messages
    for i, message in enumerate(messages):
        content = message.get("content")
        final_assistant = i == len(messages) - 1 and message.get("role") == "assistant"
        if content in ("", []) and not final_assistant:
            return (
                f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        for block in _blocks_and_nested(content_blocks(content)):
            if _is_empty_text(block):
                return "messages: text content blocks must be non-empty"
    return None


def tool_history_without_tools(request: StrictRequest) -> str | None:
    if request.tools:
        return None
    for message in request.messages:
        if any(b.get("type") in ("tool_use", "tool_result") for b in _blocks(message)):
            return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


def tool_results_not_after_their_tool_use(request: StrictRequest) -> str | None:
    messages = request.messages
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        if message.get("role") == "assistant":
            used = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            if not used or i + 1 == len(messages):
                continue
            following = messages[i + 1]
            answered = (
                {str(b.get("tool_use_id")) for b in _blocks(following)}
                if following.get("role") == "user"
                else set()
            )
            if missing := [tool_id for tool_id in used if tool_id not in answered]:
                return (
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
            leading = 0
            while leading < len(_blocks(following)) and (
                _blocks(following)[leading].get("type") == "tool_result"
            ):
                leading += 1
            if leading < len(used):
                return (
                    f"messages.{i + 1}: Did not find {len(used)} `tool_result` block(s) at the "
                    "beginning of this message. Messages following `tool_use` blocks must begin "
                    "with a matching number of `tool_result` blocks."
                )
        else:
            previous = messages[i - 1] if i > 0 else {}
            used_before = (
                {str(b.get("id")) for b in _blocks(previous) if b.get("type") == "tool_use"}
                if previous.get("role") == "assistant"
                else set()
            )
            for j, block in enumerate(blocks):
                tool_id = block.get("tool_use_id")
                if block.get("type") == "tool_result" and str(tool_id) not in used_before:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {tool_id}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
    return None


def tool_loop_without_its_thinking(request: StrictRequest) -> str | None:
    messages = request.messages
    if not request.thinking_on or len(messages) < 2:
        return None
    last = messages[-1]
    if last.get("role") != "user" or not any(b.get("type") == "tool_result" for b in _blocks(last)):
        return None
    index = len(messages) - 2
    blocks = _blocks(messages[index])
    first = blocks[0].get("type") if blocks else None
    if first in _THINKING_TYPES:
        return None
    return (
        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
        "recommend you include thinking blocks from previous turns. To avoid this requirement, "
        "disable `thinking`. Please consult our documentation at "
        "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    )


def modified_thinking(request: StrictRequest) -> str | None:
    """The final assistant turn's thinking blocks must come back exactly as the API sent them:
    their signatures are checked (here: against the simulator's own signing)."""
    messages = request.messages
    finals = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not finals:
        return None
    index = finals[-1]
    for j, block in enumerate(_blocks(messages[index])):
        if block.get("type") != "thinking":
            continue
        text, signature = block.get("thinking"), block.get("signature")
        if not isinstance(text, str) or signature != thinking_signature(text):
            return f"messages.{index}.content.{j}: Invalid `signature` in `thinking` block"
    return None


def prefill_on_a_model_without_it(request: StrictRequest) -> str | None:
    messages = request.messages
    if not messages or messages[-1].get("role") != "assistant":
        return None
    if model_rejects_prefill(str(request.body.get("model", ""))):
        return (
            "This model does not support assistant message prefill. The conversation must end "
            "with a user message."
        )
    return None


def oversized_or_unreadable_images(request: StrictRequest) -> str | None:
    images = list(_images(request.messages))
    limit = MAX_IMAGE_SIDE_MANY if len(images) > MANY_IMAGES else MAX_IMAGE_SIDE
    for where, source in images:
        if source.get("type") != "base64":
            continue
        data = source.get("data")
        if not isinstance(data, str):
            return f"{where}.source.base64.data: Field required"
        if len(data) > MAX_IMAGE_BASE64_BYTES:
            return (
                f"{where}.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > "
                f"{MAX_IMAGE_BASE64_BYTES} bytes"
            )
        try:
            size = image_size(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            size = None
        if size is None:
            return f"{where}.source.base64.data: Could not process image"
        media_type, width, height = size
        if media_type != source.get("media_type"):
            return (
                f"{where}.source.base64.data: Image does not match the provided media type "
                f"{source.get('media_type')}"
            )
        if max(width, height) > limit:
            many = " for many-image requests" if limit == MAX_IMAGE_SIDE_MANY else ""
            return (
                f"{where}.source.base64.data: At least one of the image dimensions exceed max "
                f"allowed size{many}: {limit} pixels"
            )
    return None


RULES: tuple[Rule, ...] = (
    unknown_betas,
    computer_tool_without_its_beta,
    thinking_budget_outside_limits,
    thinking_with_forced_tool_use,
    thinking_with_sampling_changes,
    empty_text_or_content,
    tool_history_without_tools,
    tool_results_not_after_their_tool_use,
    tool_loop_without_its_thinking,
    modified_thinking,
    prefill_on_a_model_without_it,
    oversized_or_unreadable_images,
)


# --------------------------------------------------------------------------- helpers


def model_rejects_prefill(model: str) -> bool:
    """Claude 4.6 and later (by model id); ids without a Claude version are let through.

    relayq.llm.models has its own parser on purpose: the simulator stands for the API, and
    sharing the product's code here would make the tests agree with its mistakes."""
    version = claude_version(model)
    return bool(version) and version >= PREFILL_REMOVED_FROM


def claude_version(model: str) -> tuple[int, ...]:
    """(4, 6) for "claude-sonnet-4-6", (4, 5) for "claude-opus-4-5-20251101", (3, 7) for
    "claude-3-7-sonnet-20250219"; () when the id names no Claude family and version."""
    segments = [s for s in re.split(r"[-_.@:]", model.split("[")[0].lower()) if s]
    family = next((i for i, s in enumerate(segments) if s in _FAMILIES), None)
    if family is None:
        return ()
    after = _leading_versions(segments[family + 1 :])
    if after:
        return after
    return tuple(reversed(_leading_versions(list(reversed(segments[:family])))))


def _leading_versions(segments: list[str]) -> tuple[int, ...]:
    version: list[int] = []
    for segment in segments:
        if not (segment.isdigit() and len(segment) <= 2):
            break
        version.append(int(segment))
    return tuple(version)


def _blocks(message: JSON) -> list[JSON]:
    return content_blocks(message.get("content"))


def _blocks_and_nested(blocks: list[JSON]) -> Iterator[JSON]:
    for block in blocks:
        yield block
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            yield from content_blocks(block["content"])


def _is_empty_text(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and block.get("text") == ""


def _images(messages: list[JSON]) -> Iterator[tuple[str, JSON]]:
    for i, message in enumerate(messages):
        for j, block in enumerate(_blocks(message)):
            where = f"messages.{i}.content.{j}"
            if block.get("type") == "image" and isinstance(block.get("source"), dict):
                yield f"{where}.image", block["source"]
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for k, inner in enumerate(content_blocks(block["content"])):
                    if inner.get("type") == "image" and isinstance(inner.get("source"), dict):
                        yield f"{where}.content.{k}.image", inner["source"]
