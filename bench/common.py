"""What every benchmark shares: real processes (redis-server, simulator, workers), Redis command
counters, CPU/RSS probes, percentiles, and the result tables that end up in BENCHMARKS.md.

Everything here starts real programs on loopback ports and kills them in `finally` blocks: a
benchmark that fails leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
from redis.asyncio import Redis

from relayq.embedded_redis import EmbeddedRedis, find_redis_server

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOG_DIR = Path(tempfile.gettempdir()) / "relayq-bench-logs"


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; nan for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True)
class Dist:
    """A sample's summary: n, p50, p90, p99, max, and the spread of per-repeat medians."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Dist:
        if not values:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        return cls(
            len(values),
            percentile(values, 50),
            percentile(values, 90),
            percentile(values, 99),
            max(values),
            statistics.fmean(values),
        )


@dataclass(frozen=True)
class Repeated:
    """A figure measured once per repeat: the median over repeats and its spread (min..max)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return "1 run"
        return f"{min(self.values):.3g}..{max(self.values):.3g} ({len(self.values)} runs)"


def fmt(value: float, unit: str = "", digits: int = 3) -> str:
    if value != value:  # nan
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.{digits}g}"
    return f"{text} {unit}".strip()


def ratio(value: float, baseline: float) -> float:
    if baseline == 0 or baseline != baseline or value != value:
        return float("nan")
    return value / baseline


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    figure: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: bool | None = None
    note: str = ""


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    seconds: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.rows.append(Row(*args, **kwargs))

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.extra_tables.append((title, header, rows))


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    redis_version = subprocess.run(
        [find_redis_server(), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model or platform.processor(),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis": redis_version.split(" sha=")[0],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# --------------------------------------------------------------------------- processes


class Proc:
    """A child process with CPU and memory probes; `stop()` is idempotent."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path | None) -> None:
        self.name = name
        self.popen = popen
        self.log = log
        self.ps = psutil.Process(popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _log_path(name: str) -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"


def spawn(
    name: str,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    ready: str | None = None,
    timeout: float = 30.0,
) -> tuple[Proc, str]:
    """Starts `args`; with `ready`, waits for a stdout line containing it and returns that line."""
    log = _log_path(name)
    with log.open("wb") as log_file:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
            stderr=log_file,
        )
    proc = Proc(name, popen, log)
    if ready is None:
        return proc, ""
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    try:
        os.set_blocking(popen.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = popen.stdout.read()
            if chunk:
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if ready in line:
                        return proc, line
            if popen.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not become ready: {buf!r}\n{proc.log_tail()}")
    except BaseException:
        proc.stop()
        raise


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYQ_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start_simulator(tokens_per_second: float = 0.0) -> tuple[Proc, str]:
    """The Anthropic API simulator in its own process; returns it and its base URL."""
    proc, line = spawn(
        "simulator",
        [
            PYTHON,
            "-m",
            "relayq.simulator",
            "--port",
            "0",
            "--tokens-per-second",
            str(tokens_per_second),
        ],
        env=base_env(),
        ready="simulator listening on",
    )
    return proc, line.rsplit(" ", 1)[-1].strip()


def start_relayq_worker(
    redis_url: str,
    simulator_url: str,
    *,
    max_jobs: int | None = None,
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    name: str = "relayq-worker",
) -> Proc:
    """`python -m relayq worker --queues chat`, as tests/conftest.py starts it."""
    env = base_env(
        RELAYQ_REDIS_URL=redis_url,
        ANTHROPIC_BASE_URL=simulator_url,
        ANTHROPIC_API_KEY="sk-relayq-bench",
        RELAYQ_STREAM_TTL_S="600",
        RELAYQ_WORKER_PROCESSES="1",  # unless `args` say otherwise: one process to measure
    )
    if max_jobs is not None:
        env["RELAYQ_MAX_JOBS"] = str(max_jobs)
    env.update(extra_env or {})
    proc, _ = spawn(
        name,
        [PYTHON, "-m", "relayq", "worker", "--queues", "chat", *args],
        env=env,
        ready="ready",
    )
    return proc


def start_arq_worker(redis_url: str, *, max_jobs: int | None = None) -> Proc:
    """A plain arq worker with default settings (bench.arq_baseline.WorkerSettings)."""
    args = [PYTHON, "-m", "bench.arq_baseline", "--redis", redis_url]
    if max_jobs is not None:
        args += ["--max-jobs", str(max_jobs)]
    proc, _ = spawn("arq-worker", args, env=base_env(), ready="arq worker ready")
    return proc


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """Collects processes started in the block and stops every one of them on the way out."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            with contextlib.suppress(Exception):
                proc.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(appendonly=False) as server:
        yield server


# --------------------------------------------------------------------------- Redis probes


@dataclass(frozen=True)
class CommandCount:
    total: int
    by_command: dict[str, int]

    def __sub__(self, other: CommandCount) -> CommandCount:
        names = set(self.by_command) | set(other.by_command)
        return CommandCount(
            self.total - other.total,
            {
                n: self.by_command.get(n, 0) - other.by_command.get(n, 0)
                for n in names
                if self.by_command.get(n, 0) != other.by_command.get(n, 0)
            },
        )


async def command_count(redis: Redis) -> CommandCount:
    """INFO stats total_commands_processed (commands run inside Lua scripts included) and
    INFO commandstats calls per command. Each probe itself costs two INFO commands."""
    stats = await redis.info("stats")
    cmdstats = await redis.info("commandstats")
    return CommandCount(
        int(stats["total_commands_processed"]),
        {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in cmdstats.items()},
    )


SCRIPT_CALLS = ("evalsha", "eval", "fcall")


def client_commands(delta: CommandCount, script_internal: int) -> int:
    """Commands sent by clients: the total less those run inside scripts and the probes' INFO."""
    return delta.total - script_internal - delta.by_command.get("info", 0)


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def wait_for(predicate: Any, limit_s: float, interval: float = 0.01) -> bool:
    """Polls an async predicate until it is true or `limit_s` seconds pass."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


class CpuSampler:
    """Samples the CPU share of some processes over a window (for 'who is the bottleneck')."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        try:
            t = p.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return float("nan")

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: self._cpu(p) for name, p in self.procs.items()}

    def shares(self) -> dict[str, float]:
        """CPU seconds per wall second of each process since start() (1.0 = one full core)."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        return {name: (self._cpu(p) - self._start[name]) / wall for name, p in self.procs.items()}


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, default=str, sort_keys=True)


@dataclass
class BenchContext:
    """What `python -m bench` hands each benchmark."""

    quick: bool
    simulator_url: str
    simulator: Proc

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


# --------------------------------------------------------------------------- relayq jobs


def sim_prompt(tokens: int, rate: float = 0.0, text: str = "benchmark") -> str:
    """A prompt the simulator answers with `tokens` tokens at `rate` tokens/s (0: at once)."""
    return f"[[sim:tokens={tokens} rate={rate:g}]] {text}"


def chat_job(tokens: int, rate: float = 0.0, *, job_id: str | None = None) -> Any:
    from relayq.schemas.jobs import ChatJob

    fields: dict[str, Any] = {"prompt": sim_prompt(tokens, rate), "max_tokens": tokens + 64}
    if job_id is not None:
        fields["id"] = job_id
    return ChatJob.model_validate(fields)


async def job_events(redis: Redis, job_id: str) -> list[dict[str, Any]]:
    """Every event on a job's stream, decoded (for after-the-fact timing)."""
    from relayq.schemas.constants import events_key

    entries = await redis.xrange(events_key(job_id))
    return [json.loads(fields[b"event"]) for _, fields in entries]


async def wait_all_terminal(redis: Redis, job_ids: Sequence[str], limit_s: float) -> bool:
    """True once every job's hash says done/error/cancelled (polled in pipelines)."""
    from relayq.schemas.constants import job_key

    pending = list(job_ids)

    async def check() -> bool:
        nonlocal pending
        still: list[str] = []
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hget(job_key(job_id), "status")
                statuses = await pipe.execute()
            still += [
                j
                for j, s in zip(chunk, statuses, strict=True)
                if s not in (b"done", b"error", b"cancelled")
            ]
        pending = still
        return not pending

    return await wait_for(check, limit_s, interval=0.05)


# --------------------------------------------------------------------------- subscribers


def schedule_lags(points: Sequence[tuple[float, int]], interval: float) -> list[float]:
    """Delivery lag (ms) of each (arrival time, token index) against the simulator's schedule
    (token k due at start + k * interval), with the start placed where the best-delivered token
    puts it: lags are >= 0, and a late first token shows up as a lag, not as later tokens
    being early."""
    if not points or not interval:
        return []
    anchor = min(seen - index * interval for seen, index in points)
    return [(seen - index * interval - anchor) * 1000 for seen, index in points]


@dataclass
class Track:
    """What one subscriber saw of one job's text entries: arrival time and index of the oldest
    token of each entry (for schedule lags), and worker-publish-to-subscriber delays."""

    interval: float
    first: float = float("nan")
    tokens: int = 0
    entries: int = 0
    first_entry_tokens: int = 0
    points: list[tuple[float, int]] = field(default_factory=list)
    publish_lags: list[float] = field(default_factory=list)
    terminal: str = ""

    @property
    def lags(self) -> list[float]:
        return schedule_lags(self.points, self.interval)

    def feed(self, event: dict[str, Any], seen: float, seen_wall: float) -> None:
        if event.get("type") != "text":
            return
        n = len(event["text"].split())
        if self.entries == 0:
            self.first = seen
            self.first_entry_tokens = n
        self.points.append((seen, self.tokens))
        self.publish_lags.append((seen_wall - event["ts"]) * 1000)
        self.entries += 1
        self.tokens += n


async def watch_streams(
    url: str,
    tracks: dict[str, Track],
    *,
    per_connection: int = 50,
    limit_s: float = 120.0,
) -> None:
    """Follows every job's stream until its terminal event, `per_connection` streams per XREAD
    connection, feeding each text entry to its Track."""
    from relayq.schemas.constants import events_key

    terminal = {"done", "error", "cancelled"}
    ids = list(tracks)

    async def reader(job_ids: list[str]) -> None:
        client: Redis = Redis.from_url(url)
        try:
            last: dict[Any, Any] = {events_key(j): "0" for j in job_ids}
            owner = {events_key(j): j for j in job_ids}
            deadline = time.monotonic() + limit_s
            while last and time.monotonic() < deadline:
                reply = await client.xread(last, count=1000, block=1000)
                seen = time.perf_counter()
                seen_wall = time.time()
                for raw_key, entries in reply or []:
                    key = raw_key.decode()
                    for entry_id, fields in entries:
                        last[key] = entry_id.decode()
                        event = json.loads(fields[b"event"])
                        track = tracks[owner[key]]
                        track.feed(event, seen, seen_wall)
                        if event["type"] in terminal:
                            track.terminal = event["type"]
                            last.pop(key, None)
                            break
        finally:
            await client.aclose()

    await asyncio.gather(
        *(reader(ids[i : i + per_connection]) for i in range(0, len(ids), per_connection))
    )


async def submit_all(client: Any, jobs: Sequence[Any], *, concurrency: int = 64) -> None:
    """Enqueues many jobs quickly (bounded concurrency over one client)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> None:
        async with sem:
            await client.submit(job)

    await asyncio.gather(*(one(j) for j in jobs))
