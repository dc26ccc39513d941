"""Fixtures for the llm tests: a replay server (see llm_replay) and LLMs pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from llm_replay import ReplayServer

from relayq.llm import LLM


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    async with ReplayServer() as replay:
        yield replay


@pytest.fixture
async def make_llm(server: ReplayServer) -> AsyncIterator[Callable[..., LLM]]:
    made: list[LLM] = []

    def make(**kwargs: Any) -> LLM:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("base_url", server.url)
        instance = LLM(**kwargs)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        await instance.aclose()
