"""An action's input (untrusted JSON from the model) read for people: a one-line description, and
where on the screen it acted."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import JsonValue

from relayq.schemas.events import Action


def _point(value: JsonValue | None) -> tuple[float, float] | None:
    if isinstance(value, list) and len(value) == 2:
        x, y = value
        if _number(x) and _number(y):
            return float(x), float(y)  # type: ignore[arg-type]
    return None


def _region(value: JsonValue | None) -> tuple[float, float, float, float] | None:
    if isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value):
        x1, y1, x2, y2 = (float(v) for v in value)  # type: ignore[arg-type]
        return x1, y1, x2, y2
    return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt_point(p: tuple[float, float]) -> str:
    return f"({_num(p[0])}, {_num(p[1])})"


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else f"{v:g}"


def _quoted(value: JsonValue | None, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def describe_action(action: Action) -> str:
    """One line for an action: `left_click (640, 220)`, `type "Ada Lovelace"`, ..."""
    name, inp = action.action, action.input
    point = _point(inp.get("coordinate"))
    mods = f" + {inp['text']}" if isinstance(inp.get("text"), str) and point else ""
    match name:
        case "type":
            return f"type {_quoted(inp.get('text'))}"
        case "key":
            return f"key {_quoted(inp.get('text'))}"
        case "hold_key":
            return f"hold_key {_quoted(inp.get('text'))} for {inp.get('duration', '?')} s"
        case "wait":
            return f"wait {inp.get('duration', 1.0)} s"
        case "left_click_drag":
            start = _point(inp.get("start_coordinate"))
            if start and point:
                return f"left_click_drag {_fmt_point(start)} → {_fmt_point(point)}"
        case "scroll":
            direction = inp.get("scroll_direction", "?")
            amount = inp.get("scroll_amount", 3)
            at = f" at {_fmt_point(point)}" if point else ""
            return f"scroll {direction} by {amount}{at}{mods}"
        case "zoom":
            region = _region(inp.get("region"))
            if region:
                return f"zoom [{', '.join(_num(v) for v in region)}]"
        case _ if point is not None:
            return f"{name} {_fmt_point(point)}{mods}"
    rest = {k: v for k, v in inp.items() if k != "action"}
    return f"{name} {json.dumps(rest, ensure_ascii=False)}" if rest else name


@dataclass(frozen=True)
class Marks:
    """Where an action touched the screen, as fractions (0..1) of the screenshot's size."""

    points: tuple[tuple[float, float], ...] = ()
    region: tuple[float, float, float, float] | None = None
    label: str = ""  # shown beside the last point, e.g. a scroll's direction


def marks_of(action: Action, width: int, height: int) -> Marks:
    if width <= 0 or height <= 0:
        return Marks()

    def frac(p: tuple[float, float]) -> tuple[float, float]:
        return min(max(p[0] / width, 0.0), 1.0), min(max(p[1] / height, 0.0), 1.0)

    inp = action.input
    if action.action == "zoom":
        r = _region(inp.get("region"))
        if r is None:
            return Marks()
        (x1, y1), (x2, y2) = frac((r[0], r[1])), frac((r[2], r[3]))
        return Marks(region=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    points: list[tuple[float, float]] = []
    if action.action == "left_click_drag" and (start := _point(inp.get("start_coordinate"))):
        points.append(frac(start))
    if point := _point(inp.get("coordinate")):
        points.append(frac(point))
    label = ""
    if action.action == "scroll" and points:
        arrow = _ARROWS.get(str(inp.get("scroll_direction")), "?")
        label = f"{arrow} {inp.get('scroll_amount', 3)}"
    return Marks(points=tuple(points), label=label)


ACCENT = (224, 17, 95)
_ARROWS = {"up": "↑", "down": "↓", "left": "←", "right": "→"}
