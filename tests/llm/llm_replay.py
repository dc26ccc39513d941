"""A local HTTP server that replays recorded Messages API transcripts to the real SDK.

Each request takes the next scripted `Reply` and is recorded (method, path with query,
headers, JSON body) so tests can assert on what `LLM.chat` sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import llm as lk_llm

FIXTURES = Path(__file__).parent / "fixtures"


def load_sse(name: str) -> list[bytes]:
    """The events of `fixtures/<name>.sse`, each as the bytes of one SSE event."""
    text = (FIXTURES / f"{name}.sse").read_text()
    return [f"{block.strip()}\n\n".encode() for block in text.split("\n\n") if block.strip()]


def sse_event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def error_event(error_type: str, message: str = "boom") -> bytes:
    return sse_event({"type": "error", "error": {"type": error_type, "message": message}})


def error_body(error_type: str, message: str = "boom") -> bytes:
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


@dataclass
class Reply:
    """One scripted HTTP response.

    `events` are streamed as text/event-stream; otherwise `body` is sent as JSON.
    `gap` is the pause before each event, `split` cuts every event into pieces of that
    many bytes, `stall_after` stops sending after that many events (and before the
    headers when 0 with `stall_headers`) until the client hangs up, `drop_after` aborts
    the connection after that many events.
    """

    status: int = 200
    events: list[bytes] = field(default_factory=list)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    gap: float = 0.0
    split: int | None = None
    stall_after: int | None = None
    stall_headers: bool = False
    drop_after: int | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ReplayServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.client_hung_up = asyncio.Event()
        self._replies: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    async def __aenter__(self) -> ReplayServer:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.strip().split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Recorded(method, path, headers, json.loads(raw) if raw else {}))

        reply = (
            self._replies.popleft()
            if self._replies
            else Reply(status=500, body=error_body("api_error", "no reply scripted"))
        )
        if reply.stall_headers:
            await self._wait_for_hang_up(reader)
            return
        if not reply.events:
            await self._send_head(writer, reply, {"content-length": str(len(reply.body))})
            writer.write(reply.body)
            await writer.drain()
            return

        await self._send_head(
            writer, reply, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        )
        for n, event in enumerate(reply.events):
            if n == reply.stall_after:
                await self._wait_for_hang_up(reader)
                return
            if n == reply.drop_after:
                writer.transport.abort()
                return
            if reply.gap:
                await asyncio.sleep(reply.gap)
            step = reply.split or len(event)
            for i in range(0, len(event), step):
                piece = event[i : i + step]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _send_head(
        self, writer: asyncio.StreamWriter, reply: Reply, extra: dict[str, str]
    ) -> None:
        headers = {"connection": "close", "request-id": f"req_{len(self.requests):04d}"}
        headers |= extra | reply.headers
        lines = [f"HTTP/1.1 {reply.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()

    async def _wait_for_hang_up(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        self.client_hung_up.set()


def user_ctx(text: str = "hi", *, system: str | None = None) -> lk_llm.ChatContext:
    ctx = lk_llm.ChatContext.empty()
    if system:
        ctx.add_message(role="system", content=system)
    ctx.add_message(role="user", content=text)
    return ctx


async def collect(stream: lk_llm.LLMStream) -> list[lk_llm.ChatChunk]:
    async with stream:
        return [chunk async for chunk in stream]


def text_of(chunks: list[lk_llm.ChatChunk]) -> str:
    return "".join(c.delta.content for c in chunks if c.delta and c.delta.content)


def tool_calls_of(chunks: list[lk_llm.ChatChunk]) -> list[lk_llm.FunctionToolCall]:
    return [call for c in chunks if c.delta for call in c.delta.tool_calls]
