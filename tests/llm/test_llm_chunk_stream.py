"""`LLM.chat_chunks`: one attempt read leanly from the HTTP body, with the chunks and the
LiveKit errors `LLM.chat` gives, and SSE framing the API may use (CRLF, events split across
reads)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError
from livekit.agents.llm import ChatChunk
from llm_replay import ReplayServer, Reply, collect, error_body, load_sse, text_of, user_ctx

from relayq.llm import LLM
from relayq.llm.stream import ChunkStream

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)


async def chunks_of(stream: ChunkStream) -> list[ChatChunk]:
    async with stream:
        return [chunk async for chunk in stream]


@pytest.mark.parametrize("name", ["text", "tool_use_split_json", "thinking_tool_use"])
async def test_chunks_are_the_ones_llm_chat_gives(
    server: ReplayServer, make_llm: Callable[..., LLM], name: str
) -> None:
    server.script(Reply(events=load_sse(name)), Reply(events=load_sse(name)))
    model = make_llm()

    lean = await chunks_of(model.chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY))
    full = await collect(model.chat(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    assert [c.model_dump() for c in lean] == [c.model_dump() for c in full]


async def test_stop_reason_and_request_id_are_known_after_iteration(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text"), headers={"request-id": "req_lean"}))
    stream = make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY)

    await chunks_of(stream)

    assert (stream.stop_reason, stream.request_id) == ("end_turn", "req_lean")
    assert stream.message_id == "msg_01TextHello"


@pytest.mark.parametrize("split", [1, 7])
async def test_crlf_line_ends_and_events_cut_across_reads_parse_the_same(
    server: ReplayServer, make_llm: Callable[..., LLM], split: int
) -> None:
    crlf = [event.replace(b"\n", b"\r\n") for event in load_sse("text")]
    server.script(Reply(events=crlf, split=split))

    chunks = await chunks_of(make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    assert text_of(chunks) == "Hello world!"


async def test_a_midstream_overload_is_a_final_529(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("midstream_overloaded")))
    stream = make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY)

    with pytest.raises(APIStatusError) as caught:
        await chunks_of(stream)

    assert caught.value.status_code == 529 and caught.value.retryable is False


async def test_an_http_overload_before_the_stream_is_a_retryable_529(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(status=529, body=error_body("overloaded_error")))

    with pytest.raises(APIStatusError) as caught:
        await chunks_of(make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    assert caught.value.status_code == 529 and caught.value.retryable is True


async def test_a_body_that_ends_before_message_stop_is_a_connection_error(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text")[:2]))

    with pytest.raises(APIConnectionError, match="before message_stop") as caught:
        await chunks_of(make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY))

    assert caught.value.retryable is True  # nothing was delivered yet


async def test_a_chunk_stream_is_iterated_once(
    server: ReplayServer, make_llm: Callable[..., LLM]
) -> None:
    server.script(Reply(events=load_sse("text")))
    stream = make_llm().chat_chunks(chat_ctx=user_ctx(), conn_options=NO_RETRY)
    await chunks_of(stream)

    with pytest.raises(RuntimeError, match="once"):
        stream.__aiter__()
