"""Load test of the HTTP/SSE gateway, loopback only and bounded in time:

    python -m bench.gateway_load --subscribers 2000 --jobs 200

One gateway process (`python -m relayq.gateway`), one relayq worker, the simulator and an
embedded redis-server. The jobs are submitted over HTTP first and stay queued; the subscribers
(spread over a few client processes, so that parsing on the client side does not become the
bottleneck being measured) open their SSE streams and wait for the `queued` event; then the
worker starts and every job streams its reply to its subscribers live.

Reported: how long it took to open every stream, the delivery lag of every event to every
subscriber (from the Redis stream id's time, i.e. the XADD, to the client reading the SSE
message; and from the event's own `ts`, which adds the worker's coalescing), the gateway's RSS
and CPU time, and its Redis connections. Everything started is stopped on the way out.

`python -m bench` runs it as section 8 at 500 subscribers on 50 jobs (full runs only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    BenchContext,
    Dist,
    Proc,
    Section,
    base_env,
    fmt,
    load_average,
    machine_info,
    processes,
    redis_server,
    sim_prompt,
    spawn,
    start_relayq_worker,
    start_simulator,
)
from relayq.embedded_redis import free_port

API_KEY = "bench-key-0123456789"
TERMINAL = (b"event: done", b"event: error", b"event: cancelled")


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------- client process


async def _subscriber(
    session: Any, url: str, lags_xadd: list[float], lags_ts: list[float], connected: asyncio.Event
) -> str:
    """Reads one SSE response to its end; records the lag of every event."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "text/event-stream"}
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            return f"http {response.status}"
        stream_ms = 0
        terminal = replayed = False
        async for raw in response.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"id: "):
                stream_ms = int(line[4:].split(b"-")[0])
            elif line.startswith(b"event: "):
                terminal = line in TERMINAL
                # written at submit time, before anyone listened: replayed, not delivered live
                replayed = line == b"event: queued"
                if replayed:
                    connected.set()
            elif line.startswith(b"data: ") and not replayed:
                now = time.time()
                lags_xadd.append(now - stream_ms / 1000)
                ts_at = line.find(b'"ts":')
                if ts_at >= 0:
                    end = line.find(b",", ts_at)
                    with contextlib.suppress(ValueError):
                        lags_ts.append(now - float(line[ts_at + 5 : end if end > 0 else None]))
            elif not line and terminal:
                return "ok"
    return "ended early"


async def _client_main(base_url: str, job_ids: list[str], per_job: int) -> dict[str, Any]:
    import aiohttp

    lags_xadd: list[float] = []
    lags_ts: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        events = [asyncio.Event() for _ in range(len(job_ids) * per_job)]
        tasks = [
            asyncio.create_task(
                _subscriber(
                    session,
                    f"{base_url}/v1/jobs/{job_id}/events",
                    lags_xadd,
                    lags_ts,
                    events[n * per_job + k],
                )
            )
            for n, job_id in enumerate(job_ids)
            for k in range(per_job)
        ]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 300)
        connect_s = time.monotonic() - started
        print("connected", flush=True)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    errors: dict[str, int] = {}
    for outcome in outcomes:
        key = outcome if isinstance(outcome, str) else type(outcome).__name__
        errors[key] = errors.get(key, 0) + 1
    return {"connect_s": connect_s, "outcomes": errors, "lags_xadd": lags_xadd, "lags_ts": lags_ts}


# --------------------------------------------------------------------------- orchestration


def _gateway_connections(redis_url: str) -> dict[str, int]:
    """The gateway's Redis connections by client name (readers hold the blocking XREADs)."""
    import redis

    with redis.Redis.from_url(redis_url) as r:
        clients = r.client_list()
    counts: dict[str, int] = {}
    for client in clients:
        name = str(client.get("name", ""))
        if name.startswith("relayq-gateway"):
            counts[name] = counts.get(name, 0) + 1
    return counts


def _wait_ready(proc: Proc, url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"the gateway exited:\n{proc.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the gateway did not become ready:\n{proc.log_tail()}")


def load_test(
    subscribers: int,
    jobs: int,
    tokens: int,
    rate: float,
    client_procs: int,
    simulator_url: str | None = None,
) -> dict[str, Any]:
    """Runs the load test (blocking); starts its own simulator unless given one's URL."""
    import httpx

    _raise_fd_limit()
    per_job = max(subscribers // jobs, 1)
    with processes() as procs, redis_server() as redis, tempfile.TemporaryDirectory() as tmp:
        if simulator_url is None:
            sim, sim_url = start_simulator()
            procs.append(sim)
        else:
            sim_url = simulator_url
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        gateway, _ = spawn(
            "gateway",
            [PYTHON, "-m", "relayq.gateway", "--port", str(port)],
            env=base_env(
                RELAYQ_REDIS_URL=redis.url,
                RELAYQ_API_KEYS=f"bench:{API_KEY}",
                RELAYQ_GATEWAY_SUBMIT_RATE="0",  # the load test submits all its jobs at once
                RELAYQ_LOG_LEVEL="WARNING",
            ),
        )
        procs.append(gateway)
        _wait_ready(gateway, base_url)
        rss_start = gateway.rss()

        headers = {"Authorization": f"Bearer {API_KEY}"}
        job_ids = []
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
            for n in range(jobs):
                body = {"prompt": sim_prompt(tokens, rate, f"load {n}"), "max_tokens": tokens + 64}
                response = http.post("/v1/jobs", json=body)
                response.raise_for_status()
                job_ids.append(response.json()["id"])

        clients: list[tuple[subprocess.Popen[bytes], Path]] = []
        share = -(-jobs // client_procs)
        connect_started = time.monotonic()
        for c in range(client_procs):
            mine = job_ids[c * share : (c + 1) * share]
            if not mine:
                continue
            out = Path(tmp) / f"client-{c}.json"
            popen = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "bench.gateway_load",
                    "--client",
                    base_url,
                    "--out",
                    str(out),
                    "--per-job",
                    str(per_job),
                    *mine,
                ],
                stdout=subprocess.PIPE,
                env=base_env(),
            )
            clients.append((popen, out))
        for popen, _ in clients:
            assert popen.stdout is not None
            line = popen.stdout.readline()
            if b"connected" not in line:
                raise RuntimeError("a client process failed to connect its subscribers")
        connect_s = time.monotonic() - connect_started
        rss_connected = gateway.rss()
        connections = _gateway_connections(redis.url)
        cpu_before = gateway.cpu_seconds()

        worker = start_relayq_worker(redis.url, sim_url, max_jobs=jobs)
        procs.append(worker)
        run_started = time.monotonic()
        rss_peak = rss_connected
        while any(p.poll() is None for p, _ in clients):
            rss_peak = max(rss_peak, gateway.rss())
            for name, n in _gateway_connections(redis.url).items():
                connections[name] = max(connections.get(name, 0), n)
            time.sleep(0.25)
            if time.monotonic() - run_started > 600:
                raise RuntimeError("the load test did not finish within 10 minutes")
        run_s = time.monotonic() - run_started
        cpu_s = gateway.cpu_seconds() - cpu_before

        lags_xadd: list[float] = []
        lags_ts: list[float] = []
        outcomes: dict[str, int] = {}
        for _, out in clients:
            data = json.loads(out.read_text())
            lags_xadd += data["lags_xadd"]
            lags_ts += data["lags_ts"]
            for k, v in data["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v

    xadd, ts = Dist.of(lags_xadd), Dist.of(lags_ts)
    return {
        "subscribers": per_job * jobs,
        "jobs": jobs,
        "tokens_per_job": tokens,
        "token_rate": rate,
        "client_processes": len(clients),
        "outcomes": outcomes,
        "connect_all_s": round(connect_s, 2),
        "stream_s": round(run_s, 2),
        "events_delivered": xadd.n,
        "lag_ms_from_xadd": {
            k: round(getattr(xadd, k) * 1000, 1) for k in ("p50", "p90", "p99", "max")
        },
        "lag_ms_from_event_ts": {
            k: round(getattr(ts, k) * 1000, 1) for k in ("p50", "p90", "p99", "max")
        },
        "gateway_rss_mb": {
            "started": round(rss_start / 2**20, 1),
            "streams_open": round(rss_connected / 2**20, 1),
            "peak": round(rss_peak / 2**20, 1),
        },
        "gateway_cpu_s": round(cpu_s, 1),
        "gateway_redis_connections_max": connections,
        "machine": machine_info(),
        "load_average_after": load_average(),
    }


# --------------------------------------------------------------------------- python -m bench


async def run(ctx: BenchContext) -> Section:
    """The suite's section 8 (full runs only: `python -m bench --quick` leaves it out unless
    named in --only, and then runs a smaller load)."""
    section = Section("gateway_load", "8. Gateway: SSE subscribers on one gateway process")
    subscribers, jobs, tokens, rate = ctx.pick((100, 10, 50, 20.0), (500, 50, 200, 20.0))
    r = await asyncio.to_thread(
        load_test, subscribers, jobs, tokens, rate, 2, simulator_url=ctx.simulator_url
    )
    xadd, ts, rss = r["lag_ms_from_xadd"], r["lag_ms_from_event_ts"], r["gateway_rss_mb"]
    n = r["subscribers"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
    section.add(
        f"open {n} SSE streams ({r['jobs']} jobs, {n // r['jobs']} subscribers each)",
        fmt(r["connect_all_s"], "s"),
        note=f"until every subscriber had its replayed `queued` event; outcomes: {outcomes}",
    )
    section.add(
        "delivery lag, XADD -> subscriber: p50 / p99",
        f"{fmt(xadd['p50'], 'ms')} / {fmt(xadd['p99'], 'ms')}",
        goal="report",
        note=f"p90 {fmt(xadd['p90'], 'ms')}, max {fmt(xadd['max'], 'ms')}; "
        f"{r['events_delivered']:,} events delivered",
    )
    section.add(
        "delivery lag, event ts -> subscriber: p50 / p99",
        f"{fmt(ts['p50'], 'ms')} / {fmt(ts['p99'], 'ms')}",
        goal="report",
        note=f"includes the worker's coalescing; p90 {fmt(ts['p90'], 'ms')}, "
        f"max {fmt(ts['max'], 'ms')}",
    )
    per_sub_kib = (rss["streams_open"] - rss["started"]) * 1024 / n
    section.add(
        "gateway RSS: started / streams open / peak",
        f"{fmt(rss['started'], 'MiB')} / {fmt(rss['streams_open'], 'MiB')} / "
        f"{fmt(rss['peak'], 'MiB')}",
        goal="report",
        note=f"{fmt(per_sub_kib, 'KiB')} per open stream",
    )
    per_1k = r["gateway_cpu_s"] * 1000 / max(r["events_delivered"], 1) * 1000
    section.add(
        "gateway CPU while the replies streamed",
        fmt(r["gateway_cpu_s"], "s"),
        goal="report",
        note=f"{fmt(r['gateway_cpu_s'] / r['stream_s'] * 100, '%')} of a core over "
        f"{fmt(r['stream_s'], 's')}; {fmt(per_1k, 'ms')} per 1,000 events delivered",
    )
    connections = ", ".join(f"{k} {v}" for k, v in r["gateway_redis_connections_max"].items())
    section.add("gateway Redis connections (max seen)", connections or "none", goal="report")
    section.notes.append(
        f"One gateway process (`python -m relayq.gateway`), one worker, the simulator and "
        f"redis-server on loopback; {r['tokens_per_job']} tokens per job at "
        f"{r['token_rate']:g} tok/s, read by {r['client_processes']} client processes "
        "(aiohttp). The jobs are queued first; the worker starts once every stream is open. "
        "Standalone, at other sizes: `python -m bench.gateway_load --subscribers N --jobs M`."
    )
    section.raw = r
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_load", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=200, help="reply tokens per job")
    parser.add_argument("--rate", type=float, default=20.0, help="tokens/s per job")
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--per-job", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("job_ids", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        _raise_fd_limit()
        result = asyncio.run(_client_main(args.client, args.job_ids, args.per_job))
        Path(args.out).write_text(json.dumps(result))
        return
    if not 1 <= args.subscribers <= 20_000 or not 1 <= args.jobs <= 2000:
        parser.error("keep it bounded: 1..20000 subscribers, 1..2000 jobs")
    result = load_test(args.subscribers, args.jobs, args.tokens, args.rate, args.client_procs)
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"machine: {result['machine']}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
