"""Profiles a relayq worker process under a load with py-spy and prints the hot path.

    python -m bench.profile [--load short|stream50|streammax] [--seconds 15]

Not part of `make bench` (sampling slows the worker down); needs `pip install py-spy`. Loads:
`short` drains short chat jobs (20-token replies) back to back, `stream50` keeps 100 jobs
streaming at 50 tokens/s, `streammax` streams 1000-token replies at full speed. Prints the top
frames by own time and by inclusive time, in percent of the worker's samples.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    Track,
    chat_job,
    processes,
    redis_server,
    start_relayq_worker,
    start_simulator,
    submit_all,
    watch_streams,
)
from relayq.client import Client
from relayq.schemas.settings import Settings

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def summarize(raw: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


async def load(kind: str, redis_url: str, seconds: float) -> None:
    settings = Settings(redis_url=redis_url, stream_ttl_s=600)
    deadline = time.monotonic() + seconds
    async with Client(settings=settings) as client:
        while time.monotonic() < deadline:
            if kind == "short":
                jobs = [chat_job(20, 0) for _ in range(200)]
                rate = 0.0
            elif kind == "stream50":
                jobs = [chat_job(100, 50) for _ in range(100)]
                rate = 50.0
            else:
                jobs = [chat_job(1000, 0) for _ in range(10)]
                rate = 0.0
            tracks = {j.id: Track(1 / rate if rate else 0.0) for j in jobs}
            watcher = asyncio.create_task(watch_streams(redis_url, tracks, limit_s=120))
            await submit_all(client, jobs)
            await watcher


async def main_async(args: argparse.Namespace) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = Path(tempfile.gettempdir()) / f"relayq-profile-{args.load}.txt"
    sim, sim_url = start_simulator()
    try:
        with redis_server() as server, processes() as procs:
            worker = start_relayq_worker(server.url, sim_url, max_jobs=200)
            procs.append(worker)
            await load(args.load, server.url, 1.0)  # warm-up
            spy = subprocess.Popen(  # noqa: ASYNC220 (starting it is instant)
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--duration",
                    str(int(args.seconds)),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                await load(args.load, server.url, args.seconds)
                await asyncio.to_thread(spy.wait, args.seconds + 30)
            finally:
                if spy.poll() is None:
                    spy.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(5)
    finally:
        sim.stop()
    print(f"profile of the worker under load {args.load!r} ({out})")
    print(summarize(out, args.top))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", choices=["short", "stream50", "streammax"], default="short")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=25)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
