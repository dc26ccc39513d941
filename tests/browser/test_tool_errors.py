"""Bad model input becomes an is_error tool_result the model can read; nothing crashes."""

from __future__ import annotations

from typing import Any

import pytest
from livekit.agents.llm import ToolError
from playwright.async_api import Page

from relayq.llm.computer_tool import ComputerTool, ComputerToolError
from relayq.llm.page_actions import PageActions
from relayq.llm.tools import ComputerUse

pytestmark = pytest.mark.browser


def error_text(result: dict[str, Any]) -> str:
    assert result["type"] == "tool_result"
    assert result["tool_use_id"] == "toolu_1"
    assert result["is_error"] is True
    text_block, *images = result["content"]
    assert text_block["type"] == "text"
    assert [block["type"] for block in images] == ["image"], "the error shows the current screen"
    text: str = text_block["text"]
    return text


@pytest.mark.parametrize(
    ("tool_input", "message"),
    [
        ({"action": "left_click", "coordinate": [1280, 10]}, "outside the 1280x720 display"),
        ({"action": "left_click", "coordinate": [10, 720]}, "outside the 1280x720 display"),
        ({"action": "mouse_move", "coordinate": [-1, 10]}, "outside the 1280x720 display"),
        ({"action": "left_click", "coordinate": [10.5, 10]}, "must be two integers"),
        ({"action": "left_click", "coordinate": ["10", 10]}, "must be two integers"),
        ({"action": "left_click", "coordinate": [10, 10, 10]}, "must be two integers"),
        ({"action": "mouse_move"}, "coordinate [x, y] is required for mouse_move"),
        ({"action": "key", "text": "Down", "repeat": 0}, "repeat must be an integer from 1 to 100"),
        (
            {"action": "left_click_drag", "coordinate": [5, 5]},
            "start_coordinate [x, y] is required",
        ),
        ({"action": "scroll", "coordinate": [5, 5]}, "scroll_direction must be one of"),
        (
            {
                "action": "scroll",
                "coordinate": [5, 5],
                "scroll_direction": "down",
                "scroll_amount": -1,
            },
            "scroll_amount must be a non-negative integer",
        ),
        ({"action": "type"}, "text is required for type"),
        ({"action": "key", "text": "ctrl+Frobnicate"}, "unknown key 'Frobnicate'"),
        ({"action": "left_click", "coordinate": [5, 5], "text": "a"}, "'a' is not a modifier key"),
        ({"action": "hold_key", "text": "shift"}, "duration (seconds) is required for hold_key"),
        ({"action": "wait", "duration": 1000}, "duration must be a number of seconds between 0"),
        ({"action": "zoom", "region": [10, 10, 5, 20]}, "region [10, 10, 5, 20] must satisfy"),
        ({"action": "zoom", "region": [0, 0, 10]}, "region must be four integers"),
        ({"action": "teleport"}, "unknown action 'teleport'"),
        ({"coordinate": [5, 5]}, "`action` must be a string"),
    ],
)
async def test_bad_input_is_an_error_result_with_a_readable_message(
    tool: ComputerTool, tool_input: dict[str, Any], message: str
) -> None:
    assert message in error_text(await tool.tool_result("toolu_1", tool_input))


async def test_a_tool_error_is_also_a_value_error_as_upstream_raises(tool: ComputerTool) -> None:
    with pytest.raises(ValueError, match="unknown action 'teleport'"):
        await tool.execute("teleport")


async def test_execute_raises_a_tool_error_on_bad_input(tool: ComputerTool) -> None:
    with pytest.raises(ComputerToolError, match="unknown action") as caught:
        await tool.execute("teleport")
    assert isinstance(caught.value, ToolError)


async def test_zoom_is_rejected_by_computer_20250124(actions: PageActions) -> None:
    tool = ComputerTool(actions=actions, tool_version="computer_20250124")
    result = await tool.tool_result("toolu_1", {"action": "zoom", "region": [0, 0, 10, 10]})
    assert "not available in computer_20250124" in error_text(result)


async def test_zoom_is_rejected_when_not_enabled(actions: PageActions) -> None:
    tool = ComputerTool(actions=actions)
    result = await tool.tool_result("toolu_1", {"action": "zoom", "region": [0, 0, 10, 10]})
    assert "zoom is not enabled" in error_text(result)


async def test_a_good_action_is_a_tool_result_with_the_screenshot(tool: ComputerTool) -> None:
    result = await tool.tool_result("toolu_1", {"action": "left_click", "coordinate": [5, 5]})
    assert result["is_error"] is False
    assert [block["type"] for block in result["content"]] == ["image"]


async def test_the_toolset_declares_the_computer_tool_it_dispatches(tool: ComputerTool) -> None:
    assert tool.id == "computer"
    [declared] = tool.tools
    assert isinstance(declared, ComputerUse)
    assert declared.to_dict() == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1280,
        "display_height_px": 720,
        "display_number": 1,
        "enable_zoom": True,
    }


async def test_a_viewport_that_is_not_the_declared_display_is_refused(
    actions: PageActions,
) -> None:
    with pytest.raises(ValueError, match="must equal the declared display 1024x768"):
        ComputerTool(actions=actions, width=1024, height=768)


async def test_a_closed_page_gives_an_error_result_not_a_crash(
    tool: ComputerTool, page: Page
) -> None:
    await page.close()
    result = await tool.tool_result("toolu_1", {"action": "left_click", "coordinate": [5, 5]})
    assert result["is_error"] is True
    assert "left click failed" in result["content"][0]["text"]
