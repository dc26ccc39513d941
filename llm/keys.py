"""xdotool key names, as Claude's computer tool sends them, mapped to Playwright key names.

`parse_key_sequence("ctrl+shift+t Return")` -> `[["Control", "Shift", "KeyT"], ["Enter"]]`: one
chord per whitespace-separated group, each chord's keys pressed in order and released in reverse.
Names are matched case-insensitively; single characters are case-sensitive ("A" is not "a").
"""

from __future__ import annotations

import string

MODIFIER_KEYS: frozenset[str] = frozenset(
    {"Shift", "ShiftRight", "Control", "ControlRight", "Alt", "AltRight", "Meta", "MetaRight"}
)

XDOTOOL_TO_PLAYWRIGHT: dict[str, str] = {
    # modifiers
    "shift": "Shift",
    "shift_l": "Shift",
    "shift_r": "ShiftRight",
    "ctrl": "Control",
    "control": "Control",
    "control_l": "Control",
    "control_r": "ControlRight",
    "alt": "Alt",
    "alt_l": "Alt",
    "alt_r": "AltRight",
    "altgr": "AltGraph",
    "iso_level3_shift": "AltGraph",
    "super": "Meta",
    "super_l": "Meta",
    "super_r": "MetaRight",
    "meta": "Meta",
    "meta_l": "Meta",
    "meta_r": "MetaRight",
    "cmd": "Meta",
    "command": "Meta",
    "win": "Meta",
    # editing and whitespace
    "return": "Enter",
    "enter": "Enter",
    "linefeed": "Enter",
    "tab": "Tab",
    "iso_left_tab": "Tab",
    "backspace": "Backspace",
    "delete": "Delete",
    "del": "Delete",
    "escape": "Escape",
    "esc": "Escape",
    "space": "Space",
    "insert": "Insert",
    # navigation
    "home": "Home",
    "end": "End",
    "page_up": "PageUp",
    "pageup": "PageUp",
    "prior": "PageUp",
    "page_down": "PageDown",
    "pagedown": "PageDown",
    "next": "PageDown",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "arrowup": "ArrowUp",
    "arrowdown": "ArrowDown",
    "arrowleft": "ArrowLeft",
    "arrowright": "ArrowRight",
    # locks and system
    "caps_lock": "CapsLock",
    "capslock": "CapsLock",
    "num_lock": "NumLock",
    "numlock": "NumLock",
    "scroll_lock": "ScrollLock",
    "scrolllock": "ScrollLock",
    "pause": "Pause",
    "break": "Pause",
    "print": "PrintScreen",
    "printscreen": "PrintScreen",
    "sys_req": "PrintScreen",
    "menu": "ContextMenu",
    "contextmenu": "ContextMenu",
    # keypad: Playwright's Numpad0-9 and NumpadDecimal are the num-lock-off keys (Insert, End,
    # ...), so keypad digits map to the digit keys, which type the same characters.
    "kp_enter": "NumpadEnter",
    "kp_add": "NumpadAdd",
    "kp_subtract": "NumpadSubtract",
    "kp_multiply": "NumpadMultiply",
    "kp_divide": "NumpadDivide",
    "kp_decimal": ".",
    "kp_separator": ",",
    "kp_equal": "=",
    "kp_space": "Space",
    "kp_tab": "Tab",
    "kp_home": "Numpad7",
    "kp_up": "Numpad8",
    "kp_prior": "Numpad9",
    "kp_page_up": "Numpad9",
    "kp_left": "Numpad4",
    "kp_begin": "Numpad5",
    "kp_right": "Numpad6",
    "kp_end": "Numpad1",
    "kp_down": "Numpad2",
    "kp_next": "Numpad3",
    "kp_page_down": "Numpad3",
    "kp_insert": "Numpad0",
    "kp_delete": "NumpadDecimal",
    # media
    "xf86audiomute": "AudioVolumeMute",
    "xf86audiolowervolume": "AudioVolumeDown",
    "xf86audioraisevolume": "AudioVolumeUp",
    "xf86audionext": "MediaTrackNext",
    "xf86audioprev": "MediaTrackPrevious",
    "xf86audioplay": "MediaPlayPause",
    # punctuation keysyms
    "minus": "-",
    "equal": "=",
    "plus": "+",
    "comma": ",",
    "period": ".",
    "slash": "/",
    "backslash": "\\",
    "semicolon": ";",
    "colon": ":",
    "apostrophe": "'",
    "quoteright": "'",
    "quotedbl": '"',
    "grave": "`",
    "quoteleft": "`",
    "asciitilde": "~",
    "exclam": "!",
    "at": "@",
    "numbersign": "#",
    "dollar": "$",
    "percent": "%",
    "asciicircum": "^",
    "ampersand": "&",
    "asterisk": "*",
    "parenleft": "(",
    "parenright": ")",
    "underscore": "_",
    "bracketleft": "[",
    "bracketright": "]",
    "braceleft": "{",
    "braceright": "}",
    "bar": "|",
    "less": "<",
    "greater": ">",
    "question": "?",
    **{f"f{n}": f"F{n}" for n in range(1, 13)},
    **{f"kp_{d}": d for d in string.digits},
}

# Characters of Playwright's US keyboard layout; any other single character is unknown to it.
_LAYOUT_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation + " ")


def to_playwright_key(name: str) -> str:
    """One xdotool key name -> the Playwright key name; ValueError if there is none."""
    if len(name) == 1:
        if name in _LAYOUT_CHARACTERS:
            return _physical_key(name)
        raise ValueError(
            f"unknown key {name!r}: only US-keyboard characters can be pressed as keys; "
            "use the type action for other text"
        )
    try:
        return _physical_key(XDOTOOL_TO_PLAYWRIGHT[name.lower()])
    except KeyError:
        raise ValueError(
            f"unknown key {name!r}; use xdotool key names such as Return, Tab, BackSpace, "
            "Escape, Page_Down, Up, F5, KP_Enter, ctrl, shift, alt, super"
        ) from None


def _physical_key(key: str) -> str:
    # Playwright shifts a key held with Shift only when it is named by its code
    # ("shift+t" must give "T", as xdotool does), so lower-case letters and digits go by code.
    if key in string.ascii_lowercase:
        return f"Key{key.upper()}"
    if key in string.digits:
        return f"Digit{key}"
    return key


def parse_chord(chord: str) -> list[str]:
    """'ctrl+shift+t' -> ['Control', 'Shift', 't']; a trailing '+' key is allowed ('ctrl++')."""
    if chord == "+":
        parts = ["+"]
    elif chord.endswith("++"):
        parts = [*chord[:-2].split("+"), "+"]
    else:
        parts = chord.split("+")
    if any(part == "" for part in parts):
        raise ValueError(f"malformed key combination {chord!r}")
    return [to_playwright_key(part) for part in parts]


def parse_key_sequence(text: str) -> list[list[str]]:
    """xdotool `key` argument -> chords to press one after another."""
    chords = [parse_chord(chord) for chord in text.split()]
    if not chords:
        raise ValueError("no key given")
    return chords


def parse_modifiers(text: str | None) -> list[str]:
    """Modifier keys held during a click or scroll ('shift', 'ctrl+shift') -> Playwright names."""
    if not text:
        return []
    keys: list[str] = []
    for name in text.replace("+", " ").split():
        key = to_playwright_key(name)
        if key not in MODIFIER_KEYS:
            raise ValueError(
                f"{name!r} is not a modifier key; clicks and scrolls accept shift, ctrl, alt "
                "and super in `text`"
            )
        keys.append(key)
    return keys
