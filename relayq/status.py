"""`relayq status` and `relayq jobs`: what the fleet is doing, read from Redis."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from relayq.client import Client, JobStatus
from relayq.schemas.constants import QUEUES, WORKERS_PATTERN

RECENT_FOR_FAILURES = 200


async def fleet_status(client: Client) -> dict[str, Any]:
    redis = client.redis
    now_ms = time.time() * 1000
    queues: dict[str, Any] = {}
    for name, key in QUEUES.items():
        due = await redis.zrangebyscore(key, "-inf", int(now_ms), start=0, num=1, withscores=True)
        queues[name] = {
            "key": key,
            "depth": await redis.zcard(key),
            "oldest_due_age_s": round((now_ms - due[0][1]) / 1000, 3) if due else 0.0,
        }
    workers = []
    async for key in redis.scan_iter(match=WORKERS_PATTERN, count=500):
        raw = await redis.get(key)
        if raw:
            workers.append(json.loads(raw))
    recent = await client.recent(limit=RECENT_FOR_FAILURES)
    failures = [j for j in recent if j.status == "error"][:10]
    return {"queues": queues, "workers": workers, "recent_failures": failures}


def render_status(status: dict[str, Any], console: Console) -> None:
    queues = Table(title="queues")
    for column in ("queue", "key", "depth", "oldest due"):
        queues.add_column(column)
    for name, q in status["queues"].items():
        queues.add_row(name, q["key"], str(q["depth"]), f"{q['oldest_due_age_s']:.1f}s")
    console.print(queues)
    workers = Table(title=f"workers alive: {len(status['workers'])}")
    for column in ("worker", "queues", "running", "browser contexts"):
        workers.add_column(column)
    for w in status["workers"]:
        browser = w.get("browser") or {}
        workers.add_row(
            w["id"],
            ",".join(w["queues"]),
            str(len(w["running"])),
            str(browser.get("contexts_live", "-")),
        )
    console.print(workers)
    if status["recent_failures"]:
        render_jobs(status["recent_failures"], console, title="recent failures")


def render_jobs(jobs: list[JobStatus], console: Console, *, title: str = "recent jobs") -> None:
    table = Table(title=title)
    for column in ("job", "kind", "model", "status", "attempt", "created", "tokens in/out"):
        table.add_column(column)
    for job in jobs:
        usage = job.usage
        table.add_row(
            job.id,
            job.kind,
            job.model,
            job.status,
            str(job.attempt),
            datetime.fromtimestamp(job.created_ms / 1000, UTC).strftime("%H:%M:%S"),
            f"{usage.prompt_tokens}/{usage.completion_tokens}" if usage else "-",
        )
    console.print(table)
