"""Screenshots and zoom: formats, sizes, and pixels taken from the right place."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest
from playwright.async_api import Page

from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import PageActions

pytestmark = pytest.mark.browser

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


class Png:
    """Just enough PNG decoding for 8-bit RGB/RGBA, non-interlaced images (what Chromium writes)."""

    def __init__(self, data: bytes) -> None:
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        pos, idat = 8, b""
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
            if kind == b"IHDR":
                self.width, self.height, depth, color, _, _, interlace = struct.unpack(
                    ">IIBBBBB", body
                )
                assert (depth, interlace) == (8, 0) and color in (2, 6)
                self.channels = 4 if color == 6 else 3
            elif kind == b"IDAT":
                idat += body
            pos += 12 + length
        self.rows = self._unfilter(zlib.decompress(idat))

    def _unfilter(self, raw: bytes) -> list[bytearray]:
        stride = self.width * self.channels
        rows: list[bytearray] = []
        prior = bytearray(stride)
        for y in range(self.height):
            kind = raw[y * (stride + 1)]
            row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
            if kind == 2:  # "Up", nearly every row Chromium writes: a fast path
                row = bytearray((a + b) & 0xFF for a, b in zip(row, prior, strict=True))
            elif kind != 0:
                self._unfilter_bytewise(kind, row, prior)
            rows.append(row)
            prior = row
        return rows

    def _unfilter_bytewise(self, kind: int, row: bytearray, prior: bytearray) -> None:
        bpp = self.channels
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            up, up_left = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            else:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                row[i] = (row[i] + pred) & 0xFF

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = x * self.channels
        r, g, b = self.rows[y][i : i + 3]
        return r, g, b


def image_bytes(block: dict[str, Any], media_type: str = "image/png") -> bytes:
    assert block["type"] == "image"
    assert block["source"]["type"] == "base64"
    assert block["source"]["media_type"] == media_type
    return base64.b64decode(block["source"]["data"])


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    pos = 2
    while pos < len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no SOF marker")


async def box_of(page: Page, selector: str) -> list[int]:
    box = await page.locator(selector).bounding_box()
    assert box is not None
    x, y = round(box["x"]), round(box["y"])
    return [x, y, x + round(box["width"]), y + round(box["height"])]


@pytest.fixture
async def controls(page: Page, base_url: str) -> Page:
    await page.goto(f"{base_url}/controls.html")
    return page


async def test_screenshot_is_a_png_at_the_declared_display_size(
    tool: ComputerTool, controls: Page
) -> None:
    [block] = await tool.execute("screenshot")
    png = Png(image_bytes(block))
    assert (png.width, png.height) == (1280, 720)
    x1, y1, x2, y2 = await box_of(controls, "#red")
    assert png.pixel((x1 + x2) // 2, (y1 + y2) // 2) == RED


async def test_screenshot_is_kept_as_last_frame(tool: ComputerTool, controls: Page) -> None:
    assert tool.actions.last_frame is None
    [block] = await tool.execute("screenshot")
    assert tool.actions.last_frame == image_bytes(block)


async def test_jpeg_screenshots_are_jpegs_at_display_size(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, image_format="jpeg", image_quality=60)
    tool = ComputerTool(actions=actions)
    await page.goto(f"{base_url}/controls.html")
    [block] = await tool.execute("screenshot")
    assert jpeg_size(image_bytes(block, "image/jpeg")) == (1280, 720)


async def test_webp_screenshots_are_webp(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, image_format="webp", image_quality=80)
    tool = ComputerTool(actions=actions)
    await page.goto(f"{base_url}/controls.html")
    [block] = await tool.execute("screenshot")
    data = image_bytes(block, "image/webp")
    assert (data[:4], data[8:12]) == (b"RIFF", b"WEBP")


async def test_zoom_on_a_coloured_div_returns_it_scaled_to_the_display(
    tool: ComputerTool, controls: Page
) -> None:
    region = await box_of(controls, "#red")  # 100x50: scaled 12.8x to fit 1280x720
    [block] = await tool.execute("zoom", region=region)
    png = Png(image_bytes(block))
    assert (png.width, png.height) == (1280, 640)
    assert {png.pixel(x, y) for x in (0, 640, 1279) for y in (0, 320, 639)} == {RED}


async def test_zoom_across_two_divs_keeps_left_and_right_in_place(
    tool: ComputerTool, controls: Page
) -> None:
    x1, y1, _, y2 = await box_of(controls, "#red")
    _, _, x2, _ = await box_of(controls, "#blue")
    [block] = await tool.execute("zoom", region=[x1, y1, x2, y2])  # 200x50 -> 1280x320
    png = Png(image_bytes(block))
    assert (png.width, png.height) == (1280, 320)
    assert png.pixel(630, 160) == RED
    assert png.pixel(650, 160) == BLUE


async def test_zoom_uses_viewport_coordinates_on_a_scrolled_page(
    tool: ComputerTool, page: Page, base_url: str
) -> None:
    await page.goto(f"{base_url}/scroll.html")
    await tool.execute("scroll", coordinate=[640, 360], scroll_direction="down", scroll_amount=8)
    region = await box_of(page, "#marker")
    assert region[1] == 1000 - 800
    [block] = await tool.execute("zoom", region=region)
    png = Png(image_bytes(block))
    assert (png.width, png.height) == (1280, 640)  # 120x60 scaled by 32/3
    assert {png.pixel(x, y) for x in (2, 640, 1277) for y in (2, 320, 637)} == {GREEN}
