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
``GET /demo/signup`` (also ``/demo_signup.html``), ``GET /demo/small-target``
    The demo sign-up page (``relayq/static/demo_signup.html``) that the ``signup`` plan fills in,
    and the page of the ``small_target`` plan, so a computer-use job can run with the simulator
    as its only server. No key needed.
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
``at_cursor``         on the demo page: mouse_move to Name (940, 236); left_click and scroll
                      down 1 without ``coordinate`` (at the cursor); type "Ada Lovelace";
                      screenshot
``small_target``      on ``/demo/small-target`` (a 10x10 px square at 75 %/80 % of the
                      viewport): screenshot; left_click the square where the model sees it
                      (``SMALL_TARGET`` resolved by ``model_view``); screenshot
====================  =========================================================================

Coordinates of ``small_target`` are those of the image the model sees: the request's latest
screenshot as the API shrinks it (long edge at most 1568 px, about 1.15 megapixels,
``model_view``), as the real model answers. A client that sends a 1920x1080 screenshot unscaled
gets a click meant for a 1429x804 image; one that scales screenshots to its declared display and
maps coordinates back hits the square.

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

Strict mode
-----------
``Simulator(strict=True)`` (the default; ``--lenient`` on the command line turns it off) answers
every request that the real API is documented to reject the way the API does: HTTP 400,
``{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}``, with the API's
own wording where it is known. The tests run strict. ``/_sim/stats`` counts rejections by rule
under ``rejected``. The rules (``relayq.simulator.strict``), in the order they are checked:

``unknown_betas``
    an ``anthropic-beta`` value the API does not know ("Unexpected value(s) ... for the
    ``anthropic-beta`` header"). Source: https://platform.claude.com/docs/en/api/beta-headers
    (invalid or unavailable beta header: error response) and the ``anthropic-beta``
    enumeration of https://platform.claude.com/docs/en/api/messages/create.
``computer_tool_without_its_beta``
    a computer tool whose version is unknown, or sent without its beta header
    (``computer_20251124`` needs ``computer-use-2025-11-24``, ``computer_20250124``
    ``computer-use-2025-01-24``, ``computer_20241022`` ``computer-use-2024-10-22``);
    ``enable_zoom`` on a version before ``computer_20251124``. Source:
    https://platform.claude.com/docs/en/agents-and-tools/tool-use/computer-use-tool
    (tool versions, their beta flags, zoom).
``thinking_budget_outside_limits``
    ``thinking.budget_tokens`` below 1,024, or not below ``max_tokens`` (unless the
    interleaved-thinking beta is on). Source:
    https://platform.claude.com/docs/en/build-with-claude/extended-thinking (budget_tokens,
    "Max tokens and context window size").
``thinking_with_forced_tool_use``
    ``thinking`` ``enabled`` with ``tool_choice`` ``any`` or ``tool``. Source:
    https://platform.claude.com/docs/en/build-with-claude/thinking-tool-workflows ("Limit tool
    choice to auto or none in manual mode") and the extended-thinking page (tool use).
``thinking_with_sampling_changes``
    thinking with ``temperature`` other than 1, any ``top_k``, or ``top_p`` below 0.95.
    Source: the extended-thinking page, "Feature compatibility".
``empty_text_or_content``
    a text block with empty text (in messages, tool results or the system prompt), or a
    message with empty content other than a final assistant one. Source: the request schema
    of https://platform.claude.com/docs/en/api/messages/create (the API's messages: "text
    content blocks must be non-empty", "all messages must have non-empty content except for the
    optional final assistant message").
``tool_history_without_tools``
    ``tool_use`` or ``tool_result`` blocks in a request without ``tools`` ("Requests which
    include ``tool_use`` or ``tool_result`` blocks must define tools."). Source:
    https://platform.claude.com/docs/en/agents-and-tools/tool-use/define-tools
    (``tool_choice`` ``none`` keeps the tools defined while forbidding their use) and the
    API's error.
``tool_results_not_after_their_tool_use``
    a ``tool_use`` whose ``tool_result`` is not in the next (user) message; ``tool_result``
    blocks that are not first in their message; a ``tool_result`` answering no ``tool_use`` of
    the message before. Source:
    https://platform.claude.com/docs/en/agents-and-tools/tool-use/handle-tool-calls
    ("Important formatting requirements").
``tool_loop_without_its_thinking``
    with thinking on, a request whose last user turn holds ``tool_result`` blocks while the
    assistant turn before it does not start with a ``thinking``/``redacted_thinking`` block.
    Source: https://platform.claude.com/docs/en/build-with-claude/extended-thinking ("Preserving
    thinking blocks", thinking with tool use).
``modified_thinking``
    a ``thinking`` block of the last assistant turn whose signature does not match its text
    (the simulator checks its own signatures). Source: the same section ("pass thinking blocks
    back complete and unmodified"; the signature verifies them).
``prefill_on_a_model_without_it``
    a conversation ending with an assistant turn, on Claude 4.6 and later (by model id:
    ``claude-sonnet-4-6``, ``claude-opus-4-8``, ``claude-sonnet-5``, ...; ids without a Claude
    version are let through). Source:
    https://platform.claude.com/docs/en/about-claude/models/whats-new-claude-4-6 ("Prefill
    removal") and https://platform.claude.com/docs/en/about-claude/models/migration-guide
    ("Prefilling assistant messages returns a 400 error on Claude 4.6 models").
``oversized_or_unreadable_images``
    an image (also inside a ``tool_result``) over 5 MB of base64, not a PNG/JPEG/GIF/WebP,
    not of its declared ``media_type``, larger than 8000 px on a side, or larger than 2000 px
    on a side in a request with more than 20 images. Source:
    https://platform.claude.com/docs/en/build-with-claude/vision ("Basics and limits";
    supported formats).

Package layout
--------------
``directives`` the ``[[sim:...]]`` language; ``replies`` the scripted text, tool and thinking
replies, usage and the prompt cache; ``computer`` the computer-use plans and turns; ``plan`` a
reply before it is encoded; ``wire`` the SSE/JSON encoding and the API's error shapes;
``validation`` the shape every request must have; ``strict`` the documented rejections and
``images`` the image headers they read; ``request`` readers of a request body;
``server`` the Starlette app, ``Simulator``, ``run_in_thread`` and the command line.
"""

from __future__ import annotations

from .computer import COMPUTER_PLANS, DEMO_SIGNUP_TARGETS, ENDLESS_PLANS, SMALL_TARGET, model_view
from .directives import DirectiveError, parse_directives, request_directives
from .replies import (
    IMAGE_TOKENS,
    computer_plan,
    count_input_tokens,
    scripted_computer_turn,
    scripted_reply,
)
from .request import computer_step, fingerprint
from .server import DEMO_SIGNUP_PATH, SMALL_TARGET_PATH, Simulator, main, run_in_thread

__all__ = [
    "COMPUTER_PLANS",
    "DEMO_SIGNUP_PATH",
    "DEMO_SIGNUP_TARGETS",
    "ENDLESS_PLANS",
    "IMAGE_TOKENS",
    "SMALL_TARGET",
    "SMALL_TARGET_PATH",
    "DirectiveError",
    "Simulator",
    "computer_plan",
    "computer_step",
    "count_input_tokens",
    "fingerprint",
    "main",
    "model_view",
    "parse_directives",
    "request_directives",
    "run_in_thread",
    "scripted_computer_turn",
    "scripted_reply",
]
