"""An Anthropic-compatible Messages API simulator for tests, demos and benchmarks.

The simulator is a real HTTP server (Starlette on uvicorn) that speaks enough of the Anthropic
Messages API for the official ``anthropic`` SDK to talk to it unchanged::

    async with Simulator() as sim:
        client = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0)
        message = await client.messages.create(model="claude-sim", max_tokens=256,
                                               messages=[{"role": "user", "content": "Hello"}])

It is deterministic: the same request body always gets the same reply. Run it on its own with
``python -m relayq.simulator --port 8765`` (see ``--help``).

Endpoints
---------
``POST /v1/messages`` (also ``?beta=true``)
    Streaming (``"stream": true``, Server-Sent Events) and non-streaming replies, in the wire
    format of the real API: ``message_start`` -> ``content_block_start`` -> ``ping`` -> deltas ->
    ``content_block_stop`` (per block) -> ``message_delta`` -> ``message_stop``. The ``ping`` sits
    after the first ``content_block_start``, where the recorded API transcripts have it. Every
    response carries a ``request-id`` header; errors use the API's JSON shape
    ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.
``POST /v1/messages/count_tokens``
    ``{"input_tokens": N}`` computed the same way as ``usage.input_tokens``.
``GET /_sim/stats`` / ``POST /_sim/reset``
    Counters (requests, outcomes, injected faults, cache hits); reset clears counters, the
    per-request fault state and the prompt cache.

Authentication: ``x-api-key`` (or ``Authorization: Bearer``) is required. A simulator built with
``api_key=`` accepts only that key; otherwise any non-empty key is accepted.

Replies
-------
* Text: ``scripted_reply(body)`` is the single source of truth for the text of a reply. It starts
  ``"Simulated reply to: <first 12 words of the last user message>."`` and is padded with
  deterministic filler words to 24 tokens (``tokens=N`` changes that). One token is one word plus
  its trailing space, streamed as one ``text_delta``. ``max_tokens`` truncates the text and the
  reply then stops with ``stop_reason: "max_tokens"``.
* Tool use: when the request has custom tools (no ``type``, or ``type: "custom"``), ``tool_choice``
  is not ``none`` and the last user turn holds no ``tool_result``, the reply is a short text
  (``"Simulated reply to: ... Calling NAME."``; omitted when ``tool_choice`` forces a tool, as the
  API does) and one ``tool_use`` block for the tool named by ``tool_choice`` or else the first
  custom tool. Its input is generated from the tool's ``input_schema`` and streamed as
  ``input_json_delta`` pieces cut at awkward places (mid-key, mid-string). ``stop_reason`` is
  ``tool_use``.
* Tool results: when the last user turn holds ``tool_result`` blocks the reply text is
  ``"The tool said: <first 20 words of the results>."`` (``"The tool reported an error: ..."`` when
  ``is_error``) plus filler, with ``stop_reason: "end_turn"``.
* Extended thinking: with ``thinking`` ``{"type": "enabled", ...}`` or ``{"type": "adaptive"}`` the
  reply starts with a ``thinking`` block (``thinking_delta`` pieces, then one ``signature_delta``).
* Computer use: see the section below.
* Usage: ``input_tokens`` is about a quarter of the JSON size of tools + system + messages, except
  that every ``image`` block (also inside a ``tool_result``) counts as ``IMAGE_TOKENS`` (1200),
  about what the API charges for a 1280x720 screenshot, whatever its base64 length.
  Prompt caching: the prefix up to each ``cache_control`` breakpoint is remembered per simulator;
  the first time it is seen it is reported as ``cache_creation_input_tokens``, later as
  ``cache_read_input_tokens`` (the longest remembered prefix wins, so moving the breakpoint forward
  each turn reads the old prefix and writes the new one). There is no minimum cacheable length.

Computer use
------------
A request whose ``tools`` hold a computer tool (``type`` starting with ``computer_``, e.g.
``computer_20251124`` with the ``computer-use-2025-11-24`` beta) is answered from a deterministic
*plan*: a list of ``computer`` tool inputs. ``[[sim:plan=NAME]]`` in the task (the first user
message) or the system prompt picks it; without one the plan is ``look``. The *step* of a request
is the number of assistant turns in its conversation that called the ``computer`` tool
(``computer_step(body)``); nothing else of the conversation matters (screenshots may be replaced
by text placeholders, as context-trimming loops do), so a retry gets the same turn.

* Step K < len(plan): a text block ``"Step K+1 of N: <caption>."`` and one ``tool_use`` block
  (``id`` ``"toolu_sim_<K+1>"``, ``name`` ``"computer"``, ``input`` the plan's K-th entry,
  streamed as ``input_json_delta`` pieces), ``stop_reason: "tool_use"``.
* Step K >= len(plan): ``"Task complete: <plan description>."``, ``stop_reason: "end_turn"``.
* If the last user turn's last ``tool_result`` has ``is_error``, the text starts
  ``"The last action failed: <first 8 words of its text>."``; the plan goes on regardless.
* A request with no tools (or ``tool_choice`` ``none``) after computer turns - the summary request
  of a loop whose step budget ran out - gets one text block starting ``"Summary:"`` (how many of
  the plan's actions ran, how many tool_results were errors), ``stop_reason: "end_turn"``.
* A computer tool takes precedence over custom tools; ``tool_choice`` other than ``none`` is
  ignored. ``max_tokens``, ``thinking``, ``badjson`` and ``rate`` behave as for other replies.

====================  =========================================================================
``look``              screenshot
``signup``            fills ``relayq/static/demo_signup.html`` (1280x720, scale 1):
                      left_click Name (940, 236); type "Ada Lovelace"; left_click Email
                      (940, 316); type "ada@example.com"; left_click the terms checkbox
                      (750, 456); left_click Create account (940, 518); screenshot
``loop``              left_click Create account (940, 518), forever (``ENDLESS_PLANS``)
``bad``               left_click (5000, 5000) (off-screen); action "teleport" (unknown);
                      screenshot - the first two make the tool answer ``is_error``
``scroll``            scroll down 5 at (640, 360); screenshot
``navigate_blocked``  left_click the "Terms of service" link (871, 616), which leads off-site to
                      https://terms.acme-cloud.example/ (for allow-list tests); screenshot
====================  =========================================================================

``COMPUTER_PLANS`` maps names to the inputs, ``DEMO_SIGNUP_TARGETS`` names the demo page's control
centres, ``computer_plan(body)`` is a request's plan and ``scripted_computer_turn(body)`` the
assistant turn it gets (``content`` blocks as the non-streaming API returns them, and
``stop_reason``): pure functions, for tests to compare against.

Directives in computer mode: the system prompt's apply to every turn; the task's ``plan``,
``rate``, ``chaos`` and ``badjson`` apply to every turn, its fault groups (``fail``,
``midstream``, ``drop``, ``stall``) to the first turn only; a later user turn's apply to that
turn. ``tokens`` has no effect (the texts are fixed). ``step=K`` in a fault group confines it
to the request for step K (0-based), wherever it is written:
``[[sim:plan=signup]] [[sim:fail=529 step=2]]`` answers 529 to the first attempt of the third
model turn.

Directives
----------
A test scripts one request's behaviour through its prompt. Write ``[[sim:KEY=VALUE KEY=VALUE]]``
anywhere in the last user message's text (or in the system prompt); directives are removed before
the reply is computed, so they never show up in it. Keys:

=====================  ==========================================================================
``fail=STATUS``        answer HTTP STATUS with the API's error body: 400 invalid_request_error,
                       401 authentication_error, 402 billing_error, 403 permission_error,
                       404 not_found_error, 408/504 timeout_error, 413 request_too_large,
                       429 rate_limit_error (with ``retry-after``), 500/503 api_error,
                       529 overloaded_error.
``retry_after=S``      seconds for the 429 ``retry-after`` header (default 1).
``midstream=TYPE``     stream ``after`` deltas, then an SSE ``event: error`` with
                       ``{"type": "error", "error": {"type": TYPE, ...}}`` and end the response
                       (TYPE e.g. ``overloaded_error``, ``api_error``). A non-streaming request
                       gets the matching HTTP status instead (529, 500, 429, ...).
``stall=SECONDS``      stop sending for SECONDS at the ``after`` point (connection kept open),
                       then continue normally.
``drop=1``             stream ``after`` deltas, then close the TCP connection abruptly
                       (no ``message_stop``, no end of the chunked body).
``times=N``            the fault of this directive group happens on the first N attempts of the
                       request (default 1), see below.
``after=K``            where a stall/drop/midstream fault strikes: ``-1`` = before the response
                       headers are sent; ``0`` = right after ``message_start``; ``K`` = after the
                       K-th content delta (text, thinking or tool-input piece). Defaults: 3 for
                       ``midstream``/``drop``, -1 for ``stall``. ``midstream`` treats -1 as 0.
                       Non-streaming requests always stall or drop before the headers.
``tokens=N``           the reply text has N tokens.
``rate=TPS``           stream at TPS deltas per second (overrides ``tokens_per_second``).
``badjson=1``          the ``input_json_delta`` pieces of a tool call concatenate to invalid JSON
                       (streaming only; a non-streaming reply always carries a valid ``input``).
``chaos=0``            exempt this request from the simulator-wide ``fault_rate``.
``plan=NAME``          the computer-use plan (see "Computer use"); unknown names are a 400.
``step=K``             confine this group's fault to the request for computer step K.
=====================  ==========================================================================

Faults are counted per request *fingerprint*: a hash of the body without ``stream`` and
``metadata``, so a retry of the same request sees the next behaviour. Each ``[[sim:...]]`` group
holds at most one of ``fail``/``midstream``/``drop`` (optionally with ``stall``, which then runs
first) plus its own ``times``/``after``/``retry_after``; several groups form a script consumed in
order. ``[[sim:fail=529 times=2]] [[sim:midstream=overloaded_error]]`` answers 529 twice, then
breaks the third stream mid-way, then succeeds. ``tokens``, ``rate``, ``badjson`` and ``chaos``
apply to every attempt wherever they appear (the last value wins). An unknown key or a bad value
is answered with HTTP 400 ``invalid_request_error`` naming it.

What the SDK raises: HTTP errors map to the SDK's status errors (``RateLimitError``,
``OverloadedError``, ...). A mid-stream ``event: error`` raises ``APIStatusError`` (status 200,
``.type`` = the error type) while iterating. ``stall``/``drop`` with ``after=-1`` raise
``APITimeoutError``/``APIConnectionError`` from the call itself; once the headers are sent the SDK
does not wrap transport errors, so iterating raises ``httpx2.ReadTimeout`` /
``httpx2.RemoteProtocolError`` instead.

Chaos: ``Simulator(fault_rate=0.1, seed=7)`` fails about that fraction of requests with 529, 500,
429 (``retry-after: 0``) or a mid-stream ``overloaded_error``. The choice is a pure function of
the seed, the request fingerprint and that fingerprint's attempt number, so a run is reproducible
even when requests arrive concurrently in a different order. Directive faults take precedence.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import random
import re
import signal
import socket
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, TypedDict

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "COMPUTER_PLANS",
    "DEMO_SIGNUP_TARGETS",
    "ENDLESS_PLANS",
    "IMAGE_TOKENS",
    "Simulator",
    "computer_plan",
    "computer_step",
    "main",
    "run_in_thread",
    "scripted_computer_turn",
    "scripted_reply",
]

JSON = dict[str, Any]

DEFAULT_REPLY_TOKENS = 24
PROMPT_WORDS = 12
RESULT_WORDS = 20
DEFAULT_MIDSTREAM_AFTER = 3
DEFAULT_STALL_AFTER = -1
_ERROR_TYPES: dict[int, str] = {
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
_ERROR_MESSAGES: dict[str, str] = {
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
_STATUS_FOR_ERROR_TYPE: dict[str, int] = {
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
_FILLER = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt",
    "dune", "ember", "fjord",
)  # fmt: skip
_JSON_PIECE_SIZES = (3, 7, 1, 5, 11, 2, 8, 4)
_DIRECTIVE_RE = re.compile(r"\[\[sim:([^\]]*)\]\]")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# --------------------------------------------------------------------------- directives


@dataclass(frozen=True)
class FaultSpec:
    """One directive group's fault: what happens, where, and on how many attempts."""

    kind: Literal["fail", "midstream", "drop"] | None
    status: int = 0
    error_type: str = ""
    stall: float = 0.0
    times: int = 1
    after: int = DEFAULT_MIDSTREAM_AFTER
    retry_after: float = 1.0
    source: str = "directive"
    step: int | None = None


@dataclass(frozen=True)
class Directives:
    faults: tuple[FaultSpec, ...] = ()
    tokens: int | None = None
    rate: float | None = None
    badjson: bool = False
    chaos: bool = True
    plan: str | None = None


class DirectiveError(ValueError):
    """A ``[[sim:...]]`` directive could not be understood."""


def _parse_number(key: str, value: str, *, integer: bool, minimum: float) -> float:
    try:
        number = float(int(value)) if integer else float(value)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise DirectiveError(f"sim directive {key}={value!r}: expected {kind}") from None
    if number < minimum:
        raise DirectiveError(f"sim directive {key}={value!r}: must be >= {minimum:g}")
    return number


def _parse_group(text: str, acc: dict[str, Any]) -> FaultSpec | None:
    pairs: dict[str, str] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DirectiveError(f"sim directive {item!r}: expected KEY=VALUE")
        pairs[key.lower()] = value
    kind: Literal["fail", "midstream", "drop"] | None = None
    status, error_type, stall = 0, "", 0.0
    for key, value in pairs.items():
        if key == "fail":
            status = int(_parse_number(key, value, integer=True, minimum=400))
            if status > 599:
                raise DirectiveError(f"sim directive fail={value}: not an HTTP error status")
            kind, error_type = (
                "fail",
                _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
            )
        elif key == "midstream":
            if not re.fullmatch(r"[a-z_]+", value):
                raise DirectiveError(f"sim directive midstream={value!r}: expected an error type")
            kind, error_type = "midstream", value
        elif key == "drop":
            if value not in ("1", "true", "yes"):
                raise DirectiveError(f"sim directive drop={value!r}: expected drop=1")
            kind = "drop"
        elif key == "stall":
            stall = _parse_number(key, value, integer=False, minimum=0)
        elif key == "tokens":
            acc["tokens"] = int(_parse_number(key, value, integer=True, minimum=1))
        elif key == "rate":
            acc["rate"] = _parse_number(key, value, integer=False, minimum=0)
        elif key == "badjson":
            acc["badjson"] = value not in ("0", "false", "no")
        elif key == "chaos":
            acc["chaos"] = value not in ("0", "false", "no", "off")
        elif key == "plan":
            if value not in _PLAN_STEPS:
                raise DirectiveError(
                    f"sim directive plan={value!r}: expected one of "
                    f"{', '.join(sorted(_PLAN_STEPS))}"
                )
            acc["plan"] = value
        elif key not in ("times", "after", "retry_after", "step"):
            raise DirectiveError(f"sim directive: unknown key {key!r}")
    if sum(k in pairs for k in ("fail", "midstream", "drop")) > 1:
        raise DirectiveError("sim directive: one of fail/midstream/drop per [[sim:...]] group")
    step = (
        int(_parse_number("step", pairs["step"], integer=True, minimum=0))
        if "step" in pairs
        else None
    )
    if kind is None and "stall" not in pairs:
        if step is not None:
            raise DirectiveError("sim directive step=: only with fail/midstream/drop/stall")
        return None
    default_after = DEFAULT_STALL_AFTER if kind in (None, "fail") else DEFAULT_MIDSTREAM_AFTER
    return FaultSpec(
        kind=kind,
        status=status,
        error_type=error_type,
        stall=stall,
        times=int(_parse_number("times", pairs.get("times", "1"), integer=True, minimum=0)),
        after=int(
            _parse_number("after", pairs.get("after", str(default_after)), integer=True, minimum=-1)
        ),
        retry_after=_parse_number(
            "retry_after", pairs.get("retry_after", "1"), integer=False, minimum=0
        ),
        step=step,
    )


def parse_directives(*texts: str) -> Directives:
    """Parse every ``[[sim:...]]`` group in ``texts`` (in order). Raises DirectiveError."""
    faults: list[FaultSpec] = []
    acc: dict[str, Any] = {}
    for text in texts:
        for match in _DIRECTIVE_RE.finditer(text):
            spec = _parse_group(match.group(1), acc)
            if spec is not None:
                faults.append(spec)
    return Directives(faults=tuple(faults), **acc)


def strip_directives(text: str) -> str:
    return _DIRECTIVE_RE.sub(" ", text)


# --------------------------------------------------------------------------- request helpers


def _blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _block_text(blocks: list[JSON]) -> str:
    return " ".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def _last_user_blocks(body: Mapping[str, Any]) -> list[JSON]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _blocks(message.get("content"))
    return []


def _system_text(body: Mapping[str, Any]) -> str:
    return _block_text(_blocks(body.get("system")))


def _tool_result_text(block: JSON) -> str:
    parts: list[str] = []
    for inner in _blocks(block.get("content")):
        if inner.get("type") == "text":
            parts.append(str(inner.get("text", "")))
        elif inner.get("type") == "image":
            parts.append("[image]")
    return " ".join(parts)


def _custom_tools(body: Mapping[str, Any]) -> list[JSON]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        t
        for t in tools
        if isinstance(t, dict) and t.get("type") in (None, "custom") and "name" in t
    ]


def _token_budget(body: Mapping[str, Any]) -> int | None:
    max_tokens = body.get("max_tokens")
    return max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None


def _thinking_enabled(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _user_block_lists(body: Mapping[str, Any]) -> list[list[JSON]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [
        _blocks(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user"
    ]


def request_directives(body: Mapping[str, Any]) -> Directives:
    """The directives of a request: system prompt first, then the last user message.

    In computer-use mode the task (first user message) counts too: its ``plan``, ``rate``,
    ``chaos`` and ``badjson`` apply to every turn, its fault groups to the first turn
    only unless they carry ``step=K``. A group with ``step=K`` (anywhere) strikes only the request
    that is to produce computer step K (0-based), see ``computer_step``.
    """
    step = computer_step(body)
    system = _system_text(body)
    users = _user_block_lists(body)
    last = _block_text(users[-1]) if users else ""
    if len(users) > 1 and (_computer_tool(body) is not None or step > 0):
        task = _block_text(users[0])
        directives = parse_directives(system, task, last)
        directives = replace(
            directives,
            faults=(
                *parse_directives(system).faults,
                *(f for f in parse_directives(task).faults if f.step is not None),
                *parse_directives(last).faults,
            ),
        )
    else:
        directives = parse_directives(system, last)
    return replace(directives, faults=tuple(f for f in directives.faults if f.step in (None, step)))


def fingerprint(body: Mapping[str, Any]) -> str:
    """Hash of the request body without ``stream`` and ``metadata``: retries share it."""
    stripped = {k: v for k, v in body.items() if k not in ("stream", "metadata")}
    return _digest(json.dumps(stripped, sort_keys=True, ensure_ascii=False))


# --------------------------------------------------------------------------- tool inputs


def _stable_index(key: str, n: int) -> int:
    return int(_digest(key)[:8], 16) % n if n else 0


def example_value(schema: Any, key: str = "value", depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return f"sim {key}"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[_stable_index(key, len(enum))]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return example_value(options[0], key, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "string":
        return _example_string(schema, key)
    if kind in ("integer", "number"):
        return _example_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), 2)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [example_value(schema.get("items"), f"{key}{i}", depth + 1) for i in range(count)]
    if kind == "object":
        properties = schema.get("properties")
        required = schema.get("required")
        props: dict[str, Any] = properties if isinstance(properties, dict) else {}
        names = list(props)
        if isinstance(required, list):
            names += [r for r in required if isinstance(r, str) and r not in props]
        if depth >= 6:
            names = [n for n in names if isinstance(required, list) and n in required]
        return {name: example_value(props.get(name), name, depth + 1) for name in names}
    return f"sim {key}"


def _example_string(schema: JSON, key: str) -> str:
    formats = {
        "date-time": "2025-01-01T12:00:00Z",
        "date": "2025-01-01",
        "time": "12:00:00",
        "email": "sim@example.com",
        "uri": "https://example.com/sim",
        "url": "https://example.com/sim",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    text = formats.get(str(schema.get("format")), f"sim {key}")
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    if "minLength" in schema:
        text = text.ljust(int(schema["minLength"]), "x")
    return text


def _example_number(schema: JSON, *, integer: bool) -> int | float:
    value: float = 42 if integer else 3.5
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, int | float) and value < low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return int(value) if integer else float(value)


def _split_awkwardly(text: str) -> list[str]:
    pieces, pos, i = [""], 0, 0
    while pos < len(text):
        size = _JSON_PIECE_SIZES[i % len(_JSON_PIECE_SIZES)]
        pieces.append(text[pos : pos + size])
        pos, i = pos + size, i + 1
    return pieces


# --------------------------------------------------------------------------- computer use

IMAGE_TOKENS = 1200
ERROR_WORDS = 8
DEFAULT_COMPUTER_PLAN = "look"

DEMO_SIGNUP_TARGETS: dict[str, tuple[int, int]] = {
    "name": (940, 236),
    "email": (940, 316),
    "password": (940, 396),
    "terms": (750, 456),
    "submit": (940, 518),
    "terms_link": (871, 616),
}
"""Centres of the controls of ``relayq/static/demo_signup.html`` at 1280x720, scale 1."""


def _click(target: str) -> JSON:
    x, y = DEMO_SIGNUP_TARGETS[target]
    return {"action": "left_click", "coordinate": [x, y]}


_SCREENSHOT: JSON = {"action": "screenshot"}
# (caption, tool input) per step; the caption is the turn's text: "Step 2 of 7: <caption>."
_PLAN_STEPS: dict[str, tuple[tuple[str, JSON], ...]] = {
    "look": (("taking a screenshot", _SCREENSHOT),),
    "signup": (
        ("clicking the Name field", _click("name")),
        ("typing the name", {"action": "type", "text": "Ada Lovelace"}),
        ("clicking the Email field", _click("email")),
        ("typing the email address", {"action": "type", "text": "ada@example.com"}),
        ("ticking the terms checkbox", _click("terms")),
        ("clicking Create account", _click("submit")),
        ("taking a screenshot to check the result", _SCREENSHOT),
    ),
    "loop": (("clicking Create account", _click("submit")),),
    "bad": (
        ("clicking far outside the screen", {"action": "left_click", "coordinate": [5000, 5000]}),
        ("trying the teleport action", {"action": "teleport"}),
        ("taking a screenshot", _SCREENSHOT),
    ),
    "scroll": (
        (
            "scrolling down",
            {
                "action": "scroll",
                "coordinate": [640, 360],
                "scroll_direction": "down",
                "scroll_amount": 5,
            },
        ),
        ("taking a screenshot", _SCREENSHOT),
    ),
    "navigate_blocked": (
        ("clicking the Terms of service link", _click("terms_link")),
        ("taking a screenshot", _SCREENSHOT),
    ),
}
_PLAN_DESCRIPTIONS: dict[str, str] = {
    "look": "took a screenshot of the page",
    "signup": "created the Acme Cloud account for Ada Lovelace (ada@example.com)",
    "loop": "clicked Create account again and again",
    "bad": "tried two invalid actions, then took a screenshot",
    "scroll": "scrolled down the page and took a screenshot",
    "navigate_blocked": "followed the Terms of service link and took a screenshot",
}
ENDLESS_PLANS: frozenset[str] = frozenset({"loop"})
"""Plans that never finish: their steps repeat forever (for loop guards and step budgets)."""

COMPUTER_PLANS: dict[str, list[JSON]] = {
    name: [copy.deepcopy(tool_input) for _, tool_input in steps]
    for name, steps in _PLAN_STEPS.items()
}
"""The computer-use plans by name: the ``computer`` tool inputs, in order (see module docs)."""


def _computer_tool(body: Mapping[str, Any]) -> JSON | None:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    return next(
        (
            t
            for t in tools
            if isinstance(t, dict) and str(t.get("type", "")).startswith("computer_")
        ),
        None,
    )


def computer_step(body: Mapping[str, Any]) -> int:
    """How many assistant turns of the conversation called the ``computer`` tool."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(
        1
        for m in messages
        if isinstance(m, dict)
        and m.get("role") == "assistant"
        and any(
            b.get("type") == "tool_use" and b.get("name") == "computer"
            for b in _blocks(m.get("content"))
        )
    )


def _plan_name(body: Mapping[str, Any]) -> str:
    return request_directives(body).plan or DEFAULT_COMPUTER_PLAN


def computer_plan(body: Mapping[str, Any]) -> list[JSON]:
    """The ``computer`` tool inputs the request's plan runs through, in order (a copy).

    The plan is named by ``[[sim:plan=NAME]]`` in the task or the system prompt (default
    ``look``); an endless plan (``ENDLESS_PLANS``) repeats its list forever. Raises
    ``ValueError`` for an unknown plan or another malformed directive.
    """
    return copy.deepcopy(COMPUTER_PLANS[_plan_name(body)])


def _last_error_words(last: list[JSON]) -> list[str] | None:
    """The first words of the last user turn's last failed tool_result, or None if none failed."""
    results = [b for b in last if b.get("type") == "tool_result"]
    if not results or not results[-1].get("is_error"):
        return None
    text = _block_text([b for b in _blocks(results[-1].get("content")) if b.get("type") == "text"])
    words = text.split()
    if len(words) > ERROR_WORDS:
        words = [*words[: ERROR_WORDS - 1], words[ERROR_WORDS - 1].rstrip(".,;:") + "..."]
    return words


def _computer_reply(body: Mapping[str, Any], directives: Directives, prompt: str) -> _Plan:
    name = directives.plan or DEFAULT_COMPUTER_PLAN
    steps = _PLAN_STEPS[name]
    endless = name in ENDLESS_PLANS
    step = computer_step(body)
    tool = _computer_tool(body)
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "none":
        tool = None
    budget = _token_budget(body)
    last = _last_user_blocks(body)

    blocks: list[_Block] = []
    if _thinking_enabled(body):
        blocks.append(_thinking_block(prompt))
    lead: list[str] = []
    error_words = _last_error_words(last)
    if error_words is not None and tool is not None:
        lead = _sentence("The last action failed:", error_words, "no details.")
    action: JSON | None = None
    total = len(steps)
    if tool is None:
        lead = _summary(name, step, body).split()
        stop_reason = "end_turn"
    elif endless or step < total:
        caption, action = steps[step % total]
        where = f"Step {step + 1}:" if endless else f"Step {step + 1} of {total}:"
        lead += [*where.split(), *f"{caption}.".split()]
        stop_reason = "tool_use"
    else:
        lead += f"Task complete: {_PLAN_DESCRIPTIONS[name]}.".split()
        stop_reason = "end_turn"
    text_tokens = _tokens(lead, prompt, None)
    if budget is not None and len(text_tokens) > budget:
        text_tokens, stop_reason, action = text_tokens[:budget], "max_tokens", None
    blocks.append(_Block("text", tuple(text_tokens)))
    if action is not None:
        blocks.append(
            _tool_use_block(
                f"toolu_sim_{step + 1}",
                "computer",
                copy.deepcopy(action),
                badjson=directives.badjson,
            )
        )
    return _finish(blocks, stop_reason, directives)


def _summary(name: str, step: int, body: Mapping[str, Any]) -> str:
    failed = sum(
        1
        for blocks in _user_block_lists(body)
        for b in blocks
        if b.get("type") == "tool_result" and b.get("is_error")
    )
    errors = f"{failed} of them failed" if failed else "none of them failed"
    total = len(_PLAN_STEPS[name])
    if name in ENDLESS_PLANS:
        return f"Summary: I took {step} actions of the endless {name} plan and stopped; {errors}."
    if step >= total:
        return f"Summary: I {_PLAN_DESCRIPTIONS[name]}, in {total} actions; {errors}."
    return (
        f"Summary: I stopped after {step} of the {total} actions of the {name} plan; "
        f"{errors}. The goal was that I {_PLAN_DESCRIPTIONS[name]}."
    )


# --------------------------------------------------------------------------- the reply plan


@dataclass(frozen=True)
class _Block:
    kind: Literal["thinking", "text", "tool_use"]
    pieces: tuple[str, ...]
    signature: str = ""
    tool_id: str = ""
    tool_name: str = ""
    tool_input: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    blocks: tuple[_Block, ...]
    stop_reason: str
    output_tokens: int
    directives: Directives


def _words(text: str) -> list[str]:
    return text.split()


def _tokens(lead: list[str], seed: str, count: int | None) -> list[str]:
    """Words of ``lead`` padded with filler (or cut) to ``count``, as word+space tokens."""
    words = list(lead)
    if count is not None:
        start, step = _stable_index(seed, len(_FILLER)), 1 + _stable_index(seed + "/", 7)
        while len(words) < count:
            words.append(_FILLER[(start + step * (len(words) - len(lead))) % len(_FILLER)])
        words = words[:count]
    return [w + " " for w in words[:-1]] + words[-1:]


def _sentence(prefix: str, words: list[str], empty: str) -> list[str]:
    if not words:
        return [*prefix.split(), empty]
    last = words[-1] if words[-1][-1] in ".?!" else words[-1] + "."
    return [*prefix.split(), *words[:-1], last]


def _thinking_block(prompt: str) -> _Block:
    thought = _sentence("The user asked:", _words(prompt)[:PROMPT_WORDS], "nothing.")
    thought += "I will answer with the scripted reply.".split()
    text = "".join(_tokens(thought, prompt, None))
    signature = base64.b64encode(hashlib.sha256(("sig:" + text).encode()).digest() * 2)
    return _Block("thinking", tuple(_tokens(thought, prompt, None)), signature=signature.decode())


def _tool_use_block(tool_id: str, name: str, tool_input: JSON, *, badjson: bool) -> _Block:
    raw = _dumps(tool_input)
    if badjson:
        raw = raw[:-1] + ',"sim_badjson": }'
    return _Block(
        "tool_use",
        tuple(_split_awkwardly(raw)),
        tool_id=tool_id,
        tool_name=name,
        tool_input=tool_input,
    )


def _finish(blocks: list[_Block], stop_reason: str, directives: Directives) -> _Plan:
    output_tokens = sum(
        max(1, len("".join(b.pieces)) // 4) if b.kind == "tool_use" else len(b.pieces)
        for b in blocks
    )
    return _Plan(tuple(blocks), stop_reason, max(1, output_tokens), directives)


def _plan(body: Mapping[str, Any]) -> _Plan:
    directives = request_directives(body)
    last = _last_user_blocks(body)
    prompt = " ".join(strip_directives(_block_text(last)).split())
    if _computer_tool(body) is not None or computer_step(body) > 0:
        return _computer_reply(body, directives, prompt)
    results = [b for b in last if b.get("type") == "tool_result"]
    tool_choice = body.get("tool_choice")
    choice: JSON = tool_choice if isinstance(tool_choice, dict) else {}
    tools = _custom_tools(body)
    budget = _token_budget(body)
    body_id = fingerprint(body)

    blocks: list[_Block] = []
    if _thinking_enabled(body):
        blocks.append(_thinking_block(prompt))

    tool: JSON | None = None
    if tools and not results and choice.get("type") != "none":
        if choice.get("type") == "tool":
            tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
            if tool is None:
                raise DirectiveError(f"tool_choice names unknown tool {choice.get('name')!r}")
        else:
            tool = tools[0]

    stop_reason = "end_turn"
    if results:
        text_of_results = " ".join(_tool_result_text(r) for r in results)
        failed = any(r.get("is_error") for r in results)
        lead = _sentence(
            "The tool reported an error:" if failed else "The tool said:",
            _words(text_of_results)[:RESULT_WORDS],
            "nothing.",
        )
        count: int | None = directives.tokens or max(DEFAULT_REPLY_TOKENS, len(lead))
    else:
        lead = _sentence("Simulated reply to:", _words(prompt)[:PROMPT_WORDS], "(empty).")
        count = directives.tokens or DEFAULT_REPLY_TOKENS
        if tool is not None:
            lead += ["Calling", f"{tool['name']}."]
            count = directives.tokens
    text_tokens = _tokens(lead, prompt, count)
    if tool is not None and choice.get("type") in ("tool", "any"):
        text_tokens = []
    if budget is not None and len(text_tokens) > budget:
        text_tokens, stop_reason, tool = text_tokens[:budget], "max_tokens", None
    if text_tokens:
        blocks.append(_Block("text", tuple(text_tokens)))

    if tool is not None:
        tool_input = example_value(tool.get("input_schema", {"type": "object"}), "input")
        if not isinstance(tool_input, dict):
            tool_input = {"value": tool_input}
        blocks.append(
            _tool_use_block(
                "toolu_sim" + body_id[:20],
                str(tool["name"]),
                tool_input,
                badjson=directives.badjson,
            )
        )
        stop_reason = "tool_use"
    return _finish(blocks, stop_reason, directives)


def scripted_reply(body: Mapping[str, Any]) -> str:
    """The text a request gets back: all its text blocks, concatenated (thinking excluded).

    Pure and deterministic; the simulator streams exactly this text, one token per
    ``text_delta``. Raises ``ValueError`` for a malformed ``[[sim:...]]`` directive.
    """
    plan = _plan(body)
    return "".join("".join(b.pieces) for b in plan.blocks if b.kind == "text")


def scripted_computer_turn(body: Mapping[str, Any]) -> JSON:
    """The assistant turn a request gets: ``{"role", "content", "stop_reason"}``.

    ``content`` holds the blocks exactly as the non-streaming API returns them (a streamed reply
    accumulates to the same). Pure and deterministic; meant for computer-use conversations but
    works for any request. Raises ``ValueError`` for a malformed ``[[sim:...]]`` directive.
    """
    plan = _plan(body)
    return {
        "role": "assistant",
        "content": [_final_block(b) for b in plan.blocks],
        "stop_reason": plan.stop_reason,
    }


# --------------------------------------------------------------------------- wire payloads


class UsagePayload(TypedDict):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class _Usage:
    input_tokens: int
    cache_creation: int
    cache_read: int

    def payload(self, output_tokens: int) -> UsagePayload:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output_tokens,
        }


def _final_block(block: _Block) -> JSON:
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


def _start_block(block: _Block) -> JSON:
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


def _delta(block: _Block, piece: str) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking_delta", "thinking": piece}
    if block.kind == "text":
        return {"type": "text_delta", "text": piece}
    return {"type": "input_json_delta", "partial_json": piece}


@dataclass(frozen=True)
class _Event:
    name: str
    data: JSON
    is_delta: bool = False


def _message_shell(msg_id: str, model: str) -> JSON:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def _events(plan: _Plan, usage: _Usage, msg_id: str, model: str) -> list[_Event]:
    start_usage: JSON = {**usage.payload(1), "service_tier": "standard"}
    events = [
        _Event(
            "message_start",
            {
                "type": "message_start",
                "message": {**_message_shell(msg_id, model), "usage": start_usage},
            },
        )
    ]
    for index, block in enumerate(plan.blocks):
        events.append(
            _Event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": _start_block(block),
                },
            )
        )
        if index == 0:
            events.append(_Event("ping", {"type": "ping"}))
        for piece in block.pieces:
            events.append(
                _Event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": _delta(block, piece)},
                    is_delta=True,
                )
            )
        if block.kind == "thinking":
            events.append(
                _Event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block.signature},
                    },
                )
            )
        events.append(_Event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not plan.blocks:
        events.append(_Event("ping", {"type": "ping"}))
    events.append(
        _Event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": None},
                "usage": usage.payload(plan.output_tokens),
            },
        )
    )
    events.append(_Event("message_stop", {"type": "message_stop"}))
    return events


def _sse(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


def _error_body(error_type: str, message: str, request_id: str) -> JSON:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def _error_response(
    status: int,
    error_type: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        _error_body(error_type, message, request_id),
        status_code=status,
        headers={"request-id": request_id, **(headers or {})},
    )


# --------------------------------------------------------------------------- prompt accounting


_IMAGE_STUB_SIZE = len(_dumps({"type": "image", "sim_image": _digest("")[:32]}))


def _stub_images(value: Any, images: list[int]) -> Any:
    """``value`` with every image block replaced by a fixed-size stub naming its data's hash."""
    if isinstance(value, list):
        return [_stub_images(v, images) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("type") == "image":
        images.append(1)
        return {"type": "image", "sim_image": _digest(_dumps(value.get("source")))[:32]}
    return {k: _stub_images(v, images) for k, v in value.items()}


def _prompt_segments(body: Mapping[str, Any]) -> list[tuple[str, bool, int]]:
    """(canonical JSON without cache_control, is a breakpoint, size in chars) in the API's prefix
    order. An image block counts as ``IMAGE_TOKENS`` tokens (4 chars each), whatever its size."""

    def segment(role: str, block: Any) -> tuple[str, bool, int]:
        images: list[int] = []
        if isinstance(block, dict):
            clean = {k: v for k, v in block.items() if k != "cache_control"}
            text = _dumps({"role": role, "block": _stub_images(clean, images)})
            marked = block.get("cache_control") is not None
        else:
            text, marked = _dumps({"role": role, "block": block}), False
        return text, marked, len(text) + len(images) * (IMAGE_TOKENS * 4 - _IMAGE_STUB_SIZE)

    segments: list[tuple[str, bool, int]] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        segments.append(segment("tool", tool))
    for block in _blocks(body.get("system")):
        segments.append(segment("system", block))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            for block in _blocks(message.get("content")):
                segments.append(segment(str(message.get("role")), block))
    return segments


def count_input_tokens(body: Mapping[str, Any]) -> int:
    return max(1, sum(size for _, _, size in _prompt_segments(body)) // 4)


# --------------------------------------------------------------------------- the server


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests_total = 0
        self.streaming = 0
        self.non_streaming = 0
        self.in_flight = 0
        self.outcomes: defaultdict[str, int] = defaultdict(int)
        self.faults: defaultdict[str, int] = defaultdict(int)
        self.cache: defaultdict[str, int] = defaultdict(int)

    def bump(self, table: str, key: str, n: int = 1) -> None:
        with self.lock:
            getattr(self, table)[key] += n

    def snapshot(self) -> JSON:
        with self.lock:
            return {
                "requests_total": self.requests_total,
                "streaming": self.streaming,
                "non_streaming": self.non_streaming,
                "in_flight": self.in_flight,
                "outcomes": dict(self.outcomes),
                "faults": dict(self.faults),
                "cache": dict(self.cache),
            }


class _Closing(Exception):
    """The simulator is shutting down; abandon the response."""


@dataclass
class _Exchange:
    """One /v1/messages request that passed validation."""

    request_id: str
    body: JSON
    stream: bool
    fault: FaultSpec | None
    plan: _Plan
    rate: float


class Simulator:
    """The simulator server. Use as ``async with Simulator(...) as sim:`` or start()/aclose()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        tokens_per_second: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        self.host = host
        self.port = port
        self.api_key = api_key
        self.tokens_per_second = tokens_per_second
        self.fault_rate = fault_rate
        self.seed = seed
        self._stats = _Stats()
        self._attempts: defaultdict[str, int] = defaultdict(int)
        self._cache: set[str] = set()
        self._seq = 0
        self._socket: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._server: uvicorn.Server | None = None
        self._closing = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/_sim/stats", self._get_stats, methods=["GET"]),
                Route("/_sim/reset", self._reset, methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._http_exception},
        )

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("Simulator is not started")
        host, port = self._address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def stats(self) -> JSON:
        return self._stats.snapshot()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("Simulator already started")
        self._closing = asyncio.Event()
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.setblocking(False)
            config = uvicorn.Config(
                self.app,
                http="h11",
                lifespan="off",
                log_config=None,
                access_log=False,
                ws="none",
                timeout_keep_alive=30,
            )
            config.load()
            server = uvicorn.Server(config)
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._socket, self._server = sock, server
        self._address = sock.getsockname()[:2]

    async def aclose(self) -> None:
        server, sock = self._server, self._socket
        if server is None or sock is None or self._closing.is_set():
            return
        self._closing.set()
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        tasks = list(server.server_state.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for connection in list(server.server_state.connections):
            _transport(connection).abort()
        for listener in server.servers:
            await listener.wait_closed()
        sock.close()
        self._server = self._socket = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- small endpoints

    def _next_request_id(self) -> str:
        self._seq += 1
        return f"req_sim{self._seq:017d}"

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        error_type = _ERROR_TYPES.get(status, "invalid_request_error")
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal server error"
        return _error_response(
            status,
            error_type,
            f"{detail}: {request.method} {request.url.path}",
            self._next_request_id(),
        )

    async def _get_stats(self, request: Request) -> Response:
        return JSONResponse(self.stats, headers={"request-id": self._next_request_id()})

    async def _reset(self, request: Request) -> Response:
        self._stats.reset()
        self._attempts.clear()
        self._cache.clear()
        return JSONResponse({"ok": True}, headers={"request-id": self._next_request_id()})

    async def _count_tokens(self, request: Request) -> Response:
        request_id = self._next_request_id()
        body, error = await self._read_body(request, request_id, need_max_tokens=False)
        if error is not None:
            return error
        return JSONResponse(
            {"input_tokens": count_input_tokens(body)}, headers={"request-id": request_id}
        )

    # ---- /v1/messages

    def _authenticate(self, request: Request, request_id: str) -> Response | None:
        key = request.headers.get("x-api-key", "")
        if not key:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            return _error_response(
                401, "authentication_error", "x-api-key header is required", request_id
            )
        if self.api_key is not None and key != self.api_key:
            return _error_response(401, "authentication_error", "invalid x-api-key", request_id)
        return None

    async def _read_body(
        self, request: Request, request_id: str, *, need_max_tokens: bool = True
    ) -> tuple[JSON, Response | None]:
        denied = self._authenticate(request, request_id)
        if denied is not None:
            return {}, denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            return {}, _error_response(
                400, "invalid_request_error", "The request body is not valid JSON.", request_id
            )
        if not isinstance(body, dict):
            return {}, _error_response(
                400, "invalid_request_error", "The request body must be a JSON object.", request_id
            )
        problem = _validate(body, need_max_tokens=need_max_tokens)
        if problem is not None:
            return {}, _error_response(400, "invalid_request_error", problem, request_id)
        return body, None

    async def _messages(self, request: Request) -> Response:
        request_id = self._next_request_id()
        with self._stats.lock:
            self._stats.requests_total += 1
        body, error = await self._read_body(request, request_id)
        if error is not None:
            self._stats.bump("outcomes", f"http_{error.status_code}")
            return error
        try:
            plan = _plan(body)
        except DirectiveError as exc:
            self._stats.bump("outcomes", "http_400")
            return _error_response(400, "invalid_request_error", str(exc), request_id)
        stream = bool(body.get("stream"))
        with self._stats.lock:
            if stream:
                self._stats.streaming += 1
            else:
                self._stats.non_streaming += 1
        fp = fingerprint(body)
        attempt = self._attempts[fp]
        self._attempts[fp] += 1
        fault = _scheduled_fault(plan.directives, attempt)
        if fault is None and plan.directives.chaos:
            fault = self._chaos_fault(fp, attempt)
        if fault is not None:
            if fault.kind is not None:
                self._stats.bump("faults", fault.kind if fault.source == "directive" else "chaos")
            if fault.stall:
                self._stats.bump("faults", "stall")
        rate = plan.directives.rate if plan.directives.rate is not None else self.tokens_per_second
        exchange = _Exchange(request_id, body, stream, fault, plan, rate)
        return _MessagesResponse(self, exchange)

    def _chaos_fault(self, fp: str, attempt: int) -> FaultSpec | None:
        if self.fault_rate <= 0:
            return None
        rng = random.Random(_digest(str(self.seed), fp, str(attempt)))
        if rng.random() >= self.fault_rate:
            return None
        choice = rng.choice(("529", "500", "429", "midstream"))
        if choice == "midstream":
            return FaultSpec(
                "midstream", error_type="overloaded_error", after=rng.randint(0, 3), source="chaos"
            )
        status = int(choice)
        return FaultSpec(
            "fail", status=status, error_type=_ERROR_TYPES[status], retry_after=0, source="chaos"
        )

    def _usage(self, body: Mapping[str, Any]) -> _Usage:
        segments = _prompt_segments(body)
        running = hashlib.sha256(str(body.get("model")).encode())
        prefix_hashes: list[str] = []
        prefix_tokens: list[int] = []
        size = 0
        for text, _, length in segments:
            running.update(b"\x1e" + text.encode())
            prefix_hashes.append(running.hexdigest())
            size += length
            prefix_tokens.append(size // 4)
        total = max(1, size // 4)
        breakpoints = [i for i, (_, marked, _) in enumerate(segments) if marked]
        if not breakpoints:
            return _Usage(total, 0, 0)
        last = breakpoints[-1]
        read = next(
            (prefix_tokens[i] for i in range(last, -1, -1) if prefix_hashes[i] in self._cache), 0
        )
        created = 0 if prefix_hashes[last] in self._cache else prefix_tokens[last] - read
        self._cache.update(prefix_hashes[i] for i in breakpoints)
        self._stats.bump("cache", "read_tokens", read)
        self._stats.bump("cache", "creation_tokens", created)
        return _Usage(max(0, total - prefix_tokens[last]), created, read)

    # ---- connection control used by _MessagesResponse

    def _abort(self, scope: Scope) -> None:
        server = self._server
        client = scope.get("client")
        if server is None or client is None:
            return
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == tuple(client):
                _transport(connection).abort()

    async def _pause(self, seconds: float, disconnected: asyncio.Event) -> None:
        """Sleep, but wake up (raising _Closing) on shutdown or client disconnect."""
        if seconds <= 0:
            return
        closing = asyncio.ensure_future(self._closing.wait())
        gone = asyncio.ensure_future(disconnected.wait())
        try:
            await asyncio.wait(
                {closing, gone}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closing.cancel()
            gone.cancel()
        if self._closing.is_set() or disconnected.is_set():
            raise _Closing


def _transport(connection: Any) -> asyncio.Transport:
    transport: asyncio.Transport = connection.transport
    return transport


def _validate(body: JSON, *, need_max_tokens: bool) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required" if "model" not in body else "model: Input should be a string"
    if need_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            return "max_tokens: Field required"
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if not isinstance(message.get("content"), str | list):
            return f"messages.{i}.content: Field required"
    return None


def _scheduled_fault(directives: Directives, attempt: int) -> FaultSpec | None:
    for spec in directives.faults:
        if attempt < spec.times:
            return spec
        attempt -= spec.times
    return None


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


class _MessagesResponse(Response):
    """Plays one exchange onto the connection, faults included."""

    def __init__(self, sim: Simulator, exchange: _Exchange) -> None:
        super().__init__(status_code=200)
        self.sim = sim
        self.exchange = exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sim = self.sim
        disconnected = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, disconnected))
        with sim._stats.lock:
            sim._stats.in_flight += 1
        outcome = "server_error"
        try:
            outcome = await self._play(scope, receive, send, disconnected)
        except _Closing:
            outcome = "client_disconnected" if disconnected.is_set() else "aborted_on_shutdown"
            sim._abort(scope)
        finally:
            with sim._stats.lock:
                sim._stats.in_flight -= 1
            sim._stats.bump("outcomes", outcome)
            if outcome in ("dropped", "aborted_on_shutdown"):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(disconnected.wait(), 1.0)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _play(
        self, scope: Scope, receive: Receive, send: Send, disconnected: asyncio.Event
    ) -> str:
        sim, ex, fault = self.sim, self.exchange, self.exchange.fault
        before_headers = fault is not None and (fault.after < 0 or not ex.stream)
        if fault is not None and fault.stall and (before_headers or fault.kind == "fail"):
            await sim._pause(fault.stall, disconnected)
        if fault is not None and fault.kind == "drop" and before_headers:
            sim._abort(scope)
            return "dropped"
        if fault is not None and fault.kind == "fail":
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.status == 429 else {}
            message = _ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
            await _error_response(fault.status, fault.error_type, message, ex.request_id, headers)(
                scope, receive, send
            )
            return f"http_{fault.status}"
        if fault is not None and fault.kind == "midstream" and not ex.stream:
            status = _STATUS_FOR_ERROR_TYPE.get(fault.error_type, 500)
            message = _ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
            headers = {"retry-after": "0"} if status == 429 else {}
            await _error_response(status, fault.error_type, message, ex.request_id, headers)(
                scope, receive, send
            )
            return f"http_{status}"

        usage = sim._usage(ex.body)
        model = str(ex.body["model"])
        msg_id = "msg_sim" + _digest(fingerprint(ex.body), ex.request_id)[:20]
        if not ex.stream:
            message_json = {
                **_message_shell(msg_id, model),
                "content": [_final_block(b) for b in ex.plan.blocks],
                "stop_reason": ex.plan.stop_reason,
                "usage": {**usage.payload(ex.plan.output_tokens), "service_tier": "standard"},
            }
            await JSONResponse(message_json, headers={"request-id": ex.request_id})(
                scope, receive, send
            )
            return "ok"
        return await self._stream(scope, send, disconnected, usage, msg_id, model)

    async def _stream(
        self,
        scope: Scope,
        send: Send,
        disconnected: asyncio.Event,
        usage: _Usage,
        msg_id: str,
        model: str,
    ) -> str:
        sim, ex = self.sim, self.exchange
        fault = ex.fault
        stall_at = fault.after if fault is not None and fault.stall and fault.after >= 0 else None
        end_at = (
            max(fault.after, 0)
            if fault is not None and fault.kind in ("midstream", "drop")
            else None
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"request-id", ex.request_id.encode()),
                ],
            }
        )
        loop = asyncio.get_running_loop()
        interval = 1.0 / ex.rate if ex.rate > 0 else 0.0
        started = loop.time()
        deltas = 0

        async def emit(data: bytes) -> None:
            if sim._closing.is_set() or disconnected.is_set():
                raise _Closing
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async def checkpoint(final: bool) -> str | None:
            nonlocal stall_at, end_at, started
            if fault is None:
                return None
            if stall_at is not None and (final or deltas >= stall_at):
                stall_at = None
                await sim._pause(fault.stall, disconnected)
                started = loop.time() - deltas * interval
            if end_at is not None and (final or deltas >= end_at):
                if fault.kind == "drop":
                    sim._abort(scope)
                    return "dropped"
                message = _ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
                await emit(
                    _sse(
                        "error",
                        {"type": "error", "error": {"type": fault.error_type, "message": message}},
                    )
                )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return f"midstream_{fault.error_type}"
            return None

        for event in _events(ex.plan, usage, msg_id, model):
            if event.name == "message_delta" and (outcome := await checkpoint(final=True)):
                return outcome
            if event.is_delta and interval:
                await sim._pause(started + deltas * interval - loop.time(), disconnected)
            await emit(_sse(event.name, event.data))
            deltas += event.is_delta
            if (event.name == "message_start" or event.is_delta) and (
                outcome := await checkpoint(final=False)
            ):
                return outcome
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "ok"


# --------------------------------------------------------------------------- threads and CLI


@contextlib.contextmanager
def run_in_thread(**kwargs: Any) -> Iterator[Simulator]:
    """Serve a Simulator on its own event loop in a daemon thread for the duration of the block."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
        try:
            async with Simulator(**kwargs) as sim:
                holder["sim"] = sim
                ready.set()
                await stop.wait()
        except BaseException as exc:
            holder["error"] = exc
            raise
        finally:
            ready.set()

    def runner() -> None:
        with contextlib.suppress(BaseException):
            asyncio.run(serve())

    thread = threading.Thread(target=runner, name="relayq-simulator", daemon=True)
    thread.start()
    ready.wait()
    if "sim" not in holder:
        thread.join()
        raise RuntimeError("simulator failed to start") from holder.get("error")
    try:
        yield holder["sim"]
    finally:
        loop: asyncio.AbstractEventLoop = holder["loop"]
        stop: asyncio.Event = holder["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join()


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    sim = Simulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        tokens_per_second=args.tokens_per_second,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim:
            print(f"simulator listening on {sim.base_url}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m relayq.simulator",
        description="Anthropic-compatible Messages API simulator (see the module docs for the "
        "[[sim:...]] directive language).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="accept only this x-api-key")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=0.0,
        help="streaming rate; 0 = as fast as possible",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="fraction of requests that fail (529/500/429/mid-stream)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --fault-rate")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_until_signalled(args))
    except OSError as exc:
        print(f"simulator: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
