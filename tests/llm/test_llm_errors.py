"""Failures through LiveKit's own retry loop: translation, retryable, timeouts, retry-after."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
)
from livekit.agents.llm import ChatChunk, function_tool
from llm_replay import (
    ReplayServer,
    Reply,
    collect,
    error_body,
    error_event,
    load_sse,
    text_of,
    tool_calls_of,
    user_ctx,
)

from relayq.llm import LLM, LLMStream, retry_after

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)
ONE_RETRY = APIConnectOptions(max_retry=1, retry_interval=0.0, timeout=5.0)


@function_tool
async def get_weather(location: str) -> str:
    """Current weather for a location."""
    return "sunny"


async def test_http_529_then_success_with_one_retry_yields_the_text_once_from_a_fresh_request(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(
        Reply(status=529, body=error_body("overloaded_error")),
        Reply(events=load_sse("text")),
    )
    chunks = await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=ONE_RETRY))

    assert text_of(chunks) == "Hello world!"
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body


async def test_the_sdk_does_not_retry_on_its_own(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(status=529, body=error_body("overloaded_error")))
    with pytest.raises(APIStatusError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert (info.value.status_code, info.value.retryable) == (529, True)
    assert len(server.requests) == 1


async def test_midstream_overloaded_after_output_is_one_final_529_and_text_is_not_repeated(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("midstream_overloaded")), Reply(events=load_sse("text")))
    stream = make_llm().chat(chat_ctx=user_ctx(), conn_options=ONE_RETRY)
    seen: list[ChatChunk] = []
    with pytest.raises(APIStatusError) as info:
        async with stream:
            async for chunk in stream:
                seen.append(chunk)

    assert (info.value.status_code, info.value.retryable) == (529, False)
    assert text_of(seen) == "Hello wor"
    assert len(server.requests) == 1


async def test_the_sdk_reports_a_midstream_error_event_as_status_200(server: ReplayServer) -> None:
    server.script(Reply(events=load_sse("midstream_overloaded")))
    client = anthropic.AsyncClient(api_key="k", base_url=server.url, max_retries=0)
    stream = await client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=[], stream=True
    )
    with pytest.raises(anthropic.APIStatusError) as info:
        async for _ in stream:
            pass
    assert (info.value.status_code, info.value.type) == (200, "overloaded_error")
    await client.close()


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [
        ("overloaded_error", 529, True),
        ("api_error", 500, True),
        ("rate_limit_error", 429, True),
        ("request_too_large", 413, False),
        ("invalid_request_error", 400, False),
        ("authentication_error", 401, False),
        ("permission_error", 403, False),
        ("not_found_error", 404, False),
    ],
)
async def test_a_midstream_error_before_output_gets_the_status_of_its_type(
    server: ReplayServer,
    make_llm: Callable[..., LLM],
    error_type: str,
    status: int,
    retryable: bool,
) -> None:
    server.script(Reply(events=[*load_sse("text")[:3], error_event(error_type)]))
    with pytest.raises(APIStatusError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert (info.value.status_code, info.value.retryable) == (status, retryable)
    assert isinstance(info.value.__cause__, anthropic.APIStatusError)


async def test_a_final_4xx_is_not_retried(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(status=400, body=error_body("invalid_request_error", "bad tools")))
    with pytest.raises(APIStatusError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=ONE_RETRY))
    assert (info.value.status_code, info.value.retryable) == (400, False)
    assert info.value.request_id == "req_0001"
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad tools"},
    }
    assert len(server.requests) == 1


async def test_tool_arguments_of_a_failed_attempt_do_not_leak_into_the_retry(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    partial = load_sse("tool_use_invalid_json")[:3]
    server.script(
        Reply(events=[*partial, error_event("overloaded_error")]),
        Reply(events=load_sse("tool_use_split_json")),
    )
    chunks = await collect(
        make_llm().chat(chat_ctx=user_ctx(), tools=[get_weather], conn_options=ONE_RETRY)
    )
    calls = tool_calls_of(chunks)
    assert [c.call_id for c in calls] == ["toolu_01WeatherParis", "toolu_02ClockNoArgs"]
    assert calls[0].arguments == '{"location": "Paris", "unit": "celsius"}'
    assert len(server.requests) == 2


async def test_a_slow_stream_with_short_gaps_outlasts_the_timeout_and_succeeds(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    events = load_sse("text")
    server.script(Reply(events=events, gap=0.1))
    options = APIConnectOptions(max_retry=0, timeout=0.4)
    chunks = await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=options))
    assert 0.1 * len(events) > options.timeout
    assert text_of(chunks) == "Hello world!"
    assert server.requests[0].headers["x-stainless-read-timeout"] == "0.4"


async def test_a_stall_after_output_longer_than_the_timeout_is_a_final_timeout(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text"), stall_after=4))
    options = APIConnectOptions(max_retry=0, timeout=0.3)
    with pytest.raises(APITimeoutError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=options))
    assert info.value.retryable is False
    await server.client_hung_up.wait()


async def test_a_stall_before_output_is_a_retryable_timeout(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text"), stall_after=1))
    options = APIConnectOptions(max_retry=0, timeout=0.3)
    with pytest.raises(APITimeoutError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=options))
    assert info.value.retryable is True


async def test_no_response_headers_within_the_timeout_is_a_retryable_timeout(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(stall_headers=True))
    options = APIConnectOptions(max_retry=0, timeout=0.3)
    with pytest.raises(APITimeoutError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=options))
    assert info.value.retryable is True
    assert isinstance(info.value.__cause__, anthropic.APITimeoutError)


async def test_a_connection_dropped_after_output_is_a_final_connection_error(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text"), drop_after=5))
    with pytest.raises(APIConnectionError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.retryable is False


async def test_a_refused_connection_is_a_retryable_connection_error(
    make_llm: Callable[..., LLM],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    llm = make_llm(base_url=f"http://127.0.0.1:{closed_port}")
    with pytest.raises(APIConnectionError) as info:
        await collect(llm.chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert info.value.retryable is True
    assert isinstance(info.value.__cause__, anthropic.APIConnectionError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "7"}, 1.5),
        ({"retry-after": "3600"}, 3600.0),
        ({}, None),
    ],
)
async def test_retry_after_reads_the_response_headers_without_a_cap(
    server: ReplayServer,
    make_llm: Callable[..., LLM],
    headers: dict[str, str],
    expected: float | None,
) -> None:
    server.script(Reply(status=429, body=error_body("rate_limit_error"), headers=headers))
    with pytest.raises(APIStatusError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert info.value.retryable is True
    assert retry_after(info.value) == expected


async def test_retry_after_understands_an_http_date(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(
        Reply(
            status=503,
            body=error_body("api_error"),
            headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
        )
    )
    with pytest.raises(APIStatusError) as info:
        await collect(make_llm().chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    assert retry_after(info.value) == 0.0


def test_retry_after_is_none_without_an_sdk_status_error_behind() -> None:
    assert retry_after(APIConnectionError()) is None


def _awaitable_stream(server: ReplayServer) -> Any:
    """The request as livekit-plugins-anthropic hands it over: one un-awaited coroutine."""
    client = anthropic.AsyncAnthropic(api_key="test-key", base_url=server.url, max_retries=0)
    return client.messages.create(
        model="claude-sim-1",
        max_tokens=64,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
    )


async def test_an_awaitable_request_as_the_upstream_plugin_passes_it_is_streamed(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text")))
    stream = LLMStream(
        make_llm(),
        anthropic_stream=_awaitable_stream(server),
        chat_ctx=user_ctx(),
        tools=[],
        conn_options=NO_RETRY,
    )
    assert text_of(await collect(stream)) == "Hello world!"


async def test_an_awaitable_request_cannot_be_sent_twice_so_its_failure_is_final(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(status=529, body=error_body("overloaded_error")), Reply(events=[]))
    stream = LLMStream(
        make_llm(),
        anthropic_stream=_awaitable_stream(server),
        chat_ctx=user_ctx(),
        tools=[],
        conn_options=ONE_RETRY,
    )
    with pytest.raises(APIStatusError) as info:
        await collect(stream)
    assert info.value.status_code == 529 and info.value.retryable is False
    assert len(server.requests) == 1


async def test_an_unsent_awaitable_request_is_closed_with_the_stream(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    request = _awaitable_stream(server)
    stream = LLMStream(
        make_llm(), anthropic_stream=request, chat_ctx=user_ctx(), tools=[], conn_options=NO_RETRY
    )
    await stream.aclose()
    assert request.cr_frame is None  # closed: no "coroutine was never awaited" warning
    assert server.requests == []


def test_llmstream_refuses_what_cannot_send_a_request(make_llm: Callable[..., LLM]) -> None:
    with pytest.raises(TypeError, match="callable"):
        LLMStream(
            make_llm(),
            anthropic_stream="not a request",  # type: ignore[arg-type]
            chat_ctx=user_ctx(),
            tools=[],
            conn_options=NO_RETRY,
        )
