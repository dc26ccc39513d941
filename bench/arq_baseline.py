"""The baseline: a plain arq worker with arq's default settings (pickle, 0.5 s poll, 10 jobs).

    python -m bench.arq_baseline --redis redis://127.0.0.1:6379/0 [--max-jobs N]

Functions: `noop` does nothing; `mark` records when it started (`bench:started` list, entries
"<job id> <unix time>") for the pickup-latency benchmark. Logs at INFO like `arq` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from arq import Worker
from arq.connections import RedisSettings

STARTED_KEY = "bench:started"


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def mark(ctx: dict[str, Any]) -> None:
    started = time.time()
    await ctx["redis"].rpush(STARTED_KEY, f"{ctx['job_id']} {started!r}")


async def _ready(ctx: dict[str, Any]) -> None:
    print("arq worker ready", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--max-jobs", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    kwargs: dict[str, Any] = {}
    if args.max_jobs is not None:
        kwargs["max_jobs"] = args.max_jobs
    worker = Worker(
        functions=[noop, mark],
        redis_settings=RedisSettings.from_dsn(args.redis),
        on_startup=_ready,
        **kwargs,
    )
    worker.run()


if __name__ == "__main__":
    main()
