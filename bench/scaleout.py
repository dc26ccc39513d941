"""6. Scale-out: 1 vs 2 worker processes on the same Redis, and Redis memory per finished job.

The drain of bench.throughput (short chat jobs, RENAMEd onto the queue at once) with one worker
process, with two started separately, and with one `relayq worker --processes 2` (two worker
processes under the supervisor). Memory: used_memory after the jobs finished less before they were
enqueued, per job - what a finished job leaves until its TTL (job hash + event stream; the arq
envelope and in-progress keys are gone). Memory per screenshot is in section 7, which has real
screenshots.
"""

from __future__ import annotations

from bench.common import BenchContext, Repeated, Section, fmt
from bench.throughput import TOKENS, relayq_rate, shares_text


async def run(ctx: BenchContext) -> Section:
    section = Section("scaleout", "6. Scale-out and Redis memory per finished job")
    m = ctx.pick(300, 3000)
    repeats = ctx.pick(1, 3)
    one = [await relayq_rate(ctx, m, 1, memory=True) for _ in range(repeats)]
    two = [await relayq_rate(ctx, m, 2) for _ in range(repeats)]
    supervised = [await relayq_rate(ctx, m, 2, supervised=True) for _ in range(repeats)]
    r1 = Repeated(tuple(r["rate"] for r in one))
    r2 = Repeated(tuple(r["rate"] for r in two))
    rs = Repeated(tuple(r["rate"] for r in supervised))
    section.add(
        "chat jobs/s, 1 worker process",
        fmt(r1.median, "jobs/s"),
        "-",
        "-",
        "-",
        None,
        f"{r1.spread}; CPU {shares_text(one[0])}",
    )
    section.add(
        "chat jobs/s, 2 worker processes",
        fmt(r2.median, "jobs/s"),
        fmt(r1.median, "jobs/s (1 worker)"),
        fmt(r2.median / r1.median, "x"),
        "report",
        None,
        f"{r2.spread}; CPU {shares_text(two[0])}",
    )
    section.add(
        "chat jobs/s, relayq worker --processes 2 (supervised)",
        fmt(rs.median, "jobs/s"),
        fmt(r1.median, "jobs/s (1 worker)"),
        fmt(rs.median / r1.median, "x"),
        "report",
        None,
        f"{rs.spread}; CPU {shares_text(supervised[0])}",
    )
    per_job = Repeated(tuple(r["bytes_per_job"] for r in one))
    section.add(
        f"Redis memory per finished job ({TOKENS}-token reply)",
        fmt(per_job.median / 1024, "KiB"),
        "-",
        "-",
        "report",
        None,
        f"{per_job.spread}; one events stream alone: {fmt(one[0]['stream_bytes'], 'B')} "
        f"for {int(one[0]['stream_entries'])} entries (MEMORY USAGE)",
    )
    section.notes.append(
        "The machine has 2 cores: with two workers, the simulator, redis-server and the "
        "benchmark process share them, so two workers cannot reach twice one worker's rate "
        "here; the CPU shares above (100% = one core) show what was saturated. On a machine "
        "with a core per worker, scale-out is bounded by Redis (one core), which served these "
        "runs at the share shown."
    )
    section.raw = {"one": one, "two": two, "supervised": supervised}
    return section
