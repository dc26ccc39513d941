"""Navigation, waiting and page settling."""

from __future__ import annotations

import time

import pytest
from playwright.async_api import Page, Route

from relayq.llm.computer_tool import ComputerTool
from relayq.llm.page_actions import PageActionError, PageActions

pytestmark = pytest.mark.browser


async def center(page: Page, selector: str) -> list[int]:
    box = await page.locator(selector).bounding_box()
    assert box is not None
    return [round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)]


async def test_navigate_go_back_and_go_forward_move_through_history(
    actions: PageActions, page: Page, base_url: str
) -> None:
    await actions.navigate(f"{base_url}/page_a.html")
    await actions.navigate(f"{base_url}/page_b.html")
    assert await page.title() == "page B"
    assert await actions.go_back() is True
    assert await page.title() == "page A"
    assert await actions.go_forward() is True
    assert await page.title() == "page B"


async def test_go_back_without_history_returns_false(actions: PageActions, page: Page) -> None:
    assert await actions.go_back() is False


async def test_unreachable_navigation_is_a_readable_error(actions: PageActions) -> None:
    with pytest.raises(PageActionError, match=r"navigation to http://127.0.0.1:9/ failed: .*ERR_"):
        await actions.navigate("http://127.0.0.1:9/")


async def test_blocked_navigation_says_it_was_blocked(
    actions: PageActions, page: Page, base_url: str
) -> None:
    async def block(route: Route) -> None:
        await route.abort("blockedbyclient")

    await page.route("**/page_b.html", block)
    with pytest.raises(PageActionError, match="navigation blocked: net::ERR_BLOCKED_BY_CLIENT"):
        await actions.navigate(f"{base_url}/page_b.html")


async def test_clicking_a_slow_link_settles_on_the_new_page(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, settle_timeout=10.0)
    tool = ComputerTool(actions=actions)
    await actions.navigate(f"{base_url}/page_a.html")
    await tool.execute("left_click", coordinate=await center(page, "#to-b"))
    assert await page.title() == "page B"
    assert tool.last_settle_ms >= 250
    await tool.aclose()


async def test_settle_waits_for_a_request_the_click_started(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, settle_timeout=10.0)
    tool = ComputerTool(actions=actions)
    await page.goto(f"{base_url}/fetch.html")
    await tool.execute("left_click", coordinate=await center(page, "#quick"))
    assert await page.text_content("#status") == "ok"
    assert tool.last_settle_ms >= 150
    await tool.aclose()


async def test_settle_gives_up_at_the_cap_when_a_request_hangs(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, settle_timeout=0.3)
    tool = ComputerTool(actions=actions)
    await page.goto(f"{base_url}/fetch.html")
    started = time.monotonic()
    await tool.execute("left_click", coordinate=await center(page, "#hang"))
    assert 290 <= tool.last_settle_ms < 1500
    assert time.monotonic() - started < 3.0
    assert await page.text_content("#status") == "idle"
    await tool.aclose()


async def test_settle_on_a_quiet_page_does_not_wait_for_the_cap(page: Page, base_url: str) -> None:
    actions = PageActions(page=page, settle_timeout=5.0)
    tool = ComputerTool(actions=actions)
    await page.goto(f"{base_url}/page_b.html")
    await tool.execute("mouse_move", coordinate=[5, 5])
    assert tool.last_settle_ms < 1000
    await tool.aclose()


async def test_wait_returns_a_screenshot_after_the_duration(tool: ComputerTool) -> None:
    started = time.monotonic()
    [block] = await tool.execute("wait", duration=0.2)
    assert time.monotonic() - started >= 0.2
    assert block["type"] == "image"
