"""The Anthropic-compatible simulator, driven by the real anthropic SDK over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from relayq.simulator import Simulator, run_in_thread, scripted_reply

MODEL = "claude-sim-1"
ROOT = Path(__file__).resolve().parent.parent

WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a place.",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "threshold": {"type": "number"},
            "alerts": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "where": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"],
            },
        },
        "required": ["location", "unit", "where"],
    },
}
CLOCK_TOOL: dict[str, Any] = {
    "name": "get_time",
    "description": "Current time.",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}},
}


def body_for(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 512,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator() as server:
        yield server


@pytest.fixture(scope="module")
async def client(sim: Simulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url, api_key="sk-test", max_retries=0
    ) as sdk:
        yield sdk


async def raw_sse(sim: Simulator, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """POST a streaming request and return the (event, data) pairs exactly as sent."""
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        httpx.AsyncClient(base_url=sim.base_url, timeout=10) as http,
        http.stream(
            "POST", "/v1/messages", json={**body, "stream": True}, headers={"x-api-key": "sk-test"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


async def stream_text(
    client: anthropic.AsyncAnthropic, body: dict[str, Any], seen: list[str] | None = None
) -> str:
    pieces = seen if seen is not None else []
    async with client.messages.stream(**body) as stream:
        async for text in stream.text_stream:
            pieces.append(text)
    return "".join(pieces)


# --------------------------------------------------------------------------- plain text


async def test_streamed_text_equals_scripted_reply(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("Tell me about the weather in Paris in spring, briefly please.")
    text = await stream_text(client, body)
    assert text == scripted_reply(body)
    assert text.startswith("Simulated reply to: Tell me about the weather in Paris in spring,")
    assert len(text.split()) == 24


async def test_raw_event_sequence_matches_the_api(sim: Simulator) -> None:
    body = body_for("Describe the event order [[sim:tokens=5]]")
    events = await raw_sse(sim, body)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["content"] == [] and start["model"] == MODEL
    assert start["stop_reason"] is None
    usage = start["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] == 1
    assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert "".join(deltas) == scripted_reply(body)
    assert all(d.endswith(" ") for d in deltas[:-1])
    assert "sim:" not in "".join(deltas)
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == 5


async def test_non_streaming_message(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("A non-streaming question about rivers")
    message = await client.messages.create(**body)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == scripted_reply(body)
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 24
    assert message._request_id is not None and message._request_id.startswith("req_")


async def test_beta_endpoint_and_system_directive(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("Beta hello", system="You are terse. [[sim:tokens=4]]")
    message = await client.beta.messages.create(**body)
    assert message.content[0].type == "text"
    assert message.content[0].text == scripted_reply(body) == "Simulated reply to: Beta"


async def test_max_tokens_truncates(client: anthropic.AsyncAnthropic) -> None:
    body = {**body_for("Long answer please"), "max_tokens": 3}
    message = await client.messages.create(**body)
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert message.content[0].text == scripted_reply(body) == "Simulated reply to: "


async def test_scripted_reply_is_deterministic() -> None:
    body = body_for("same words [[sim:tokens=40]]")
    assert scripted_reply(body) == scripted_reply(json.loads(json.dumps(body)))
    assert len(scripted_reply(body).split()) == 40
    assert scripted_reply(body_for("other words")) != scripted_reply(body_for("same words"))


# --------------------------------------------------------------------------- tools


async def test_tool_use_with_split_input_json(sim: Simulator) -> None:
    body = body_for("What's the weather in Oslo?", tools=[WEATHER_TOOL, CLOCK_TOOL])
    events = await raw_sse(sim, body)
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "get_weather" and starts[1]["input"] == {}
    assert starts[1]["id"].startswith("toolu_")
    pieces = [
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["index"] == 1
    ]
    assert len(pieces) > 5
    joined = "".join(pieces)
    tool_input = json.loads(joined)
    boundaries = {len("".join(pieces[:i])) for i in range(1, len(pieces))}
    in_string = [joined[:b].count('"') % 2 == 1 for b in boundaries]
    assert any(in_string), "expected at least one cut inside a key or string"
    assert set(WEATHER_TOOL["input_schema"]["required"]) <= set(tool_input)
    assert isinstance(tool_input["location"], str)
    assert tool_input["unit"] in ("celsius", "fahrenheit")
    assert isinstance(tool_input["days"], int) and 1 <= tool_input["days"] <= 7
    assert isinstance(tool_input["threshold"], float) and isinstance(tool_input["alerts"], bool)
    assert len(tool_input["tags"]) >= 3 and all(isinstance(t, str) for t in tool_input["tags"])
    assert set(tool_input["where"]) == {"lat", "lon"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    text = "".join(
        data["delta"]["text"]
        for name, data in events
        if name == "content_block_delta" and data["index"] == 0
    )
    assert text == scripted_reply(body)


async def test_tool_use_through_sdk_stream_helper(client: anthropic.AsyncAnthropic) -> None:
    body = body_for(
        "Call a tool",
        tools=[WEATHER_TOOL, CLOCK_TOOL],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    async with client.messages.stream(**body) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["tool_use"]  # forced tool: no preamble
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_time"
    assert block.input == {"tz": "sim tz"}
    assert message.stop_reason == "tool_use"
    plain = await client.messages.create(**body)
    assert plain.content[0].type == "tool_use" and plain.content[0].input == block.input


async def test_tool_result_turn_and_tool_choice_none(client: anthropic.AsyncAnthropic) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"location": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Sunny and 18 degrees"}],
                }
            ],
        },
    ]
    body = {"model": MODEL, "max_tokens": 256, "messages": messages, "tools": [WEATHER_TOOL]}
    message = await client.messages.create(**body)
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("The tool said: Sunny and 18 degrees.")
    assert message.content[0].text == scripted_reply(body)

    none_body = body_for("No tools now", tools=[WEATHER_TOOL], tool_choice={"type": "none"})
    message = await client.messages.create(**none_body)
    assert [b.type for b in message.content] == ["text"] and message.stop_reason == "end_turn"


async def test_badjson(sim: Simulator) -> None:
    events = await raw_sse(
        sim, body_for("Broken tool call [[sim:badjson=1]]", tools=[WEATHER_TOOL])
    )
    joined = "".join(
        data["delta"].get("partial_json", "")
        for name, data in events
        if name == "content_block_delta"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(joined)


async def test_extended_thinking(sim: Simulator, client: anthropic.AsyncAnthropic) -> None:
    body = body_for(
        "Think first", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}
    )
    events = await raw_sse(sim, body)
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    block0 = [
        data["delta"]
        for name, data in events
        if name == "content_block_delta" and data["index"] == 0
    ]
    assert [d["type"] for d in block0[:-1]] == ["thinking_delta"] * (len(block0) - 1)
    assert block0[-1]["type"] == "signature_delta" and block0[-1]["signature"]
    async with client.messages.stream(**body) as stream:
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert message.content[1].type == "text" and message.content[1].text == scripted_reply(body)
    adaptive = await client.messages.create(**{**body, "thinking": {"type": "adaptive"}})
    assert adaptive.content[0].type == "thinking"


# --------------------------------------------------------------------------- usage and caching


async def test_prompt_cache_creation_then_read(client: anthropic.AsyncAnthropic) -> None:
    system = [
        {
            "type": "text",
            "text": "You are a careful assistant. " * 40,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    first = await client.messages.create(**body_for("Cached question one", system=system))
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 0
    assert first.usage.cache_read_input_tokens == 0
    second = await client.messages.create(**body_for("Cached question two", system=system))
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens < first.usage.cache_creation_input_tokens
    plain = await client.messages.create(**body_for("Cached question three"))
    assert plain.usage.cache_read_input_tokens == 0 and plain.usage.cache_creation_input_tokens == 0


# --------------------------------------------------------------------------- auth and validation


async def test_wrong_api_key_is_rejected() -> None:
    async with (
        Simulator(api_key="sk-right") as sim,
        anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-wrong", max_retries=0) as wrong,
        anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-right", max_retries=0) as right,
    ):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await wrong.messages.create(**body_for("hi"))
        assert caught.value.type == "authentication_error"
        assert caught.value.request_id and caught.value.request_id.startswith("req_")
        assert (await right.messages.create(**body_for("hi"))).content
        async with httpx.AsyncClient(base_url=sim.base_url) as http:
            missing = await http.post("/v1/messages", json=body_for("hi"))
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"


async def test_invalid_body_and_unknown_route(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"x-api-key": "k"}) as http:
        response = await http.post("/v1/messages", json={"model": MODEL, "messages": []})
        assert response.status_code == 400
        error = response.json()
        assert error["type"] == "error" and error["request_id"] == response.headers["request-id"]
        assert error["error"] == {
            "type": "invalid_request_error",
            "message": "max_tokens: Field required",
        }
        bad = await http.post("/v1/messages", json=body_for("[[sim:fial=500]]"))
        assert bad.status_code == 400 and "fial" in bad.json()["error"]["message"]
        missing = await http.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        counted = await http.post(
            "/v1/messages/count_tokens",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert counted.json()["input_tokens"] > 0


async def test_the_demo_signup_page_is_served_without_a_key(sim: Simulator) -> None:
    page = (ROOT / "relayq" / "static" / "demo_signup.html").read_bytes()
    async with httpx.AsyncClient(base_url=sim.base_url) as http:
        for path in ("/demo/signup", "/demo_signup.html"):
            response = await http.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            assert response.content == page


# --------------------------------------------------------------------------- scripted faults


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_fail_status_surfaces_as_sdk_error(
    client: anthropic.AsyncAnthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    body = body_for(f"fail me [[sim:fail={status} retry_after=7]]")
    with pytest.raises(error_class) as caught:
        await client.messages.create(**body, stream=True)
    error = caught.value
    assert error.status_code == status and error.type == error_type
    assert error.request_id == error.response.headers["request-id"]
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id
    if status == 429:
        assert error.response.headers["retry-after"] == "7"
    else:
        assert "retry-after" not in error.response.headers


async def test_times_counts_per_fingerprint(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("flaky [[sim:fail=529 times=2]]")
    for _ in range(2):
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(**body)
    other = body_for("flaky [[sim:fail=529 times=2]] but different")
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(**other)
    # stream/metadata are not part of the fingerprint: this is the third attempt.
    retry = {**body, "metadata": {"user_id": "u1"}}
    assert await stream_text(client, retry) == scripted_reply(body)


async def test_directive_groups_form_a_script(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("script [[sim:fail=429 retry_after=0]] [[sim:midstream=api_error after=1]]")
    with pytest.raises(anthropic.RateLimitError) as caught:
        await stream_text(client, body)
    assert caught.value.response.headers["retry-after"] == "0"
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught_mid:
        await stream_text(client, body, seen)
    assert caught_mid.value.type == "api_error" and len(seen) == 1
    assert await stream_text(client, body) == scripted_reply(body)


async def test_midstream_error_after_some_text(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("break the stream [[sim:midstream=overloaded_error]]")
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        await stream_text(client, body, seen)
    assert caught.value.type == "overloaded_error" and caught.value.api_message == "Overloaded"
    assert len(seen) == 3
    assert scripted_reply(body).startswith("".join(seen))
    with pytest.raises(anthropic.OverloadedError):  # non-streaming gets the HTTP status instead
        await client.messages.create(**body_for("break it [[sim:midstream=overloaded_error]]"))


async def test_midstream_raw_error_event(sim: Simulator) -> None:
    events = await raw_sse(sim, body_for("raw break [[sim:midstream=overloaded_error after=0]]"))
    assert [name for name, _ in events] == ["message_start", "error"]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


async def test_stall_before_headers_times_out(
    client: anthropic.AsyncAnthropic, sim: Simulator
) -> None:
    body = body_for("slow start [[sim:stall=5]]")
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await client.with_options(timeout=0.3).messages.create(**body, stream=True)
    assert time.monotonic() - started < 2
    assert await stream_text(client, body) == scripted_reply(body)  # second attempt is clean


async def test_stall_mid_stream(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("slow middle [[sim:stall=5 after=2]]")
    seen: list[str] = []
    with pytest.raises(httpx2.ReadTimeout):  # the SDK does not wrap errors after the headers
        await stream_text(client.with_options(timeout=0.3), body, seen)
    assert len(seen) == 2
    short = body_for("short stall [[sim:stall=0.3 after=1]]")
    started = time.monotonic()
    assert await stream_text(client, short) == scripted_reply(short)
    assert time.monotonic() - started >= 0.3


async def test_drop_connection(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIConnectionError):
        await client.messages.create(**body_for("drop early [[sim:drop=1 after=-1]]"))
    body = body_for("drop late [[sim:drop=1]]")
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        await stream_text(client, body, seen)
    assert len(seen) == 3 and scripted_reply(body).startswith("".join(seen))


# --------------------------------------------------------------------------- chaos and rate


async def chaos_outcomes(seed: int) -> list[str]:
    outcomes: list[str] = []
    async with (
        Simulator(fault_rate=0.5, seed=seed) as sim,
        anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0) as client,
    ):
        for i in range(16):
            body = body_for(f"chaos request {i % 4}")
            try:
                text = await stream_text(client, body)
            except anthropic.APIStatusError as exc:
                outcomes.append(f"{exc.status_code}:{exc.type}")
            else:
                assert text == scripted_reply(body)
                outcomes.append("ok")
        stats = sim.stats
    assert stats["requests_total"] == 16 and stats["faults"].get("chaos", 0) == 16 - outcomes.count(
        "ok"
    )
    return outcomes


async def test_fault_rate_is_deterministic() -> None:
    first = await chaos_outcomes(seed=11)
    assert first == await chaos_outcomes(seed=11)
    assert 0 < first.count("ok") < len(first)
    assert {o for o in first if o != "ok"} <= {
        "529:overloaded_error",
        "500:api_error",
        "429:rate_limit_error",
        "200:overloaded_error",
    }


async def test_token_rate_is_honoured(client: anthropic.AsyncAnthropic) -> None:
    body = body_for("pace yourself [[sim:tokens=11 rate=50]]")
    started = time.monotonic()
    assert await stream_text(client, body) == scripted_reply(body)
    assert time.monotonic() - started >= 10 / 50
    async with (
        Simulator(tokens_per_second=100) as slow,
        anthropic.AsyncAnthropic(base_url=slow.base_url, api_key="k", max_retries=0) as paced,
    ):
        body = body_for("default pace [[sim:tokens=21]]")
        started = time.monotonic()
        assert await stream_text(paced, body) == scripted_reply(body)
        assert time.monotonic() - started >= 20 / 100


# --------------------------------------------------------------------------- stats, threads, CLI


async def test_stats_and_reset() -> None:
    async with (
        Simulator() as sim,
        httpx.AsyncClient(base_url=sim.base_url) as http,
        anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0) as client,
    ):
        await client.messages.create(**body_for("count me"))
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(**body_for("count me [[sim:fail=529]]"))
        stats = (await http.get("/_sim/stats")).json()
        assert stats == sim.stats
        assert stats["requests_total"] == 2 and stats["in_flight"] == 0
        assert stats["outcomes"] == {"ok": 1, "http_529": 1}
        assert stats["faults"] == {"fail": 1}
        assert (await http.post("/_sim/reset")).json() == {"ok": True}
        assert sim.stats["requests_total"] == 0
        with pytest.raises(anthropic.OverloadedError):  # fault state was reset too
            await client.messages.create(**body_for("count me [[sim:fail=529]]"))


def test_run_in_thread_with_sync_client() -> None:
    def simulator_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "relayq-simulator"}

    others = simulator_threads()  # the test session's own simulator may be running
    with (
        run_in_thread(api_key="sk-thread") as sim,
        anthropic.Anthropic(base_url=sim.base_url, api_key="sk-thread", max_retries=0) as client,
    ):
        body = body_for("from a thread")
        with client.messages.stream(**body) as stream:
            assert stream.get_final_text() == scripted_reply(body)
        assert sim.stats["outcomes"] == {"ok": 1}
    assert simulator_threads() == others
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.base_url + "/_sim/stats")


async def test_shutdown_is_prompt_with_a_stalled_stream() -> None:
    sim = Simulator()
    await sim.start()
    async with anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0) as sdk:
        async with sdk.messages.stream(**body_for("hang [[sim:stall=30 after=1]]")) as stream:
            tokens = stream.text_stream.__aiter__()
            assert await anext(tokens) == "Simulated "  # the server now stalls
            started = time.monotonic()
            await sim.aclose()
            assert time.monotonic() - started < 1.0
            with pytest.raises(httpx2.RemoteProtocolError):
                await anext(tokens)


def test_cli_subprocess_serves() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "relayq.simulator", "--port", "0", "--api-key", "sk-cli"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("simulator listening on http://127.0.0.1:"), line
            body = body_for("over the CLI")
            with anthropic.Anthropic(
                base_url=line.split()[-1], api_key="sk-cli", max_retries=0
            ) as client:
                message = client.messages.create(**body)
            assert message.content[0].type == "text"
            assert message.content[0].text == scripted_reply(body)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
