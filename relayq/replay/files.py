"""A replay on disk: the HTML page (and animation), screenshot files, written atomically."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from relayq.client import Client
from relayq.replay.animation import AnimationFormat, render_animation
from relayq.replay.collect import collect_run
from relayq.replay.model import Shot, Step
from relayq.replay.page import render_html
from relayq.schemas.events import Screenshot


def _screenshot_name(event: Screenshot, ext: str) -> str:
    return f"step-{event.step:03d}.{ext}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def save_screenshot_event(client: Client, event: Screenshot, directory: Path) -> Path:
    """Saves one screenshot as `step-NNN.<ext>` (live use: `relayq watch --save-screenshots`).

    Raises LookupError when the blob has expired.
    """
    shot = Shot(event, await client.screenshot(event.job_id, event.blob))
    path = Path(directory) / _screenshot_name(event, shot.extension)
    await asyncio.to_thread(_write_atomic, path, shot.data or b"")
    return path


async def save_screenshots(client: Client, job_id: str, directory: Path) -> list[Path]:
    """Saves the final attempt's screenshots that still exist; returns the files written."""
    run = await collect_run(client, job_id)
    return await asyncio.to_thread(_save_all, run.shots, Path(directory))


def _save_all(shots: Iterable[tuple[Step | None, Shot]], directory: Path) -> list[Path]:
    written: list[Path] = []
    used: set[str] = set()
    for _step, shot in shots:
        if shot.data is None:
            continue
        name = _screenshot_name(shot.event, shot.extension)
        if name in used:
            name = f"step-{shot.event.step:03d}-b{shot.event.blob}.{shot.extension}"
        used.add(name)
        _write_atomic(directory / name, shot.data)
        written.append(directory / name)
    return written


async def write_replay(
    client: Client, job_id: str, out: Path, *, animation: Path | None = None
) -> Path:
    """`relayq replay JOB_ID -o run.html [--gif run.gif]`: writes the page (and animation)."""
    run = await collect_run(client, job_id)
    page = render_html(run)
    out = Path(out)
    await asyncio.to_thread(_write_atomic, out, page.encode("utf-8"))
    if animation is not None:
        fmt: AnimationFormat = "webp" if Path(animation).suffix.lower() == ".webp" else "gif"
        await asyncio.to_thread(render_animation, run, Path(animation), fmt=fmt)
    return out
