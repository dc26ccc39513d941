"""The irreducible part: the bare anthropic SDK receiving and parsing the same streams.

    python -m bench.sdk_client --base-url URL --streams C --tokens T --rate R [--relay-redis URL]
                               [--transport httpx|aiohttp]

Runs C concurrent `messages.create(stream=True)` requests (one reused client, as a worker has),
iterates every event, and prints one JSON line: CPU seconds of this process spent while the
streams ran (process_time, so start-up and imports are excluded), tokens received, and the
delivery lag of each token against the simulator's schedule anchored at the stream's first token
(the same measure bench.streaming applies to relayq's subscribers).

`--transport aiohttp` gives the client the SDK's own aiohttp transport
(`anthropic.DefaultAioHttpClient`), the one relayq's worker uses; the default is the SDK's default
(httpx).

With `--relay-redis`, it is also the naive relay that Redis-cost figures compare against: each
text delta is appended to a Redis stream as it arrives (one XADD per token, in relayq's event
format, so relayq's subscribers can read it), and each stream ends with a `done` entry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time

import anthropic
from redis.asyncio import Redis

from bench.common import PYTHON, ROOT, base_env, percentile, schedule_lags, sim_prompt


async def one_stream(
    client: anthropic.AsyncAnthropic,
    tokens: int,
    rate: float,
    lags: list[float],
    relay: tuple[Redis, str] | None = None,
) -> int:
    interval = 1.0 / rate if rate > 0 else 0.0
    stream = await client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=tokens + 64,
        messages=[{"role": "user", "content": sim_prompt(tokens, rate)}],
        stream=True,
    )
    received = 0
    points: list[tuple[float, int]] = []
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            points.append((time.perf_counter(), received))
            received += 1
            if relay is not None:
                await relay_event(relay, {"type": "text", "text": event.delta.text})
    if relay is not None:
        await relay_event(relay, {"type": "done"})
    lags.extend(schedule_lags(points, interval))
    return received


async def relay_event(relay: tuple[Redis, str], event: dict[str, object]) -> None:
    redis, key = relay
    event.update(v=1, job_id="relay", attempt=1, ts=time.time())
    await redis.xadd(key, {"event": json.dumps(event)})


async def main_async(args: argparse.Namespace) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=args.base_url,
        api_key="sk-bench",
        max_retries=0,
        **(
            {"http_client": anthropic.DefaultAioHttpClient()} if args.transport == "aiohttp" else {}
        ),
    )
    redis: Redis | None = Redis.from_url(args.relay_redis) if args.relay_redis else None
    lags: list[float] = []

    def relay(i: int) -> tuple[Redis, str] | None:
        return None if redis is None else (redis, args.relay_key % i)

    try:
        await one_stream(client, 5, 0, [])  # warm-up: connection, imports on first use
        cpu0, wall0 = time.process_time(), time.perf_counter()
        counts: list[int] = []
        for _ in range(args.waves):
            counts += await asyncio.gather(
                *(
                    one_stream(client, args.tokens, args.rate, lags, relay(i))
                    for i in range(args.streams)
                )
            )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await client.close()
        if redis is not None:
            await redis.aclose()
    print(
        json.dumps(
            {
                "cpu_s": cpu,
                "wall_s": wall,
                "tokens": sum(counts),
                "requests": len(counts),
                "lag_p50_ms": percentile(lags, 50),
                "lag_p99_ms": percentile(lags, 99),
            }
        ),
        flush=True,
    )


def run_sdk_client(base_url: str, *args: str) -> dict[str, float]:
    """Runs this module as its own process (its CPU is then the SDK's alone); its summary."""
    out = subprocess.run(
        [PYTHON, "-m", "bench.sdk_client", "--base-url", base_url, *args],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--waves", type=int, default=1, help="run the batch this many times")
    parser.add_argument("--relay-redis", default="", help="append every token to Redis (XADD)")
    parser.add_argument("--relay-key", default="bench:relay:%d", help="stream i's key (%%d: i)")
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
