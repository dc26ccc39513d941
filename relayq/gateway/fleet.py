"""`GET /v1/fleet`: the workers and queues that run the tenant's jobs, as far as a tenant may see
them: counts for everyone, job ids only of the tenant's own jobs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from relayq.fleet import queue_depth
from relayq.gateway.auth import Authenticated
from relayq.gateway.state import state_of
from relayq.schemas.constants import QUEUES, WORKERS_PATTERN, job_key

router = APIRouter(prefix="/v1", tags=["fleet"])
_MAX_WORKERS = 1000


class WorkerView(BaseModel):
    id: str
    queues: list[str] = Field(description="Queue names (`chat`, `computer`).")
    running: int = Field(description="Jobs it runs now, of every tenant.")
    yours: list[str] = Field(description="Your jobs among them.")
    seen_s: float = Field(description="Seconds since its last heartbeat.")
    browser_contexts: int | None = Field(description="Live browser contexts (computer workers).")


class QueueView(BaseModel):
    name: str
    waiting: int = Field(description="Jobs queued and not running, of every tenant.")
    running: int
    oldest_wait_s: float = Field(description="How long the oldest waiting job has waited.")
    workers: int = Field(description="Live workers serving the queue.")


class Fleet(BaseModel):
    queues: list[QueueView]
    workers: list[WorkerView]
    warnings: list[str]


async def _descriptions(pool: Any) -> list[dict[str, Any]]:
    keys = []
    async for key in pool.scan_iter(match=WORKERS_PATTERN, count=500):
        keys.append(key)
        if len(keys) >= _MAX_WORKERS:
            break
    # one GET each: on a cluster the workers' keys are in many slots, which MGET cannot span
    raws = await asyncio.gather(*(pool.get(key) for key in keys))
    out = []
    for raw in raws:
        try:
            described = json.loads(raw) if raw else None
        except ValueError:
            continue
        if isinstance(described, dict):
            out.append(described)
    return out


@router.get("/fleet", response_model=Fleet, summary="Workers and queues")
async def fleet(request: Request, caller: Authenticated) -> Fleet:
    pool, _, _ = state_of(request).ready()
    now = time.time()
    described = await _descriptions(pool)
    name_of = {key: name for name, key in QUEUES.items()}
    running_ids = sorted({str(j) for w in described for j in w.get("running", [])})
    pipe = pool.pipeline(transaction=False)
    for job_id in running_ids:
        pipe.hmget(job_key(job_id), ["tenant", "queue"])
    owners: dict[str, tuple[str | None, str | None]] = {}
    for job_id, (tenant, queue) in zip(running_ids, await pipe.execute(), strict=True):
        owners[job_id] = (
            tenant.decode() if tenant is not None else None,
            queue.decode() if queue is not None else None,
        )
    workers = []
    for w in described:
        running = [str(j) for j in w.get("running", [])]
        browser = w.get("browser") if isinstance(w.get("browser"), dict) else None
        workers.append(
            WorkerView(
                id=str(w.get("id", "?")),
                queues=[name_of.get(str(q), str(q)) for q in w.get("queues", [])],
                running=len(running),
                yours=[caller.visible_id(j) for j in running if owners[j][0] == caller.owner],
                seen_s=round(max(now - float(w.get("ts", now)), 0.0), 1),
                browser_contexts=browser.get("contexts_live") if browser else None,
            )
        )
    queues, warnings = [], []
    for name in QUEUES:
        depth = await queue_depth(pool, name)
        serving = sum(1 for w in workers if name in w.queues)
        waiting = depth.waiting + depth.delayed
        queues.append(
            QueueView(
                name=name,
                waiting=waiting,
                running=depth.running,
                oldest_wait_s=round(depth.oldest_wait_s, 1),
                workers=serving,
            )
        )
        if waiting and not serving:
            warnings.append(f"no live worker serves the {name} queue: its {waiting} job(s) wait")
    return Fleet(queues=queues, workers=workers, warnings=warnings)
