"""The Lua scripts of the wire contract (CONTRACT.md), and the loader every Redis client uses.

`enqueue.lua` (on the job's slot), `admit.lua` (on the queue's slot) and `cancel.lua` here are
what producers in any language run (`SCRIPT LOAD` once, then `EVALSHA`); each touches the keys of
one Redis Cluster slot. The worker's own scripts live in `relayq.workers.lua`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

CONTRACT_SCRIPTS = ("enqueue", "admit", "cancel")


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
        self._redis = redis
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name, folder)) for name in names
        }

    async def call(
        self, name: str, keys: Sequence[str], args: Sequence[str | int | float | bytes]
    ) -> Any:
        script = self._scripts[name]
        try:
            return await script(keys=keys, args=args)
        except NoScriptError:
            # loaded, and still unknown: after a failover the slot's new primary may not have
            # seen the load; the source itself always runs
            source = script.script
            return await self._redis.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", source, len(keys), *keys, *args
            )

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]
