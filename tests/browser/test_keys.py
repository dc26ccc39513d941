"""xdotool -> Playwright key mapping (pure; no browser)."""

from __future__ import annotations

import pytest

from relayq.llm.keys import parse_chord, parse_key_sequence, parse_modifiers, to_playwright_key


@pytest.mark.parametrize(
    ("xdotool", "playwright"),
    [
        ("Return", "Enter"),
        ("KP_Enter", "NumpadEnter"),
        ("KP_0", "Digit0"),
        ("BackSpace", "Backspace"),
        ("Page_Down", "PageDown"),
        ("Prior", "PageUp"),
        ("super", "Meta"),
        ("Super_L", "Meta"),
        ("ctrl", "Control"),
        ("Escape", "Escape"),
        ("F12", "F12"),
        ("space", "Space"),
        ("minus", "-"),
        ("a", "KeyA"),
        ("7", "Digit7"),
        ("A", "A"),
        ("ENTER", "Enter"),
    ],
)
def test_xdotool_names_map_to_playwright_names(xdotool: str, playwright: str) -> None:
    assert to_playwright_key(xdotool) == playwright


def test_combos_split_into_keys_pressed_in_order() -> None:
    assert parse_chord("ctrl+shift+t") == ["Control", "Shift", "KeyT"]
    assert parse_chord("ctrl++") == ["Control", "+"]
    assert parse_chord("+") == ["+"]


def test_spaces_separate_successive_combos() -> None:
    assert parse_key_sequence("ctrl+a  Delete") == [["Control", "KeyA"], ["Delete"]]


@pytest.mark.parametrize("bad", ["Frobnicate", "F13", "é", "ctrl+", "", "   "])
def test_unknown_or_malformed_keys_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_key_sequence(bad)


def test_modifiers_accept_only_modifier_keys() -> None:
    assert parse_modifiers("ctrl+shift") == ["Control", "Shift"]
    assert parse_modifiers(None) == []
    with pytest.raises(ValueError, match="not a modifier key"):
        parse_modifiers("shift+a")
