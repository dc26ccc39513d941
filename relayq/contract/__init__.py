"""The Lua scripts of the wire contract (CONTRACT.md), and the loader every Redis client uses.

`enqueue.lua` and `cancel.lua` here are what producers in any language run (`SCRIPT LOAD` once,
then `EVALSHA`); the worker's own scripts live in `relayq.workers.lua`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

CONTRACT_SCRIPTS = ("enqueue", "cancel")


def script_source(name: str, folder: Traversable | None = None) -> str:
    return (folder or files(__name__)).joinpath(f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """`await scripts.call("enqueue", keys, args)`: EVALSHA, falling back to EVAL once."""

    def __init__(
        self,
        redis: Redis,
        names: Sequence[str] = CONTRACT_SCRIPTS,
        folder: Traversable | None = None,
    ) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name, folder)) for name in names
        }

    async def call(
        self, name: str, keys: Sequence[str], args: Sequence[str | int | float | bytes]
    ) -> Any:
        return await self._scripts[name](keys=keys, args=args)
