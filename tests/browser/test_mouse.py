"""Mouse actions through ComputerTool, each checked by what the page saw."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from relayq.llm.computer_tool import ComputerTool

pytestmark = pytest.mark.browser


async def center(page: Page, selector: str) -> list[int]:
    box = await page.locator(selector).bounding_box()
    assert box is not None
    return [round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)]


async def events(page: Page, type: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("(type) => window.eventsOf(type)", type)
    return result


@pytest.fixture
async def controls(page: Page, base_url: str) -> Page:
    await page.goto(f"{base_url}/controls.html")
    return page


async def test_left_click_lands_on_the_button_at_its_coordinates(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("left_click", coordinate=[x, y])
    assert await controls.evaluate("window.clicks") == [
        {"x": x, "y": y, "shift": False, "ctrl": False}
    ]


async def test_left_click_beside_the_button_does_not_click_it(
    tool: ComputerTool, controls: Page
) -> None:
    box = await controls.locator("#btn").bounding_box()
    assert box is not None
    await tool.execute("left_click", coordinate=[round(box["x"] + box["width"] + 5), 50])
    assert await controls.evaluate("window.clicks") == []


async def test_shift_click_holds_shift_during_the_click_and_releases_it(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("left_click", coordinate=[x, y], text="shift")
    await tool.execute("left_click", coordinate=[x, y])
    clicks = await controls.evaluate("window.clicks")
    assert [(c["shift"], c["ctrl"]) for c in clicks] == [(True, False), (False, False)]


async def test_ctrl_shift_click_holds_both_modifiers(tool: ComputerTool, controls: Page) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("left_click", coordinate=[x, y], text="ctrl+shift")
    assert await controls.evaluate("window.clicks") == [
        {"x": x, "y": y, "shift": True, "ctrl": True}
    ]


async def test_right_click_fires_contextmenu_with_button_2(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("right_click", coordinate=[x, y])
    [menu] = await events(controls, "contextmenu")
    assert (menu["button"], menu["target"], menu["x"], menu["y"]) == (2, "btn", x, y)
    assert await controls.evaluate("window.clicks") == []


async def test_middle_click_fires_auxclick_with_button_1(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("middle_click", coordinate=[x, y])
    [aux] = await events(controls, "auxclick")
    assert (aux["button"], aux["target"]) == (1, "btn")


async def test_double_click_fires_dblclick_after_clicks_with_detail_1_and_2(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("double_click", coordinate=[x, y])
    assert [e["detail"] for e in await events(controls, "click")] == [1, 2]
    [dbl] = await events(controls, "dblclick")
    assert (dbl["detail"], dbl["target"]) == (2, "btn")


async def test_triple_click_has_detail_3_and_selects_the_paragraph(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#para")
    await tool.execute("triple_click", coordinate=[x, y])
    assert [e["detail"] for e in await events(controls, "click")] == [1, 2, 3]
    selected = await controls.evaluate("window.getSelection().toString().trim()")
    assert selected == "The quick brown fox jumps over the lazy dog."


async def test_left_click_drag_moves_the_range_slider_to_the_end(
    tool: ComputerTool, controls: Page
) -> None:
    box = await controls.locator("#slider").bounding_box()
    assert box is not None
    y = round(box["y"] + box["height"] / 2)
    start = [round(box["x"] + 3), y]
    end = [round(box["x"] + box["width"] + 20), y]
    await tool.execute("left_click_drag", start_coordinate=start, coordinate=end)
    assert await controls.eval_on_selector("#slider", "el => el.valueAsNumber") == 100


async def test_left_click_drag_moves_the_draggable_box_by_the_drag_distance(
    tool: ComputerTool, controls: Page
) -> None:
    before = await controls.locator("#box").bounding_box()
    assert before is not None
    sx, sy = await center(controls, "#box")
    await tool.execute(
        "left_click_drag", start_coordinate=[sx, sy], coordinate=[sx - 200, sy + 100]
    )
    after = await controls.locator("#box").bounding_box()
    assert after is not None
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (-200, 100)


async def test_mouse_down_and_up_at_two_points_drag_the_box_in_two_steps(
    tool: ComputerTool, controls: Page
) -> None:
    sx, sy = await center(controls, "#box")
    await tool.execute("left_mouse_down", coordinate=[sx, sy])
    assert await controls.evaluate("window.eventsOf('mouseup').length") == 0
    await tool.execute("mouse_move", coordinate=[sx + 50, sy + 30])
    await tool.execute("left_mouse_up", coordinate=[sx + 100, sy + 60])
    [down] = await events(controls, "mousedown")
    [up] = await events(controls, "mouseup")
    assert (down["x"], down["y"], down["target"]) == (sx, sy, "box")
    assert (up["x"], up["y"]) == (sx + 100, sy + 60)
    assert await center(controls, "#box") == [sx + 100, sy + 60]


async def test_mouse_down_without_coordinate_presses_where_the_cursor_is(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("mouse_move", coordinate=[x, y])
    await tool.execute("left_mouse_down")
    await tool.execute("left_mouse_up")
    assert await controls.evaluate("window.clicks") == [
        {"x": x, "y": y, "shift": False, "ctrl": False}
    ]


async def test_mouse_move_dispatches_mousemove_at_the_coordinates(
    tool: ComputerTool, controls: Page
) -> None:
    await tool.execute("mouse_move", coordinate=[321, 123])
    last = (await events(controls, "mousemove"))[-1]
    assert (last["x"], last["y"], last["buttons"]) == (321, 123, 0)


async def test_cursor_position_reports_the_last_mouse_position(
    tool: ComputerTool, controls: Page
) -> None:
    await tool.execute("mouse_move", coordinate=[10, 20])
    x, y = await center(controls, "#btn")
    await tool.execute("left_click", coordinate=[x, y])
    assert await tool.execute("cursor_position") == [{"type": "text", "text": f"X={x}, Y={y}"}]


@pytest.fixture
async def scroll_page(page: Page, base_url: str) -> Page:
    await page.goto(f"{base_url}/scroll.html")
    return page


async def test_scroll_down_moves_the_page_by_the_wheel_clicks(
    tool: ComputerTool, scroll_page: Page
) -> None:
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="down", scroll_amount=5)
    assert await scroll_page.evaluate("[window.scrollX, window.scrollY]") == [0, 500]
    [wheel] = await events(scroll_page, "wheel")
    assert (wheel["x"], wheel["y"], wheel["dy"]) == (640, 360, 500)


async def test_scroll_up_moves_the_page_back(tool: ComputerTool, scroll_page: Page) -> None:
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="down", scroll_amount=5)
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="up", scroll_amount=2)
    assert await scroll_page.evaluate("window.scrollY") == 300


async def test_scroll_right_and_left_scroll_horizontally(
    tool: ComputerTool, scroll_page: Page
) -> None:
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="right", scroll_amount=4)
    assert await scroll_page.evaluate("[window.scrollX, window.scrollY]") == [400, 0]
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="left", scroll_amount=1)
    assert await scroll_page.evaluate("window.scrollX") == 300


async def test_scroll_with_shift_holds_shift_on_the_wheel_event(
    tool: ComputerTool, scroll_page: Page
) -> None:
    await tool.execute(
        "scroll", coordinate=[640, 360], scroll_direction="down", scroll_amount=1, text="shift"
    )
    [wheel] = await events(scroll_page, "wheel")
    assert wheel["shift"] is True
    assert [e["key"] for e in await events(scroll_page, "keyup")] == ["Shift"]


@pytest.mark.parametrize(
    ("action", "event", "detail"),
    [
        ("left_click", "click", 1),
        ("double_click", "dblclick", 2),
        ("triple_click", "click", 3),
        ("right_click", "contextmenu", 0),
        ("middle_click", "auxclick", 1),
    ],
)
async def test_a_click_without_coordinate_acts_where_the_cursor_is(
    tool: ComputerTool, controls: Page, action: str, event: str, detail: int
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("mouse_move", coordinate=[x, y])
    await tool.execute(action)
    fired = (await events(controls, event))[-1]
    assert (fired["x"], fired["y"], fired["target"], fired["detail"]) == (x, y, "btn", detail)


async def test_a_modifier_click_without_coordinate_holds_the_modifier_at_the_cursor(
    tool: ComputerTool, controls: Page
) -> None:
    x, y = await center(controls, "#btn")
    await tool.execute("mouse_move", coordinate=[x, y])
    await tool.execute("left_click", text="ctrl")
    assert await controls.evaluate("window.clicks") == [
        {"x": x, "y": y, "shift": False, "ctrl": True}
    ]


async def test_a_scroll_without_coordinate_turns_the_wheel_where_the_cursor_is(
    tool: ComputerTool, scroll_page: Page
) -> None:
    await tool.execute("mouse_move", coordinate=[300, 200])
    await tool.execute("scroll", scroll_direction="down", scroll_amount=2)
    [wheel] = await events(scroll_page, "wheel")
    assert (wheel["x"], wheel["y"], wheel["dy"]) == (300, 200, 200)


async def test_left_click_drag_holds_its_modifier_keys_for_the_whole_drag(
    tool: ComputerTool, controls: Page
) -> None:
    sx, sy = await center(controls, "#box")
    await tool.execute(
        "left_click_drag", start_coordinate=[sx, sy], coordinate=[sx + 60, sy + 20], text="shift"
    )
    [down] = await events(controls, "mousedown")
    [up] = await events(controls, "mouseup")
    moves = [m for m in await events(controls, "mousemove") if m["buttons"] == 1]
    assert down["shift"] and up["shift"] and moves and all(m["shift"] for m in moves)
    assert await center(controls, "#box") == [sx + 60, sy + 20]
    [keyup] = [k for k in await events(controls, "keyup") if k["key"] == "Shift"]
    assert keyup["t"] >= up["t"]


async def test_page_actions_scroll_down_three_clicks_by_default(
    tool: ComputerTool, scroll_page: Page
) -> None:
    """livekit's PageActions.scroll(x, y) defaults: direction "down", amount 3."""
    await tool.actions.scroll(640, 360)
    await tool.actions.settle()
    assert await scroll_page.evaluate("window.scrollY") == 300
