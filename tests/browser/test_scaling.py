"""A 1920x1080 screen through ComputerTool: the model is shown 1366x768, screenshots are scaled
to it and its coordinates scaled back, so a click on a 10x10 px target lands on it."""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import PageActions
from relayq.simulator import SMALL_TARGET
from relayq.simulator.computer import SMALL_TARGET_PAGE

pytestmark = pytest.mark.browser

SCREEN = (1920, 1080)
MODEL = (1366, 768)
TARGET_CENTER = (1440, 864)  # 75 % / 80 % of the viewport


def image_size(block: dict[str, Any]) -> tuple[int, int]:
    data = base64.b64decode(block["source"]["data"])
    assert data.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
async def big_page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": SCREEN[0], "height": SCREEN[1]}, device_scale_factor=1
    )
    try:
        page = await context.new_page()
        await page.set_content(SMALL_TARGET_PAGE)
        yield page
    finally:
        await context.close()


@pytest.fixture
async def big_tool(big_page: Page) -> AsyncIterator[ComputerTool]:
    actions = PageActions(page=big_page)
    try:
        yield ComputerTool(actions=actions, width=SCREEN[0], height=SCREEN[1], enable_zoom=True)
    finally:
        await actions.aclose()


async def test_the_model_is_told_about_the_scaled_display(big_tool: ComputerTool) -> None:
    assert big_tool.display_size == MODEL
    definition = big_tool.provider_tool.to_dict()
    assert (definition["display_width_px"], definition["display_height_px"]) == MODEL


async def test_screenshots_come_at_the_model_size(big_tool: ComputerTool) -> None:
    [shot] = await big_tool.execute("screenshot")
    assert image_size(shot) == MODEL
    assert big_tool.actions.last_frame == base64.b64decode(shot["source"]["data"])


async def test_a_click_on_the_small_target_in_model_coordinates_lands_on_it(
    big_tool: ComputerTool, big_page: Page
) -> None:
    x, y = SMALL_TARGET.on(MODEL)  # where the model sees the square in its 1366x768 image
    [after] = await big_tool.execute("left_click", coordinate=[x, y])
    assert big_page.url.endswith("#hit")
    assert image_size(after) == MODEL
    [position] = await big_tool.execute("cursor_position")
    assert position == {"type": "text", "text": f"X={x}, Y={y}"}


async def test_without_scaling_the_same_click_misses(big_page: Page) -> None:
    actions = PageActions(page=big_page)
    tool = ComputerTool(actions=actions, width=SCREEN[0], height=SCREEN[1], scaling=False)
    await tool.execute("left_click", coordinate=SMALL_TARGET.on(MODEL))
    assert "#miss-" in big_page.url
    await actions.aclose()


async def test_coordinates_are_checked_against_the_model_display(big_tool: ComputerTool) -> None:
    outside = {"action": "left_click", "coordinate": [1366, 5]}
    result = await big_tool.tool_result("toolu_1", outside)
    assert result["is_error"] is True
    assert "outside the 1366x768 display" in result["content"][0]["text"]


async def test_zoom_takes_a_region_of_the_model_display_and_fits_it_to_that_display(
    big_tool: ComputerTool,
) -> None:
    from PIL import Image

    x, y = SMALL_TARGET.on(MODEL)
    [zoomed] = await big_tool.execute("zoom", region=[x - 3, y - 3, x + 3, y + 3])
    width, height = image_size(zoomed)
    assert max(width, height) <= max(MODEL) and MODEL[1] in (width, height)
    image = Image.open(io.BytesIO(base64.b64decode(zoomed["source"]["data"]))).convert("RGB")
    assert image.getpixel((width // 2, height // 2)) == (0xDD, 0x22, 0x22)  # the red square
