"""The Lua scripts that change a job's state atomically, loaded once per Redis client."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

SCRIPT_NAMES = ("enqueue", "start", "publish", "cancel", "blob", "claim")


def script_source(name: str) -> str:
    return files("relayq.workers").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """`await scripts.call("publish", keys, args)`: EVALSHA, falling back to EVAL once."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def call(
        self, name: str, keys: Sequence[str], args: Sequence[str | int | float | bytes]
    ) -> Any:
        return await self._scripts[name](keys=keys, args=args)
