"""A replay as an animated GIF or WebP: one frame per screenshot, the action marked (Pillow: the
optional extra `replay`)."""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from relayq.replay.actions import ACCENT, Marks, marks_of
from relayq.replay.model import Run, Shot

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage
    from PIL.ImageDraw import ImageDraw as PILDraw
    from PIL.ImageFont import FreeTypeFont, ImageFont

    PILFont = ImageFont | FreeTypeFont

AnimationFormat = Literal["gif", "webp"]
REPLAY_EXTRA = "relayq[replay]"


def render_animation(
    run: Run,
    path: Path,
    *,
    fmt: AnimationFormat = "gif",
    frame_ms: int = 800,
    max_width: int = 960,
) -> Path:
    """Writes one frame per screenshot, the action's position marked and a caption below."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as e:
        raise RuntimeError(
            f"render_animation needs Pillow: pip install '{REPLAY_EXTRA}' (or pillow)"
        ) from e
    shots = run.shots
    if not shots:
        raise ValueError(f"job {run.job_id} has no screenshots to animate")
    first = shots[0][1]
    width = min(max_width, max(first.width, 1))
    height = max(1, round(first.height * width / max(first.width, 1)))
    bar = max(28, height // 18)
    font = _font(ImageFont, bar * 0.55)

    frames: list[PILImage] = []
    for step, shot in shots:
        screen = _decode(shot)
        if screen is None:
            screen = Image.new("RGB", (max(shot.width, 1), max(shot.height, 1)), "#d5d9de")
            why = "expired" if shot.expired else "unreadable"
            ImageDraw.Draw(screen).text(
                (screen.width // 2, screen.height // 2),
                f"screenshot {why}",
                fill="#444",
                font=_font(ImageFont, screen.width / 30),
                anchor="mm",
            )
        screen = screen.resize((width, height), Image.Resampling.LANCZOS)
        frame: PILImage = Image.new("RGB", (width, height + bar), "#14171c")
        frame.paste(screen, (0, 0))
        caption = "Start" if step is None else f"Step {step.number}/{len(run.steps)} · {step.label}"
        caption = caption.replace("→", "->")
        ImageDraw.Draw(frame).text(
            (12, height + bar // 2), caption, fill="#f1f3f5", font=font, anchor="lm"
        )
        accent: int | tuple[int, int, int] = ACCENT
        white: int | tuple[int, int, int] = (255, 255, 255)
        if fmt == "gif":
            # a palette of the screen's own colours plus the marker's, so that the few marker
            # pixels are not mapped to the nearest page colour
            frame = frame.quantize(colors=254, method=Image.Quantize.MEDIANCUT)
            palette = (frame.getpalette() or [])[: 254 * 3]
            palette += [0, 0, 0] * (254 - len(palette) // 3)
            frame.putpalette([*palette, *ACCENT, 255, 255, 255])
            accent, white = 254, 255
        if step is not None:
            marks = marks_of(step.action, shot.width, shot.height)
            _draw_marks(ImageDraw.Draw(frame), marks, (width, height), accent, white)
        frames.append(frame)
    durations = [frame_ms] * len(frames)
    durations[-1] = frame_ms * 3
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {"save_all": True, "duration": durations, "loop": 0}
    if fmt == "webp":
        options.update(quality=80, method=4)
    frames[0].save(path, format=fmt.upper(), append_images=frames[1:], **options)
    return path


def _font(module: ModuleType, size: float) -> PILFont:
    try:
        font: PILFont = module.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow without FreeType: the bitmap font
        font = module.load_default()
    return font


def _decode(shot: Shot) -> PILImage | None:
    from PIL import Image, UnidentifiedImageError

    if shot.data is None:
        return None
    try:
        with Image.open(io.BytesIO(shot.data)) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _draw_marks(
    draw: PILDraw,
    marks: Marks,
    size: tuple[int, int],
    accent: int | tuple[int, int, int],
    white: int | tuple[int, int, int],
) -> None:
    """Draws on a frame whose screen area is `size`; colours are RGB or palette indices."""
    w, h = size
    r = max(7, w // 70)
    if marks.region is not None:
        x1, y1, x2, y2 = marks.region
        draw.rectangle((x1 * w, y1 * h, x2 * w, y2 * h), outline=accent, width=max(3, r // 3))
    pts = [(x * w, y * h) for x, y in marks.points]
    if len(pts) == 2:
        draw.line(pts, fill=accent, width=max(3, r // 3))
    for i, (x, y) in enumerate(pts):
        box = (x - r, y - r, x + r, y + r)
        halo = r + 2
        draw.ellipse((x - halo, y - halo, x + halo, y + halo), outline=white, width=max(6, r // 2))
        draw.ellipse(box, outline=accent, width=max(3, r // 3))
        if not (len(pts) == 2 and i == 0):
            draw.ellipse((x - r / 3, y - r / 3, x + r / 3, y + r / 3), fill=accent)
