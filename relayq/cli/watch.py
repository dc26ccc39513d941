"""`relayq watch JOB`: follow a job's events until it ends, as JSON lines, as plain lines (output
that is not a terminal) or as a live view. While the job waits, its place in the queue is shown,
with a warning when no live worker serves that queue. Exit code 0 when the job is done, 1
otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

from redis.exceptions import RedisError

from relayq.cli.terminal import Frame, is_terminal, size, styled
from relayq.cli.watch_state import JobFacts, QueuePlace, WatchState
from relayq.cli.watch_view import (
    event_line,
    live_frame,
    no_worker_line,
    queue_line,
    summary_line,
)
from relayq.client import Client
from relayq.errors import ScreenshotGone
from relayq.fleet import live_workers, queue_name_of, queue_position
from relayq.pricing import price_table
from relayq.schemas.constants import job_key
from relayq.schemas.events import Event, Screenshot
from relayq.schemas.settings import Settings

QUEUE_CHECK_S = 1.0
FRAME_S = 0.05
CLOCK_S = 0.5


async def watch(
    client: Client,
    job_id: str,
    *,
    after: str = "0",
    json_lines: bool = False,
    save_dir: Path | None = None,
    settings: Settings | None = None,
    out: TextIO = sys.stdout,
) -> int:
    settings = settings or Settings()
    state = WatchState(job_id, await job_facts(client, job_id), price_table(settings.prices))
    if json_lines:
        follow = _json_lines(client, state, after, out, save_dir)
    elif is_terminal(out):
        follow = _live(client, state, after, out, save_dir)
    else:
        follow = _plain(client, state, after, out, save_dir)
    await follow
    return 0 if state.phase == "done" else 1


async def job_facts(client: Client, job_id: str) -> JobFacts:
    fields = ["kind", "model", "queue", "created_ms", "job"]
    values = await client.redis.hmget(job_key(job_id), fields)  # type: ignore[misc]
    found = dict(zip(fields, (v.decode() if v else "" for v in values), strict=True))
    max_steps = None
    with contextlib.suppress(ValueError, AttributeError):
        steps = json.loads(found["job"]).get("max_steps")
        max_steps = steps if isinstance(steps, int) else None
    created = found["created_ms"]
    return JobFacts(
        kind=found["kind"],
        model=found["model"],
        queue=queue_name_of(found["queue"]) if found["queue"] else "",
        created_ts=int(created) / 1000 if created.isdigit() else None,
        max_steps=max_steps,
    )


async def queue_place(client: Client, queue: str, job_id: str) -> QueuePlace:
    position = await queue_position(client.redis, queue, job_id)
    serving = [w for w in await live_workers(client.redis) if w.serves(queue)]
    return QueuePlace(queue=queue, position=position, workers_serving=len(serving))


async def _json_lines(
    client: Client, state: WatchState, after: str, out: TextIO, save_dir: Path | None
) -> None:
    def warn(place: QueuePlace) -> None:
        if place.workers_serving == 0:
            print(f"relayq: {no_worker_line(place)}", file=sys.stderr, flush=True)

    async with _following_the_queue(client, state, warn):
        async for entry in client.events(state.job_id, after=after):
            state.feed(entry.event)
            await _maybe_save(client, entry.event, save_dir)
            line = {"id": entry.id, **json.loads(entry.event.model_dump_json())}
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
            out.flush()


async def _plain(
    client: Client, state: WatchState, after: str, out: TextIO, save_dir: Path | None
) -> None:
    warned = False

    def tell(place: QueuePlace) -> None:
        nonlocal warned
        out.write(f"[{queue_line(place)}]\n")
        if place.workers_serving == 0 and not warned:
            out.write(f"[{no_worker_line(place)}]\n")
            warned = True
        out.flush()

    async with _following_the_queue(client, state, tell):
        async for entry in client.events(state.job_id, after=after):
            state.feed(entry.event)
            await _maybe_save(client, entry.event, save_dir)
            out.write(event_line(entry.event))
            out.flush()
    out.write(summary_line(state, time.time()) + "\n")


async def _live(
    client: Client, state: WatchState, after: str, out: TextIO, save_dir: Path | None
) -> None:
    color = styled(out)
    dirty = True

    def mark(_: object = None) -> None:
        nonlocal dirty
        dirty = True

    with Frame(out) as frame:

        def draw(*, final: bool = False) -> None:
            nonlocal dirty
            columns, lines = size()
            now = time.time()
            frame.draw(
                live_frame(state, columns=columns, lines=lines, now=now, color=color, final=final)
            )
            dirty = False

        async def refresh() -> None:
            last = 0.0
            while True:
                if dirty or time.monotonic() - last >= CLOCK_S:
                    draw()
                    last = time.monotonic()
                await asyncio.sleep(FRAME_S)

        async with _following_the_queue(client, state, mark):
            painter = asyncio.create_task(refresh())
            try:
                async for entry in client.events(state.job_id, after=after):
                    state.feed(entry.event)
                    await _maybe_save(client, entry.event, save_dir)
                    mark()
            finally:
                painter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await painter
        draw(final=True)


@contextlib.asynccontextmanager
async def _following_the_queue(
    client: Client, state: WatchState, on_change: Callable[[QueuePlace], None]
) -> AsyncIterator[None]:
    """While the body runs: as long as the job waits, check its place in the queue every
    QUEUE_CHECK_S and call `on_change` when it changes. A Redis error ends only the checks
    (the event stream reports its own)."""

    async def follow() -> None:
        while state.phase == "queued" and state.facts.queue:
            try:
                place = await queue_place(client, state.facts.queue, state.job_id)
            except RedisError:
                return
            if state.phase != "queued":
                return
            if place != state.place:
                state.place = place
                on_change(place)
            await asyncio.sleep(QUEUE_CHECK_S)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _maybe_save(client: Client, event: Event, save_dir: Path | None) -> None:
    if save_dir is not None and isinstance(event, Screenshot):
        from relayq.replay.files import save_screenshot_event

        with contextlib.suppress(ScreenshotGone, LookupError):
            await save_screenshot_event(client, event, save_dir)
