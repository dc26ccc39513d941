"""Formerly the arq entry point for browser jobs (`arq ...ComputerWorkerSettings`).

relayq runs its own worker loop now (relayq.workers.worker); start a browser worker with
`relayq worker --queues computer`. Naming the old entry point says so instead of failing with a
bare AttributeError.
"""

from __future__ import annotations


def __getattr__(name: str) -> object:
    if name == "ComputerWorkerSettings":
        raise ImportError(
            "relayq no longer runs under arq's CLI: it runs its own worker loop (Redis Cluster "
            "ready, leased, fenced). Start a browser worker with `relayq worker --queues computer`."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
