"""ComputerTool: Anthropic's computer-use tool (computer_20250124, computer_20251124).

`execute(action, **input)` runs one tool_use input and returns the tool_result content: the
settled screenshot (zoom: the zoomed region; cursor_position: text). Bad input raises
ComputerToolError; `tool_result()` turns it into an is_error block the model can read.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, cast, get_args

from livekit.agents import llm
from livekit.agents.llm import ToolError

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


class ComputerToolError(ToolError):
    """The action could not run as asked; the message is meant for the model."""


class ComputerTool(llm.Toolset):
    """Anthropic computer_use tool backed by PageActions on a Playwright page.

    Usage::

        actions = PageActions(page=page)
        tool = ComputerTool(actions=actions, width=1280, height=720)
        block = await tool.tool_result(tool_use.id, tool_use.input)
    """

    def __init__(
        self,
        *,
        actions: PageActions,
        width: int = 1280,
        height: int = 720,
        tool_version: str = "computer_20251124",
        enable_zoom: bool = False,
    ) -> None:
        super().__init__(id="computer")
        self._provider_tool = ComputerUse(
            display_width_px=width,
            display_height_px=height,
            tool_version=tool_version,
            enable_zoom=enable_zoom,
        )
        viewport = actions.page.viewport_size
        if viewport is None or (viewport["width"], viewport["height"]) != (width, height):
            raise ValueError(
                f"the page viewport {viewport} must equal the declared display {width}x{height}"
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
                return [self._image_block(await actions.screenshot())]
            case "cursor_position":
                x, y = actions.cursor_position
                return [{"type": "text", "text": f"X={x}, Y={y}"}]
            case "zoom":
                return [self._image_block(await actions.zoom(_region(kw)))]
            case "left_click":
                await actions.left_click(*_coordinate(kw, action), modifiers=_modifiers(kw))
            case "right_click":
                await actions.right_click(*_coordinate(kw, action), modifiers=_modifiers(kw))
            case "middle_click":
                await actions.middle_click(*_coordinate(kw, action), modifiers=_modifiers(kw))
            case "double_click":
                await actions.double_click(*_coordinate(kw, action), modifiers=_modifiers(kw))
            case "triple_click":
                await actions.triple_click(*_coordinate(kw, action), modifiers=_modifiers(kw))
            case "mouse_move":
                await actions.mouse_move(*_coordinate(kw, action))
            case "left_click_drag":
                sx, sy = _coordinate(kw, action, key="start_coordinate")
                ex, ey = _coordinate(kw, action)
                await actions.left_click_drag(start_x=sx, start_y=sy, end_x=ex, end_y=ey)
            case "left_mouse_down":
                await actions.left_mouse_down(*_optional_coordinate(kw, action))
            case "left_mouse_up":
                await actions.left_mouse_up(*_optional_coordinate(kw, action))
            case "scroll":
                x, y = _coordinate(kw, action)
                await actions.scroll(
                    x,
                    y,
                    direction=_direction(kw),
                    amount=kw.get("scroll_amount", DEFAULT_SCROLL_AMOUNT),
                    modifiers=_modifiers(kw),
                )
            case "type":
                await actions.type_text(_string(kw, "text", action))
            case "key":
                await actions.key(_string(kw, "text", action))
            case "hold_key":
                text = _string(kw, "text", action)
                await actions.hold_key(text, duration=_seconds(kw, action))
            case "wait":
                await actions.wait(_seconds(kw, action, DEFAULT_WAIT_S))
            case _:
                raise ComputerToolError(f"unknown action {action!r}")
        await actions.settle()
        return [self._image_block(await actions.screenshot())]

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
            return await self._actions.screenshot()
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


def _region(kw: dict[str, Any]) -> list[int]:
    value = kw.get("region")
    if value is None:
        raise ComputerToolError("region [x1, y1, x2, y2] is required for zoom")
    if not isinstance(value, list | tuple) or not all(_is_int(v) for v in value):
        raise ComputerToolError(f"region must be four integers [x1, y1, x2, y2], got {value!r}")
    return list(value)


def _coordinate(kw: dict[str, Any], action: str, *, key: str = "coordinate") -> tuple[int, int]:
    value = kw.get(key)
    if value is None:
        raise ComputerToolError(f"{key} [x, y] is required for {action}")
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(map(_is_int, value)):
        raise ComputerToolError(f"{key} must be two integers [x, y] for {action}, got {value!r}")
    return value[0], value[1]


def _optional_coordinate(kw: dict[str, Any], action: str) -> tuple[int, int] | tuple[()]:
    return () if kw.get("coordinate") is None else _coordinate(kw, action)


def _modifiers(kw: dict[str, Any]) -> str | None:
    text = kw.get("text")
    if text is not None and not isinstance(text, str):
        raise ComputerToolError(f"text (modifier keys to hold) must be a string, got {text!r}")
    return text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
