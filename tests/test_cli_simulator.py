"""`relayq simulator` is strict like the real API unless told `--lenient`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import anthropic
import pytest

from relayq.embedded_redis import free_port
from tests.conftest import ROOT

EMPTY_TEXT = [{"role": "user", "content": [{"type": "text", "text": ""}]}]


def _serve(*flags: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "relayq", "simulator", "--port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # uvicorn says when it listens
            if "running on" in line.lower() or str(port) in line:
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=[(), ("--lenient",)], ids=["strict", "lenient"])
def simulator_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _serve(*request.param)


async def test_the_cli_simulator_rejects_an_empty_text_block_unless_lenient(
    simulator_url: str, request: pytest.FixtureRequest
) -> None:
    lenient = request.node.callspec.id == "lenient"
    sdk = anthropic.AsyncAnthropic(base_url=simulator_url, api_key="sk-sim", max_retries=0)
    async with sdk:
        call = sdk.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=EMPTY_TEXT)
        if lenient:
            assert (await call).content
        else:
            with pytest.raises(anthropic.BadRequestError, match="non-empty"):
                await call
