"""Replays: a job's final attempt as steps, rendered as one self-contained HTML page, an
animation and screenshot files. Jobs are written straight into the session's real Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import sys
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from relayq.client import Client, JobNotFound
from relayq.replay import (
    Run,
    Shot,
    Step,
    collect_run,
    describe_action,
    render_animation,
    render_html,
    save_screenshot_event,
    save_screenshots,
    write_replay,
)
from relayq.schemas.constants import blobs_key, events_key, job_key
from relayq.schemas.events import (
    Action,
    Done,
    Event,
    Queued,
    Retry,
    Screenshot,
    Started,
    Text,
    TokenUsage,
    Usage,
)
from relayq.schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
W, H = 1280, 720
Rect = tuple[int, int, int, int, tuple[int, int, int]]


# ---------------------------------------------------------------------------------------------
# Real PNGs without Pillow


def png(
    width: int, height: int, rects: Sequence[Rect] = (), bg: tuple[int, int, int] = (250,) * 3
) -> bytes:
    row = bytes(bg) * width
    pixels = [bytearray(row) for _ in range(height)]
    for x1, y1, x2, y2, color in rects:
        x1, x2 = max(0, x1), min(width, x2)
        for y in range(max(0, y1), min(height, y2)):
            pixels[y][x1 * 3 : x2 * 3] = bytes(color) * (x2 - x1)
    raw = b"".join(b"\x00" + bytes(r) for r in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Decodes enough of a PNG to prove it is one: signature, header and image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    assert len(zlib.decompress(idat)) == height * (1 + width * 3)
    return width, height


# ---------------------------------------------------------------------------------------------
# Writing a computer-use job's stream by hand


@dataclass
class JobWriter:
    """Builds the events of one job in stream order, with blobs for its screenshots."""

    job_id: str = field(default_factory=lambda: f"replay_{uuid.uuid4().hex[:12]}")
    events: list[Event] = field(default_factory=list)
    blobs: dict[int, bytes] = field(default_factory=dict)
    ts: float = 1_790_000_000.0
    next_blob: int = 1

    def add(self, event_type: Callable[..., Event], attempt: int, **fields: Any) -> None:
        self.ts += 1.5
        self.events.append(event_type(job_id=self.job_id, attempt=attempt, ts=self.ts, **fields))

    def shot(self, attempt: int, step: int, image: bytes | None = None, **extra: object) -> int:
        blob = self.next_blob
        self.next_blob += 1
        data = image if image is not None else png(W, H, [(0, 0, W, 60, (20, 30, 50 + step * 40))])
        self.blobs[blob] = data
        self.add(
            Screenshot,
            attempt,
            step=step,
            blob=blob,
            media_type="image/png",
            width=W,
            height=H,
            size=len(data),
            settle_ms=120.0,
            url=extra.get("url", "https://shop.example.test/signup"),
        )
        return blob

    def turn(
        self,
        attempt: int,
        step: int,
        text: str,
        action: str,
        input: dict[str, JsonValue],
        *,
        image: bytes | None = None,
        screenshot: bool = True,
    ) -> None:
        self.add(Text, attempt, text=text)
        self.add(
            Usage,
            attempt,
            prompt_tokens=1000 + step,
            completion_tokens=40,
            cache_creation_tokens=200,
            cache_read_tokens=700,
            total_tokens=1040 + step,
        )
        self.add(
            Action,
            attempt,
            step=step,
            tool_use_id=f"toolu_{step}",
            action=action,
            input={"action": action, **input},
        )
        if screenshot:
            self.shot(attempt, step, image)

    async def write(
        self,
        redis_url: str,
        *,
        job: str | None = None,
        status: str = "done",
        kind: str = "computer_use",
        drop_blobs: Sequence[int] = (),
    ) -> str:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        try:
            doc = job or json.dumps(
                {
                    "v": 1,
                    "kind": "computer_use",
                    "id": self.job_id,
                    "task": "Sign up as Ada Lovelace",
                    "start_url": "https://shop.example.test/signup",
                }
            )
            await redis.hset(
                job_key(self.job_id),
                mapping={
                    "job": doc,
                    "kind": kind,
                    "model": "claude-sonnet-4-6",
                    "status": status,
                    "attempt": str(max((e.attempt for e in self.events), default=0)),
                    "created_ms": str(int(self.events[0].ts * 1000)) if self.events else "0",
                },
            )
            for event in self.events:
                await redis.xadd(events_key(self.job_id), {"event": event.model_dump_json()})
            for n, data in self.blobs.items():
                if n not in drop_blobs:
                    await redis.hset(blobs_key(self.job_id), str(n), data)  # type: ignore[misc]
        finally:
            await redis.aclose()
        return self.job_id


def three_step_job(attempt: int = 1) -> JobWriter:
    job = JobWriter()
    job.add(Queued, 0, kind="computer_use", model="claude-sonnet-4-6")
    job.add(Started, attempt, worker="w1")
    job.shot(attempt, 0)
    job.turn(attempt, 1, "I'll click the name field.", "left_click", {"coordinate": [640, 220]})
    job.turn(attempt, 2, "Now I type the name.", "type", {"text": "Ada Lovelace"})
    job.turn(attempt, 3, "Submitting the form.", "left_click", {"coordinate": [640, 400]})
    return job


def finish(job: JobWriter, attempt: int = 1, text: str = "Signed up as Ada Lovelace.") -> None:
    job.add(Text, attempt, text=text)
    job.add(Usage, attempt, prompt_tokens=1100, completion_tokens=12, total_tokens=1112)
    total = TokenUsage(
        prompt_tokens=5106,
        completion_tokens=132,
        cache_creation_tokens=600,
        cache_read_tokens=2100,
        total_tokens=5238,
    )
    job.add(Done, attempt, stop_reason="end_turn", usage=total)


@pytest.fixture
async def rq(redis_url: str) -> AsyncIterator[Client]:
    async with Client(redis_url, settings=Settings(redis_url=redis_url)) as client:
        yield client


def data_uris(page: str) -> list[str]:
    return re.findall(r'src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', page)


# ---------------------------------------------------------------------------------------------
# Tests


async def test_a_finished_three_step_job_replays_as_three_marked_steps(
    rq: Client, redis_url: str
) -> None:
    job = three_step_job()
    finish(job)
    job_id = await job.write(redis_url)

    run = await collect_run(rq, job_id)

    assert run.status == "done" and run.finished
    assert run.task == "Sign up as Ada Lovelace"
    assert run.start_url == "https://shop.example.test/signup"
    assert [s.number for s in run.steps] == [1, 2, 3]
    assert [s.label for s in run.steps] == [
        "left_click (640, 220)",
        'type "Ada Lovelace"',
        "left_click (640, 400)",
    ]
    assert run.steps[1].text == "Now I type the name."
    assert run.steps[0].usage is not None and run.steps[0].usage.prompt_tokens == 1001
    assert all(s.screenshot is not None and s.screenshot.data for s in run.steps)
    assert run.initial is not None and run.initial.data
    assert run.final_text == "Signed up as Ada Lovelace."
    assert run.usage.cache_read_tokens == 2100 and run.usage.cache_creation_tokens == 600
    assert run.duration_s is not None and run.duration_s > 0

    page = render_html(run)

    assert page.count('<section class="step" id="step-') == 4  # the start screen + 3 steps
    uris = data_uris(page)
    assert len(uris) == 4
    assert base64.b64decode(uris[1].split(",", 1)[1]) == run.steps[0].screenshot.data  # type: ignore[union-attr]
    # markers at the action's coordinate as percentages of the declared 1280x720
    assert 'class="marker hit" style="left:50.000%;top:30.556%"' in page
    assert 'class="marker hit" style="left:50.000%;top:55.556%"' in page
    assert page.count('class="marker ') == 2  # typing has no position
    assert "left_click (640, 220)" in page and "type &#34;Ada Lovelace&#34;" in page
    assert "Signed up as Ada Lovelace." in page
    assert "cache write 600" in page and "read 2,100" in page
    assert re.search(r"<link|https?://[^\"<]*\.(css|js)|src=\"http", page) is None


async def test_steps_of_a_voided_attempt_are_absent(rq: Client, redis_url: str) -> None:
    job = JobWriter()
    job.add(Queued, 0, kind="computer_use", model="claude-sonnet-4-6")
    job.add(Started, 1, worker="w1")
    job.turn(1, 1, "FIRST TRY clicking the corner", "left_click", {"coordinate": [10, 10]})
    job.turn(1, 2, "FIRST TRY typing", "type", {"text": "voided text"})
    job.add(Retry, 1, reason="worker_lost", delay=0.0)
    job.add(Started, 2, worker="w2")
    job.add(Text, 1, text="FIRST TRY late output")  # fenced: a voided attempt's straggler
    job.turn(2, 1, "Second try: the name field.", "left_click", {"coordinate": [640, 220]})
    finish(job, attempt=2)
    job_id = await job.write(redis_url)

    run = await collect_run(rq, job_id)
    page = render_html(run)

    assert [s.label for s in run.steps] == ["left_click (640, 220)"]
    assert run.attempt == 2 and len(run.retries) == 1
    assert run.steps[0].screenshot is not None and run.steps[0].screenshot.event.blob == 3
    assert "FIRST TRY" not in page and "voided text" not in page
    assert "left:0.781%" not in page
    assert len(data_uris(page)) == 1
    assert "worker_lost" in page


async def test_model_text_and_action_input_are_escaped(rq: Client, redis_url: str) -> None:
    job = JobWriter()
    job.add(Started, 1, worker="w1")
    job.turn(1, 1, "<script>alert('text')</script>", "type", {"text": '"><img src=x onerror=1>'})
    job.turn(1, 2, "ok", "key", {"text": "</code><script>alert(2)</script>"})
    job.add(Text, 1, text="<b>final</b> & done")
    job.add(Done, 1, stop_reason="<i>end</i>")
    job_id = await job.write(
        redis_url,
        job='{"kind":"computer_use","task":"<script>alert(0)</script>","start_url":"https://x.test/\\"><b>"}',
    )

    page = render_html(await collect_run(rq, job_id))

    assert page.count("<script") == 1  # only the page's own keyboard navigation
    assert "<img src=x" not in page and "<b>final" not in page and "<i>" not in page
    assert 'x.test/"><b>' not in page and "x.test/&#34;&gt;&lt;b&gt;" in page
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(0)&lt;/script&gt;" in page
    assert "&lt;b&gt;final&lt;/b&gt; &amp; done" in page


async def test_a_running_job_renders_as_a_snapshot_without_blocking(
    rq: Client, redis_url: str
) -> None:
    job = three_step_job()
    job.turn(
        1, 4, "Checking the result.", "left_click", {"coordinate": [100, 100]}, screenshot=False
    )
    job_id = await job.write(redis_url, status="running")

    run = await asyncio.wait_for(collect_run(rq, job_id), timeout=3)
    page = render_html(run)

    assert run.status == "running" and not run.finished
    assert len(run.steps) == 4 and run.steps[3].screenshot is None
    assert 'class="badge running"' in page and "snapshot" in page
    assert "No screenshot (yet)" in page
    assert "Latest output" in page


async def test_an_expired_screenshot_renders_a_placeholder(rq: Client, redis_url: str) -> None:
    job = three_step_job()
    finish(job)
    expired = 3  # blob 3 is step 2's screenshot (blob 1 is the start screen)
    job_id = await job.write(redis_url, drop_blobs=[expired])

    run = await collect_run(rq, job_id)
    page = render_html(run)

    assert run.steps[1].screenshot is not None and run.steps[1].screenshot.expired
    assert "Screenshot expired" in page
    assert len(data_uris(page)) == 3
    assert page.count('class="marker ') == 2


async def test_save_screenshots_writes_decodable_files_named_by_step(
    rq: Client, redis_url: str, tmp_path: Path
) -> None:
    job = three_step_job()
    finish(job)
    job_id = await job.write(redis_url, drop_blobs=[4])  # step 3's screenshot expired

    paths = await save_screenshots(rq, job_id, tmp_path / "shots")

    assert [p.name for p in paths] == ["step-000.png", "step-001.png", "step-002.png"]
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == [p.name for p in paths]
    for p in paths:
        assert png_size(p.read_bytes()) == (W, H)

    event = next(e for e in job.events if isinstance(e, Screenshot) and e.step == 2)
    live = await save_screenshot_event(rq, event, tmp_path / "live")
    assert live.name == "step-002.png" and png_size(live.read_bytes()) == (W, H)

    gone = next(e for e in job.events if isinstance(e, Screenshot) and e.step == 3)
    with pytest.raises(LookupError):
        await save_screenshot_event(rq, gone, tmp_path / "live")


async def test_animation_has_one_marked_frame_per_screenshot(
    rq: Client, redis_url: str, tmp_path: Path
) -> None:
    image = pytest.importorskip("PIL.Image")
    job = three_step_job()
    finish(job)
    run = await collect_run(rq, await job.write(redis_url))

    gif = render_animation(run, tmp_path / "run.gif", frame_ms=500)
    webp = render_animation(run, tmp_path / "run.webp", fmt="webp")

    for path in (gif, webp):
        with image.open(path) as im:
            assert im.n_frames == 4
            assert im.format == path.suffix[1:].upper()
    with image.open(gif) as im:
        im.seek(1)  # step 1: left_click (640, 220), frames 960 wide
        r, g, b = im.convert("RGB").getpixel((480, 165))
        assert r > 180 and g < 80 and 60 < b < 140, (r, g, b)  # the marker's accent colour


async def test_write_replay_writes_the_page_and_animation(
    rq: Client, redis_url: str, tmp_path: Path
) -> None:
    job = three_step_job()
    finish(job)
    job_id = await job.write(redis_url)
    animation = tmp_path / "anim" / "run.gif"

    try:
        import PIL  # noqa: F401
    except ImportError:
        animation_arg = None
    else:
        animation_arg = animation
    out = await write_replay(rq, job_id, tmp_path / "out" / "run.html", animation=animation_arg)

    assert out.read_text().startswith("<!doctype html>")
    assert animation_arg is None or animation.stat().st_size > 0


async def test_a_chat_job_replays_its_prompt_and_reply(rq: Client, redis_url: str) -> None:
    job = JobWriter()
    job.add(Queued, 0, kind="chat", model="claude-sonnet-4-6")
    job.add(Started, 1, worker="w1")
    job.add(Text, 1, text="Hello ")
    job.add(Text, 1, text="there.")
    job.add(Done, 1, stop_reason="end_turn")
    job_id = await job.write(redis_url, job='{"kind":"chat","prompt":"Say hello"}', kind="chat")

    run = await collect_run(rq, job_id)
    page = render_html(run)

    assert run.kind == "chat" and run.task == "Say hello" and run.steps == ()
    assert run.final_text == "Hello there."
    assert "Hello there." in page and 'nav class="strip"' not in page


async def test_an_unknown_job_is_not_found(rq: Client) -> None:
    with pytest.raises(JobNotFound):
        await collect_run(rq, "replay_never_existed")


def test_drag_zoom_and_scroll_are_described_and_marked() -> None:
    def action(name: str, **input: JsonValue) -> Action:
        return Action(job_id="j", attempt=1, step=1, tool_use_id="t", action=name, input=input)

    drag = action("left_click_drag", start_coordinate=[128, 72], coordinate=[640, 360])
    assert describe_action(drag) == "left_click_drag (128, 72) → (640, 360)"
    assert (
        describe_action(
            action("scroll", coordinate=[640, 400], scroll_direction="down", scroll_amount=5)
        )
        == "scroll down by 5 at (640, 400)"
    )
    assert describe_action(action("key", text="ctrl+a")) == 'key "ctrl+a"'
    assert describe_action(action("left_click", coordinate=[1, 2], text="shift")) == (
        "left_click (1, 2) + shift"
    )
    assert (
        describe_action(action("left_click", coordinate="bad"))
        == 'left_click {"coordinate": "bad"}'
    )

    shot = Screenshot(
        job_id="j", attempt=1, step=1, blob=1, media_type="image/png", width=W, height=H, size=1
    )
    zoom = action("zoom", region=[0, 0, 640, 360])
    run = Run(
        job_id="j",
        kind="computer_use",
        model="m",
        status="done",
        steps=(
            Step(1, 1, drag, screenshot=Shot(shot, png(W, H))),
            Step(2, 2, zoom, screenshot=Shot(shot, None)),
        ),
    )
    page = render_html(run)

    assert 'class="marker start" style="left:10.000%;top:10.000%"' in page
    assert 'class="marker hit" style="left:50.000%;top:50.000%"' in page
    assert '<line x1="10.000%" y1="10.000%" x2="50.000%" y2="50.000%"/>' in page
    assert 'class="zoombox" style="left:0.000%;top:0.000%;width:50.000%;height:50.000%"' in page


async def test_render_a_realistic_sample(rq: Client, redis_url: str) -> None:
    """Writes test-output/replay_sample.html for people (and a browser screenshot) to look at."""
    navy, blue, grey, white = (22, 34, 64), (37, 99, 235), (209, 213, 219), (255, 255, 255)
    ink, green = (55, 65, 81), (22, 163, 74)

    def page(name: str = "", email: str = "", focus: str = "", done: bool = False) -> bytes:
        rects: list[Rect] = [
            (0, 0, W, 64, navy),
            (40, 22, 200, 42, white),
            (1040, 22, 1240, 42, grey),
        ]
        if done:
            rects += [
                (340, 150, 940, 330, (220, 252, 231)),
                (370, 200, 910, 230, green),
                (370, 260, 700, 280, ink),
            ]
            return png(W, H, rects, bg=(243, 244, 246))
        rects += [(340, 110, 940, 560, white), (380, 140, 700, 170, ink)]
        for label_y, box_y, value, key in ((185, 200, name, "name"), (265, 280, email, "email")):
            border = blue if focus == key else grey
            rects += [
                (380, label_y, 480, label_y + 10, ink),
                (380, box_y, 900, box_y + 44, border),
                (383, box_y + 3, 897, box_y + 41, white),
            ]
            if value:
                rects.append((396, box_y + 14, 396 + 11 * len(value), box_y + 30, ink))
        rects += [(380, 378, 900, 422, blue), (590, 394, 690, 406, white)]
        return png(W, H, rects, bg=(243, 244, 246))

    job = JobWriter()
    job.add(Queued, 0, kind="computer_use", model="claude-sonnet-4-6")
    job.add(Started, 1, worker="worker-a")
    job.turn(1, 1, "Opening the form.", "left_click", {"coordinate": [20, 20]})
    job.add(Retry, 1, reason="api_error", delay=2.0)
    job.add(Started, 2, worker="worker-b")
    job.shot(2, 0, page())
    job.turn(
        2,
        1,
        "The sign-up form is open. I'll click the Name field first.",
        "left_click",
        {"coordinate": [640, 222]},
        image=page(focus="name"),
    )
    job.turn(
        2,
        2,
        "Typing the name.",
        "type",
        {"text": "Ada Lovelace"},
        image=page("Ada Lovelace", focus="name"),
    )
    job.turn(
        2,
        3,
        "Now the email field.",
        "left_click",
        {"coordinate": [640, 302]},
        image=page("Ada Lovelace", focus="email"),
    )
    job.turn(
        2,
        4,
        "Typing the email <ada@example.test>.",
        "type",
        {"text": "ada@example.test"},
        image=page("Ada Lovelace", "ada@example.test", focus="email"),
    )
    job.turn(
        2,
        5,
        "Both fields are filled in; submitting.",
        "left_click",
        {"coordinate": [640, 400]},
        image=page(done=True),
    )
    finish(
        job,
        2,
        "Done: Ada Lovelace is signed up with ada@example.test.\n"
        "The page confirms the subscription.",
    )
    job_id = await job.write(redis_url)

    run = await collect_run(rq, job_id)
    OUTPUT.mkdir(exist_ok=True)
    out = await write_replay(rq, job_id, OUTPUT / "replay_sample.html")

    assert len(run.steps) == 5 and out.stat().st_size > 10_000


def test_animation_without_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL...` now raises ImportError
    run = Run(job_id="j", kind="computer_use", model="m", status="done")

    with pytest.raises(RuntimeError, match=re.escape("relayq[replay]")):
        render_animation(run, Path("unused.gif"))
