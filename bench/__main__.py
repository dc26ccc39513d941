"""`python -m bench [--quick] [--only pickup,ttft] [--output FILE]`: runs the benchmark suite and
writes BENCHMARKS.md and bench/results.json. Only a full run writes those two tracked files: a
quick run writes test-output/BENCHMARKS.quick.md, a partial one (--only)
test-output/BENCHMARKS.<names>.md, each with its raw samples beside it as .json.
`--analysis` runs nothing: it replaces the analysis at the end of BENCHMARKS.md with
bench/ANALYSIS.md as it is now (written after reading the tables it explains).

Every benchmark starts its own redis-server and worker processes; one simulator process serves
them all. Everything started is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import ROOT, BenchContext, Section, load_average, machine_info, start_simulator
from bench.report import reappend_analysis, write_report

BENCHMARKS = (
    "pickup",
    "ttft",
    "streaming",
    "concurrency",
    "throughput",
    "scaleout",
    "computer",
    "gateway_load",
    "recovery",
    "cluster",
)
FULL_ONLY = ("gateway_load", "recovery")  # --quick leaves these out unless --only names them


def default_output(*, quick: bool, only: str) -> Path:
    if only:
        label = only.replace(",", "+") + (".quick" if quick else "")
        return ROOT / "test-output" / f"BENCHMARKS.{label}.md"
    return ROOT / "test-output" / "BENCHMARKS.quick.md" if quick else ROOT / "BENCHMARKS.md"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples, < 2 minutes")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--analysis",
        action="store_true",
        help="run nothing: replace the analysis at the end of BENCHMARKS.md (or --output) with "
        "bench/ANALYSIS.md as it is now",
    )
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    if args.analysis:
        target = args.output or ROOT / "BENCHMARKS.md"
        reappend_analysis(target)
        print(f"[bench] {target}: analysis replaced by bench/ANALYSIS.md", flush=True)
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or [
        n for n in BENCHMARKS if not (args.quick and n in FULL_ONLY)
    ]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmarks: {unknown}; choose from {BENCHMARKS}", file=sys.stderr)
        return 2
    partial = args.quick or bool(args.only)
    if partial and args.output and args.output.resolve() == (ROOT / "BENCHMARKS.md").resolve():
        print("BENCHMARKS.md holds full runs only; drop --output or --only", file=sys.stderr)
        return 2
    started = time.monotonic()
    load_before = load_average()
    sim, sim_url = start_simulator()
    sections: list[Section] = []
    failures: list[str] = []
    try:
        ctx = BenchContext(quick=args.quick, simulator_url=sim_url, simulator=sim)
        for name in names:
            module = importlib.import_module(f"bench.{name}")
            runner: Callable[[BenchContext], Awaitable[Section]] = module.run
            t0 = time.monotonic()
            print(f"[bench] {name} ...", flush=True)
            try:
                section = await runner(ctx)
            except Exception:
                failures.append(name)
                trace = traceback.format_exc()
                print(trace, file=sys.stderr, flush=True)
                section = Section(name, f"{name} (FAILED)")
                section.notes.append("The benchmark failed:\n\n```\n" + trace[-3000:] + "```")
            section.seconds = time.monotonic() - t0
            section.notes.append(f"Load average at the end of this benchmark: {load_average()}.")
            print(f"[bench] {name} done in {section.seconds:.1f} s", flush=True)
            for row in section.rows:
                met = {True: "met", False: "MISSED", None: ""}[row.met]
                print(f"    {row.figure}: {row.value} (baseline {row.baseline}) {met}", flush=True)
            sections.append(section)
    finally:
        sim.stop()
    total = time.monotonic() - started
    output = args.output or default_output(quick=args.quick, only=args.only)
    command = "make bench" + (" QUICK=1" if args.quick else "")
    if args.only:
        command += f"  (python -m bench{' --quick' if args.quick else ''} --only {args.only})"
    write_report(
        output,
        sections,
        machine=machine_info(),
        command=command,
        load=(load_before, load_average()),
        total_seconds=total,
        quick=args.quick,
        partial=partial,
    )
    print(f"[bench] wrote {output} in {total:.0f} s total", flush=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(asyncio.run(_run(_parse(argv))))


if __name__ == "__main__":
    main()
