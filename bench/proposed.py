"""A relayq worker with the publisher changes BENCHMARKS.md proposes, patched in at start-up, so
the proposal is measured rather than argued (bench/ only; workers/ is untouched):

1. Linger: after a write, the next write of text deltas waits until LINGER_S has passed since
   the previous write began, so deltas arriving in that window share one entry. The first delta
   of a turn (nothing written for LINGER_S) and any non-text event still go out at once.
2. publish.lua reads the fence with one HMGET instead of two HGETs.

    python -m bench.proposed worker --queues chat      (same arguments as `relayq`)
"""

from __future__ import annotations

import asyncio
import os

import workers.publisher as publisher_module
import workers.scripts as scripts_module
from schemas.events import Text

LINGER_S = float(os.environ.get("RELAYQ_BENCH_LINGER_S", "0.010"))

_original_source = scripts_module.script_source


def _script_source(name: str) -> str:
    source = _original_source(name)
    if name != "publish":
        return source
    old = (
        "local status = redis.call('HGET', KEYS[1], 'status')\n"
        "if status == 'done' or status == 'error' or status == 'cancelled' then return -1 end\n"
        "if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return -1 end\n"
    )
    new = (
        "local fence = redis.call('HMGET', KEYS[1], 'status', 'attempt')\n"
        "local status = fence[1]\n"
        "if status == 'done' or status == 'error' or status == 'cancelled' then return -1 end\n"
        "if fence[2] ~= ARGV[1] then return -1 end\n"
    )
    assert old in source, "publish.lua changed: update bench/proposed.py"
    return source.replace(old, new)


async def _flush_loop(self: publisher_module.Publisher) -> None:
    loop = asyncio.get_running_loop()
    last_write = float("-inf")
    while True:
        await self._wakeup.wait()
        wait = last_write + LINGER_S - loop.time()
        if wait > 0 and all(isinstance(e, Text) for e in self._pending):
            await asyncio.sleep(wait)
        self._wakeup.clear()
        batch, self._pending = publisher_module._coalesce(self._pending), []
        usage, self._pending_usage = self._pending_usage, None
        if batch and not self._fenced:
            last_write = loop.time()
            try:
                written = await self._write(batch, usage)
            except Exception as e:
                self._failure = e
                self._idle.set()
                return
            if written < 0:
                self._fenced = True
        if not self._pending:
            self._idle.set()


def install() -> None:
    scripts_module.script_source = _script_source
    publisher_module.Publisher._flush_loop = _flush_loop  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    from relayq.cli import main

    main()
