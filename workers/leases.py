"""A worker's side of one queue, on the queue's slot: claim due jobs, renew and release leases.

A claimed job moves from the queue's waiting set to its leases, under a claim token that only
this claim knows. The worker's heartbeat renews the leases it holds; a worker that dies stops
renewing, and once a lease has run out the next claim by any worker takes the job over (the
job's own slot then voids the lost attempt, see start.lua). Releasing a lease either ends it
(the job ended) or puts the job back to wait (a retry after a backoff, a shutdown).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from relayq.schemas.constants import QueueKeys
from relayq.workers.scripts import WorkerScripts


@dataclass(frozen=True)
class Claim:
    job_id: str
    token: str
    reclaimed: bool
    """The job's previous lease ran out (its worker is gone) rather than it being due."""


class QueueLeases:
    def __init__(
        self, scripts: WorkerScripts, queue: QueueKeys, *, worker_id: str, lease_s: float
    ) -> None:
        self.queue = queue
        self._scripts = scripts
        self._lease_ms = int(lease_s * 1000)
        self._tokens = (f"{worker_id}:{n}" for n in itertools.count(1))

    async def claim(self, room: int, running: Iterable[str]) -> list[Claim]:
        """Up to `room` jobs: those whose lease ran out first, then due waiting ones, never one
        of `running` (jobs this worker runs already)."""
        reply = await self._scripts.call(
            "claim",
            self.queue.slot_keys,
            [self._lease_ms, room, next(self._tokens), *running],
        )
        return [
            Claim(raw_id.decode(), token.decode(), bool(reclaimed))
            for raw_id, token, reclaimed in zip(reply[::3], reply[1::3], reply[2::3], strict=True)
        ]

    async def renew(self, claims: Iterable[Claim]) -> list[str]:
        """Extends the leases still ours; returns the job ids whose lease another worker took."""
        args: list[str | int] = [self._lease_ms]
        for claim in claims:
            args += [claim.job_id, claim.token]
        if len(args) == 1:
            return []
        lost = await self._scripts.call("renew", [self.queue.leases, self.queue.claims], args)
        return [raw.decode() for raw in lost]

    async def ack(self, claim: Claim) -> bool:
        """The job ended: drop its lease. False when the lease was no longer ours."""
        return await self._release(claim, "ack", 0)

    async def requeue(self, claim: Claim, delay_s: float) -> bool:
        """The job waits again, `delay_s` from now (0: at once, waking an idle worker)."""
        return await self._release(claim, "requeue", max(int(delay_s * 1000), 0))

    async def _release(self, claim: Claim, how: str, delay_ms: int) -> bool:
        released: int = await self._scripts.call(
            "release",
            self.queue.slot_keys,
            [claim.job_id, claim.token, how, delay_ms, self.queue.wake],
        )
        return released == 1
