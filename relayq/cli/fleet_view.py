"""`relayq status` (queues, workers alive, warnings, recent failures) and `relayq jobs` (recent
jobs with wait, duration, tokens, cost and error), as tables or as JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from relayq.cli.tables import table
from relayq.cli.terminal import BOLD, RED, YELLOW, is_terminal, size, style, styled, wrap
from relayq.client import Client, JobStatus
from relayq.fleet import (
    QueueDepth,
    WorkerInfo,
    final_errors,
    live_workers,
    queue_depth,
    queue_name_of,
)
from relayq.pricing import Price, estimate_cost
from relayq.schemas.constants import QUEUES
from relayq.schemas.events import ErrorInfo

RECENT_FOR_FAILURES = 200
FAILURES_SHOWN = 10
ERROR_MARK = "  ↳ "
JOB_COLUMNS = (
    "job",
    "kind",
    "model",
    "status",
    "att",
    "created",
    "wait",
    "took",
    "tokens",
    "cost",
    "error",
)


async def status(client: Client, prices: dict[str, Price]) -> dict[str, Any]:
    """Everything `relayq status` shows, as JSON-ready data."""
    depths = [await queue_depth(client.redis, name) for name in QUEUES]
    workers = await live_workers(client.redis)
    recent = await client.recent(limit=RECENT_FOR_FAILURES)
    failed = [j for j in recent if j.status == "error"][:FAILURES_SHOWN]
    errors = await final_errors(client.redis, [j.id for j in failed])
    return {
        "queues": {d.name: asdict(d) for d in depths},
        "workers": [asdict(w) for w in workers],
        "warnings": warnings(depths, workers),
        "recent_failures": [job_json(j, errors.get(j.id), prices) for j in failed],
    }


async def jobs(client: Client, limit: int, prices: dict[str, Price]) -> list[dict[str, Any]]:
    recent = await client.recent(limit=limit)
    errors = await final_errors(client.redis, [j.id for j in recent if j.status == "error"])
    return [job_json(j, errors.get(j.id), prices) for j in recent]


def warnings(depths: list[QueueDepth], workers: list[WorkerInfo]) -> list[str]:
    if not workers:
        return [
            "no worker is alive: jobs wait until one starts "
            f"(relayq worker --queues {','.join(QUEUES)})"
        ]
    found = []
    for d in depths:
        if d.waiting + d.delayed and not any(w.serves(d.name) for w in workers):
            found.append(
                f"{d.waiting + d.delayed} jobs wait in the {d.name} queue and no worker serves "
                f"it (relayq worker --queues {d.name})"
            )
    return found


def job_json(job: JobStatus, error: ErrorInfo | None, prices: dict[str, Price]) -> dict[str, Any]:
    """The job's status (relayq.schemas.status) with what a person asks next: when, how long,
    how much, and why it failed."""
    return {
        **job.model_dump(mode="json"),
        "created": _iso(job.created_ms),
        "queue_wait_s": _seconds(job.queue_wait_ms),
        "duration_s": _seconds(job.run_ms),
        "cost_usd": estimate_cost(job.model, job.usage, prices) if job.usage else None,
        "error": error.model_dump(exclude_none=True) if error else None,
    }


def print_status(data: dict[str, Any], out: TextIO = sys.stdout) -> None:
    width, color = _width(out), styled(out)
    rows = [
        [
            name,
            str(q["waiting"]),
            str(q["running"]),
            str(q["delayed"]),
            f"{q['oldest_wait_s']:.1f} s" if q["waiting"] else "-",
        ]
        for name, q in data["queues"].items()
    ]
    headers = ["queue", "waiting", "running", "delayed", "oldest wait"]
    numeric = ["waiting", "running", "delayed", "oldest wait"]
    lines = ["queues", *table(headers, rows, width=width, numeric=numeric, color=color), ""]
    workers = data["workers"]
    lines.append(f"workers alive: {len(workers)}")
    if workers:
        rows = [
            [
                w["id"],
                ",".join(queue_name_of(q) for q in w["queues"]),
                str(len(w["running"])),
                "-" if w["browser_contexts"] is None else str(w["browser_contexts"]),
                f"{w['seen_s_ago']:.0f} s ago",
            ]
            for w in workers
        ]
        headers = ["worker", "queues", "running", "browsers", "seen"]
        lines += table(headers, rows, width=width, optional=["browsers"], color=color)
    for warning in data["warnings"]:
        lines.append(style(f"warning: {warning}", YELLOW, enabled=color))
    if data["recent_failures"]:
        lines += ["", "recent failures", *job_table(data["recent_failures"], width, color)]
    out.write("\n".join(lines) + "\n")


def print_jobs(listed: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    if not listed:
        out.write("no jobs in the last 7 days\n")
        return
    out.write("\n".join(job_table(listed, _width(out), styled(out))) + "\n")


def job_table(listed: list[dict[str, Any]], width: int | None, color: bool) -> list[str]:
    """One row per job; in a terminal too narrow for the error column, a failed job's error
    goes on the lines below its row instead, in full."""
    rows = []
    for j in listed:
        usage = j["usage"]
        rows.append(
            [
                j["id"],
                j["kind"],
                j["model"],
                j["status"],
                str(j["attempt"]),
                datetime.fromtimestamp(j["created_ms"] / 1000, UTC).strftime("%m-%d %H:%M:%S"),
                _span(j["queue_wait_s"]),
                _span(j["duration_s"]),
                f"{usage['prompt_tokens']:,}/{usage['completion_tokens']:,}" if usage else "-",
                f"${j['cost_usd']:.4f}" if j["cost_usd"] is not None else "-",
                j["error"]["message"] if j["error"] else "",
            ]
        )
    numeric = ["att", "wait", "took", "tokens", "cost"]
    whole = table(JOB_COLUMNS, rows, numeric=numeric, color=color)
    if width is None or all(len(line) <= width for line in whole[1:]):
        return whole
    optional = ["created", "model", "kind", "att", "wait"]
    narrow = table(
        JOB_COLUMNS[:-1], [r[:-1] for r in rows], width=width, optional=optional, numeric=numeric
    )
    lines = [style(narrow[0], BOLD, enabled=color)]
    for line, job in zip(narrow[1:], listed, strict=True):
        lines.append(line)
        if job["error"]:
            said = wrap(job["error"]["message"], width - len(ERROR_MARK))
            lines += [style(ERROR_MARK + x, RED, enabled=color) for x in said]
    return lines


def print_json(data: object, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _width(out: TextIO) -> int | None:
    return size()[0] if is_terminal(out) else None


def _iso(ms: int) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms else None


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return (
        f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
    )
