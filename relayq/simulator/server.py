"""The simulator's HTTP server, its in-thread runner and its command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .computer import SMALL_TARGET_PAGE
from .directives import DirectiveError, Directives, FaultSpec
from .plan import ReplyPlan, Usage
from .replies import PromptCache, count_input_tokens, reply_plan
from .request import JSON, digest, fingerprint
from .strict import parse_beta_header, strict_problem
from .validation import shape_problem
from .wire import (
    ERROR_MESSAGES,
    ERROR_TYPES,
    STATUS_FOR_ERROR_TYPE,
    error_response,
    final_block,
    message_shell,
    sse,
    stream_events,
)

__all__ = ["DEMO_SIGNUP_PATH", "SMALL_TARGET_PATH", "Simulator", "main", "run_in_thread"]

SMALL_TARGET_PATH = "/demo/small-target"
"""The page of the ``small_target`` plan: a 10x10 px square at 75 %/80 % of the viewport."""
DEMO_SIGNUP_PATH = "/demo/signup"
"""Where the simulator serves the demo signup page (also at ``/demo_signup.html``), so a
computer-use job on the ``signup`` plan can run with nothing else started."""


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
        self.rejected: defaultdict[str, int] = defaultdict(int)

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
                "rejected": dict(self.rejected),
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
    plan: ReplyPlan
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
        strict: bool = True,
    ) -> None:
        """`strict` (the default) answers every request the real API is documented to reject
        with its 400 (see "Strict mode" in the package docs); False accepts any well-formed one."""
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        self.host = host
        self.port = port
        self.api_key = api_key
        self.tokens_per_second = tokens_per_second
        self.fault_rate = fault_rate
        self.seed = seed
        self.strict = strict
        self._stats = _Stats()
        self._attempts: defaultdict[str, int] = defaultdict(int)
        self._cache = PromptCache()
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
                Route(DEMO_SIGNUP_PATH, self._demo_signup, methods=["GET"]),
                Route("/demo_signup.html", self._demo_signup, methods=["GET"]),
                Route(SMALL_TARGET_PATH, self._small_target, methods=["GET"]),
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
        error_type = ERROR_TYPES.get(status, "invalid_request_error")
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal server error"
        return error_response(
            status,
            error_type,
            f"{detail}: {request.method} {request.url.path}",
            self._next_request_id(),
        )

    async def _demo_signup(self, request: Request) -> Response:
        page = resources.files("relayq").joinpath("static", "demo_signup.html").read_bytes()
        return Response(page, media_type="text/html; charset=utf-8")

    async def _small_target(self, request: Request) -> Response:
        return Response(SMALL_TARGET_PAGE, media_type="text/html; charset=utf-8")

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
            return error_response(
                401, "authentication_error", "x-api-key header is required", request_id
            )
        if self.api_key is not None and key != self.api_key:
            return error_response(401, "authentication_error", "invalid x-api-key", request_id)
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
            return {}, error_response(
                400, "invalid_request_error", "The request body is not valid JSON.", request_id
            )
        if not isinstance(body, dict):
            return {}, error_response(
                400, "invalid_request_error", "The request body must be a JSON object.", request_id
            )
        problem = shape_problem(body, need_max_tokens=need_max_tokens)
        if problem is None and self.strict:
            betas = parse_beta_header(request.headers.get("anthropic-beta", ""))
            if (rejection := strict_problem(body, betas)) is not None:
                self._stats.bump("rejected", rejection.rule)
                problem = rejection.message
        if problem is not None:
            return {}, error_response(400, "invalid_request_error", problem, request_id)
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
            plan = reply_plan(body)
        except DirectiveError as exc:
            self._stats.bump("outcomes", "http_400")
            return error_response(400, "invalid_request_error", str(exc), request_id)
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
        rng = random.Random(digest(str(self.seed), fp, str(attempt)))
        if rng.random() >= self.fault_rate:
            return None
        choice = rng.choice(("529", "500", "429", "midstream"))
        if choice == "midstream":
            return FaultSpec(
                "midstream", error_type="overloaded_error", after=rng.randint(0, 3), source="chaos"
            )
        status = int(choice)
        return FaultSpec(
            "fail", status=status, error_type=ERROR_TYPES[status], retry_after=0, source="chaos"
        )

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
            message = ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
            await error_response(fault.status, fault.error_type, message, ex.request_id, headers)(
                scope, receive, send
            )
            return f"http_{fault.status}"
        if fault is not None and fault.kind == "midstream" and not ex.stream:
            status = STATUS_FOR_ERROR_TYPE.get(fault.error_type, 500)
            message = ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
            headers = {"retry-after": "0"} if status == 429 else {}
            await error_response(status, fault.error_type, message, ex.request_id, headers)(
                scope, receive, send
            )
            return f"http_{status}"

        usage = sim._cache.usage(ex.body)
        sim._stats.bump("cache", "read_tokens", usage.cache_read)
        sim._stats.bump("cache", "creation_tokens", usage.cache_creation)
        model = str(ex.body["model"])
        msg_id = "msg_sim" + digest(fingerprint(ex.body), ex.request_id)[:20]
        if not ex.stream:
            message_json = {
                **message_shell(msg_id, model),
                "content": [final_block(b) for b in ex.plan.blocks],
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
        usage: Usage,
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
                message = ERROR_MESSAGES.get(fault.error_type, "Simulated failure")
                await emit(
                    sse(
                        "error",
                        {"type": "error", "error": {"type": fault.error_type, "message": message}},
                    )
                )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return f"midstream_{fault.error_type}"
            return None

        for event in stream_events(ex.plan, usage, msg_id, model):
            if event.name == "message_delta" and (outcome := await checkpoint(final=True)):
                return outcome
            if event.is_delta and interval:
                await sim._pause(started + deltas * interval - loop.time(), disconnected)
            await emit(sse(event.name, event.data))
            deltas += event.is_delta
            if (event.name == "message_start" or event.is_delta) and (
                outcome := await checkpoint(final=False)
            ):
                return outcome
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "ok"


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
        strict=not args.lenient,
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
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept requests the real API rejects (strict mode, the default, answers them "
        "with the API's 400)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_until_signalled(args))
    except OSError as exc:
        print(f"simulator: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
