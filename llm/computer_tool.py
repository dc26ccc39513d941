"""ComputerTool: Anthropic's computer-use tool (computer_20250124, computer_20251124).

`execute(action, **input)` runs one tool_use input and returns the tool_result content: the
settled screenshot (zoom: the zoomed region; cursor_position: text). Bad input raises
ComputerToolError; `tool_result()` turns it into an is_error block the model can read.

The model may be shown a smaller display than the screen: above the API's image limits the
tool declares a target resolution, sends screenshots scaled down to it and scales the model's
coordinates back up (see `relayq.llm.display_scaling`). Clicks and scrolls without a
`coordinate` act at the cursor; `text` on a click, drag or scroll names modifier keys held
during it; `key` takes an optional `repeat`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast, get_args

from livekit.agents import llm
from livekit.agents.llm import ToolError

from .display_scaling import DisplayScaling
from .page_actions import PageActionError, PageActions, ScrollDirection
from .tools import ComputerUse

ACTIONS_20250124: frozenset[str] = frozenset(
    {
        "key",
        "hold_key",
        "type",
        "cursor_position",
        "mouse_move",
        "left_mouse_down",
        "left_mouse_up",
        "left_click",
        "left_click_drag",
        "right_click",
        "middle_click",
        "double_click",
        "triple_click",
        "scroll",
        "wait",
        "screenshot",
    }
)
ACTIONS_20251124: frozenset[str] = ACTIONS_20250124 | {"zoom"}
_ACTIONS_BY_VERSION = {
    "computer_20250124": ACTIONS_20250124,
    "computer_20251124": ACTIONS_20251124,
}
DEFAULT_SCROLL_AMOUNT = 3
DEFAULT_WAIT_S = 1.0


class ComputerToolError(ToolError, ValueError):
    """The action could not run as asked; the message is meant for the model. A ValueError too,
    as the input errors of livekit-plugins-anthropic's ComputerTool are."""


class ComputerTool(llm.Toolset):
    """Anthropic computer_use tool backed by PageActions on a Playwright page.

    Usage::

        actions = PageActions(page=page)
        tool = ComputerTool(actions=actions, width=1280, height=720)
        block = await tool.tool_result(tool_use.id, tool_use.input)

    `width`/`height` are the screen (the page's viewport). With `scaling` (the default) a
    screen above the API's image limits is shown to the model at a smaller target resolution
    (`display_size`); `scaling=False` shows it as it is.
    """

    def __init__(
        self,
        *,
        actions: PageActions,
        width: int = 1280,
        height: int = 720,
        tool_version: str = "computer_20251124",
        enable_zoom: bool = False,
        scaling: bool = True,
    ) -> None:
        super().__init__(id="computer")
        viewport = actions.page.viewport_size
        if viewport is None or (viewport["width"], viewport["height"]) != (width, height):
            raise ValueError(
                f"the page viewport {viewport} must equal the declared display {width}x{height}"
            )
        self._scaling = (
            DisplayScaling.for_screen(width, height)
            if scaling
            else DisplayScaling.none(width, height)
        )
        model_w, model_h = self._scaling.model
        self._provider_tool = ComputerUse(
            display_width_px=model_w,
            display_height_px=model_h,
            tool_version=tool_version,
            enable_zoom=enable_zoom,
        )
        self._actions = actions
        self._allowed = _ACTIONS_BY_VERSION[tool_version] - (set() if enable_zoom else {"zoom"})

    @property
    def tools(self) -> list[llm.Tool]:
        return [self._provider_tool]

    @property
    def provider_tool(self) -> ComputerUse:
        return self._provider_tool

    @property
    def actions(self) -> PageActions:
        return self._actions

    @property
    def last_settle_ms(self) -> float:
        return self._actions.last_settle_ms

    @property
    def display_size(self) -> tuple[int, int]:
        """The display the model is told about: the size of every screenshot it gets."""
        return self._scaling.model

    @property
    def scaling(self) -> DisplayScaling:
        return self._scaling

    async def execute(self, action: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Run one computer_use action; return its tool_result content blocks."""
        self._check_allowed(action)
        try:
            return await self._dispatch(action, kwargs)
        except PageActionError as e:
            raise ComputerToolError(e.message) from e

    async def tool_result(self, tool_use_id: str, input: Mapping[str, Any]) -> dict[str, Any]:
        """The complete tool_result block for a tool_use; bad input becomes is_error, not raise."""
        params = dict(input)
        action = params.pop("action", None)
        try:
            if not isinstance(action, str):
                raise ComputerToolError(f"`action` must be a string, got {action!r}")
            content = await self.execute(action, **params)
        except ToolError as e:
            content = [{"type": "text", "text": e.message}]
            frame = await self._current_frame()
            if frame is not None:
                content.append(self._image_block(frame))
            return _tool_result(tool_use_id, content, is_error=True)
        return _tool_result(tool_use_id, content, is_error=False)

    async def aclose(self) -> None:
        await self._actions.aclose()

    async def _dispatch(self, action: str, kw: dict[str, Any]) -> list[dict[str, Any]]:
        actions = self._actions
        match action:
            case "screenshot":
                return [self._image_block(await self._screenshot())]
            case "cursor_position":
                x, y = self._scaling.to_model(*actions.cursor_position)
                return [{"type": "text", "text": f"X={x}, Y={y}"}]
            case "zoom":
                region = self._scaling.region_to_screen(self._region(kw))
                zoomed = await actions.zoom(region, size=self.display_size)
                return [self._image_block(zoomed)]
            case "left_click":
                await actions.left_click(*self._optional_point(kw, action), modifiers=_mods(kw))
            case "right_click":
                await actions.right_click(*self._optional_point(kw, action), modifiers=_mods(kw))
            case "middle_click":
                await actions.middle_click(*self._optional_point(kw, action), modifiers=_mods(kw))
            case "double_click":
                await actions.double_click(*self._optional_point(kw, action), modifiers=_mods(kw))
            case "triple_click":
                await actions.triple_click(*self._optional_point(kw, action), modifiers=_mods(kw))
            case "mouse_move":
                await actions.mouse_move(*self._point(kw, action))
            case "left_click_drag":
                sx, sy = self._point(kw, action, key="start_coordinate")
                ex, ey = self._point(kw, action)
                await actions.left_click_drag(
                    start_x=sx, start_y=sy, end_x=ex, end_y=ey, modifiers=_mods(kw)
                )
            case "left_mouse_down":
                await actions.left_mouse_down(*self._optional_point(kw, action))
            case "left_mouse_up":
                await actions.left_mouse_up(*self._optional_point(kw, action))
            case "scroll":
                await actions.scroll(
                    *self._optional_point(kw, action),
                    direction=_direction(kw),
                    amount=kw.get("scroll_amount", DEFAULT_SCROLL_AMOUNT),
                    modifiers=_mods(kw),
                )
            case "type":
                await actions.type_text(_string(kw, "text", action))
            case "key":
                await actions.key(_string(kw, "text", action), repeat=kw.get("repeat", 1))
            case "hold_key":
                text = _string(kw, "text", action)
                await actions.hold_key(text, duration=_seconds(kw, action))
            case "wait":
                await actions.wait(_seconds(kw, action, DEFAULT_WAIT_S))
            case _:
                raise ComputerToolError(f"unknown action {action!r}")
        await actions.settle()
        return [self._image_block(await self._screenshot())]

    async def _screenshot(self) -> bytes:
        return await self._actions.screenshot(size=self.display_size)

    def _point(
        self, kw: dict[str, Any], action: str, *, key: str = "coordinate"
    ) -> tuple[int, int]:
        """A coordinate of the model's display, checked there, as a screen coordinate."""
        x, y = _coordinate(kw, action, key=key)
        width, height = self.display_size
        if not (0 <= x < width and 0 <= y < height):
            raise ComputerToolError(
                f"{key} [{x}, {y}] is outside the {width}x{height} display: "
                f"x must be 0-{width - 1} and y 0-{height - 1}"
            )
        return self._scaling.to_screen(x, y)

    def _optional_point(self, kw: dict[str, Any], action: str) -> tuple[int, int] | tuple[()]:
        """The screen point of `coordinate`, or () for "where the cursor is"."""
        return () if kw.get("coordinate") is None else self._point(kw, action)

    def _region(self, kw: dict[str, Any]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = _region(kw)
        width, height = self.display_size
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise ComputerToolError(
                f"region {[x1, y1, x2, y2]!r} must satisfy 0 <= x1 < x2 <= {width} and "
                f"0 <= y1 < y2 <= {height}"
            )
        return x1, y1, x2, y2

    def _check_allowed(self, action: str) -> None:
        if action in self._allowed:
            return
        version = self._provider_tool.tool_version
        if action == "zoom" and action in _ACTIONS_BY_VERSION[version]:
            raise ComputerToolError("zoom is not enabled for this tool (enable_zoom is off)")
        if action in ACTIONS_20251124:
            raise ComputerToolError(f"action {action!r} is not available in {version}")
        raise ComputerToolError(
            f"unknown action {action!r}; expected one of {', '.join(sorted(self._allowed))}"
        )

    async def _current_frame(self) -> bytes | None:
        try:
            return await self._screenshot()
        except PageActionError:
            return self._actions.last_frame

    def _image_block(self, image: bytes) -> dict[str, Any]:
        return {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": self._actions.media_type,
                "data": base64.b64encode(image).decode("ascii"),
            },
        }


def _tool_result(
    tool_use_id: str, content: list[dict[str, Any]], *, is_error: bool
) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": content,
        "is_error": is_error,
    }


def _string(kw: dict[str, Any], key: str, action: str) -> str:
    value = kw.get(key)
    if value is None:
        raise ComputerToolError(f"{key} is required for {action}")
    if not isinstance(value, str):
        raise ComputerToolError(f"{key} must be a string for {action}, got {value!r}")
    return value


def _seconds(kw: dict[str, Any], action: str, default: float | None = None) -> float:
    value = kw.get("duration", default)
    if value is None:
        raise ComputerToolError(f"duration (seconds) is required for {action}")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ComputerToolError(f"duration must be a number of seconds, got {value!r}")
    return float(value)


def _direction(kw: dict[str, Any]) -> ScrollDirection:
    value = kw.get("scroll_direction")
    if value not in get_args(ScrollDirection):
        raise ComputerToolError(
            f"scroll_direction must be one of up, down, left, right, got {value!r}"
        )
    return cast(ScrollDirection, value)


def _region(kw: dict[str, Any]) -> tuple[int, int, int, int]:
    value = kw.get("region")
    if value is None:
        raise ComputerToolError("region [x1, y1, x2, y2] is required for zoom")
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(_is_int(v) for v in value):
        raise ComputerToolError(f"region must be four integers [x1, y1, x2, y2], got {value!r}")
    x1, y1, x2, y2 = value
    return x1, y1, x2, y2


def _coordinate(kw: dict[str, Any], action: str, *, key: str = "coordinate") -> tuple[int, int]:
    value = kw.get(key)
    if value is None:
        raise ComputerToolError(f"{key} [x, y] is required for {action}")
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(map(_is_int, value)):
        raise ComputerToolError(f"{key} must be two integers [x, y] for {action}, got {value!r}")
    return value[0], value[1]


def _mods(kw: dict[str, Any]) -> str | None:
    """The modifier keys (`text`) to hold during a click, drag or scroll."""
    text = kw.get("text")
    if text is not None and not isinstance(text, str):
        raise ComputerToolError(f"text (modifier keys to hold) must be a string, got {text!r}")
    return text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
