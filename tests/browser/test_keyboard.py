"""Typing and xdotool key names through ComputerTool, checked by what the page saw."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from relayq.llm.computer_tool import ComputerTool

pytestmark = pytest.mark.browser


@pytest.fixture
async def controls(page: Page, base_url: str) -> Page:
    await page.goto(f"{base_url}/controls.html")
    return page


async def keydowns(page: Page) -> list[str]:
    keys: list[str] = await page.evaluate("window.eventsOf('keydown').map(e => e.key)")
    return keys


async def test_type_fills_the_focused_input(tool: ComputerTool, controls: Page) -> None:
    await controls.focus("#text")
    await tool.execute("type", text="Hello, wörld! 42")
    assert await controls.input_value("#text") == "Hello, wörld! 42"


async def test_ctrl_a_selects_all_so_typing_replaces_the_text(
    tool: ComputerTool, controls: Page
) -> None:
    await controls.focus("#text")
    await tool.execute("type", text="old text")
    await tool.execute("key", text="ctrl+a")
    selection = "[document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    assert await controls.evaluate(selection) == [0, 8]
    await tool.execute("type", text="new")
    assert await controls.input_value("#text") == "new"


async def test_return_submits_the_form(tool: ComputerTool, controls: Page) -> None:
    await controls.focus("#name")
    await tool.execute("type", text="Ada")
    await tool.execute("key", text="Return")
    await controls.wait_for_function("window.submitted === 'Ada'")


async def test_backspace_deletes_the_last_character(tool: ComputerTool, controls: Page) -> None:
    await controls.focus("#text")
    await tool.execute("type", text="abc")
    await tool.execute("key", text="BackSpace")
    assert await controls.input_value("#text") == "ab"


async def test_keypad_digits_and_keypad_enter_reach_the_page(
    tool: ComputerTool, controls: Page
) -> None:
    await controls.focus("#name")
    await tool.execute("key", text="KP_4 KP_2")
    await tool.execute("key", text="KP_Enter")
    await controls.wait_for_function("window.submitted === '42'")
    enter = await controls.evaluate("window.eventsOf('keydown').at(-1)")
    assert (enter["key"], enter["code"], enter["location"]) == ("Enter", "NumpadEnter", 3)


async def test_shift_tab_moves_focus_backwards(tool: ComputerTool, controls: Page) -> None:
    await controls.focus("#name")
    await tool.execute("key", text="shift+Tab")
    assert await controls.evaluate("document.activeElement.id") == "text"


@pytest.mark.parametrize(
    ("xdotool", "expected"),
    [
        ("Page_Down", ["PageDown"]),
        ("alt+Tab", ["Alt", "Tab"]),
        ("super", ["Meta"]),
        ("ctrl+shift+t", ["Control", "Shift", "T"]),
        ("Escape F2 Home", ["Escape", "F2", "Home"]),
        ("Up Left", ["ArrowUp", "ArrowLeft"]),
    ],
)
async def test_xdotool_key_names_arrive_as_dom_keys(
    tool: ComputerTool, controls: Page, xdotool: str, expected: list[str]
) -> None:
    await controls.focus("#text")
    await tool.execute("key", text=xdotool)
    assert await keydowns(controls) == expected


async def test_key_combo_holds_modifiers_on_the_main_key(
    tool: ComputerTool, controls: Page
) -> None:
    await controls.focus("#text")
    await tool.execute("key", text="ctrl+shift+t")
    last = await controls.evaluate("window.eventsOf('keydown').at(-1)")
    assert (last["ctrl"], last["shift"], last["alt"]) == (True, True, False)
    released = await controls.evaluate("window.eventsOf('keyup').map(e => e.key)")
    assert released == ["T", "Shift", "Control"]


async def test_hold_key_keeps_the_key_down_for_the_duration(
    tool: ComputerTool, controls: Page
) -> None:
    await controls.focus("#text")
    duration = 0.3
    await tool.execute("hold_key", text="shift", duration=duration)
    [down] = await controls.evaluate("window.eventsOf('keydown')")
    [up] = await controls.evaluate("window.eventsOf('keyup')")
    assert down["key"] == up["key"] == "Shift"
    assert up["t"] - down["t"] >= duration * 1000 * 0.8


async def test_key_repeat_presses_the_key_that_many_times(
    tool: ComputerTool, controls: Page
) -> None:
    await controls.click("#text")
    await tool.execute("type", text="abcdef")
    await tool.execute("key", text="BackSpace", repeat=4)
    assert await controls.input_value("#text") == "ab"


async def test_page_actions_hold_key_holds_half_a_second_by_default(
    tool: ComputerTool, controls: Page
) -> None:
    """livekit's PageActions.hold_key(text, duration=0.5)."""
    await controls.focus("#text")
    await tool.actions.hold_key("shift")
    [down] = await controls.evaluate("window.eventsOf('keydown')")
    [up] = await controls.evaluate("window.eventsOf('keyup')")
    assert down["key"] == up["key"] == "Shift"
    assert 450 <= up["t"] - down["t"] < 2000
