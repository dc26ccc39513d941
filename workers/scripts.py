"""The worker's Lua scripts (`relayq.workers.lua`). On the queue's slot: claim, renew, release
(leases). On the job's slot: start, publish and blob, fenced by attempt. The producer side's
scripts are the contract's (`relayq.contract`)."""

from __future__ import annotations

from importlib.resources import files

from redis.asyncio import Redis

from relayq.contract import Scripts

WORKER_SCRIPTS = ("claim", "renew", "release", "start", "publish", "blob")
WORKER_SCRIPTS_FOLDER = files("relayq.workers").joinpath("lua")


class WorkerScripts(Scripts):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, WORKER_SCRIPTS, WORKER_SCRIPTS_FOLDER)
