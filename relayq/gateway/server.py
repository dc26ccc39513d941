"""Running the gateway: on uvicorn until interrupted (`relayq gateway`, `python -m
relayq.gateway`), or in a background thread (tests, benchmarks, the demo)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from relayq.gateway.app import create_app
from relayq.schemas.settings import Settings


def _redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ValueError("the gateway needs RELAYQ_REDIS_URL (or a settings.redis_url)")
    return settings.redis_url


def serve(host: str, port: int, settings: Settings) -> None:
    """Runs the gateway on uvicorn until interrupted (what `relayq gateway` runs)."""
    app = create_app(settings, redis_url=_redis_url(settings))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """`with serve_in_thread(app) as base_url:` — uvicorn on its own loop in a thread."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def main(argv: list[str] | None = None) -> None:
    """`python -m relayq.gateway [--host H] [--port P]`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="relayq-gateway", description="The relayq HTTP/SSE gateway and dashboard."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    serve(args.host, args.port, settings)
