"""Plain terminal output: ANSI styles when writing to a terminal (and NO_COLOR is unset), the
terminal's size, and a frame that redraws itself in place."""

from __future__ import annotations

import os
import shutil
from typing import TextIO

BOLD, DIM, ITALIC = "1", "2", "3"
RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN = "31", "32", "33", "34", "35", "36"

_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def styled(stream: TextIO) -> bool:
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def style(text: str, *codes: str, enabled: bool = True) -> str:
    if not enabled or not codes or not text:
        return text
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"


def size() -> tuple[int, int]:
    """(columns, lines) of the terminal; COLUMNS/LINES override, 80x24 when unknown."""
    found = shutil.get_terminal_size((80, 24))
    return max(found.columns, 20), max(found.lines, 5)


def wrap(text: str, width: int) -> list[str]:
    """Hard-wraps `text` at `width` columns, keeping its own line breaks."""
    lines: list[str] = []
    for line in text.split("\n"):
        line = line.expandtabs(4)
        if not line:
            lines.append("")
            continue
        while len(line) > width:
            cut = line.rfind(" ", 0, width + 1)
            cut = cut if cut > width // 2 else width
            lines.append(line[:cut].rstrip())
            line = line[cut:].lstrip(" ")
        lines.append(line)
    return lines


class Frame:
    """Lines drawn in place: each `draw` replaces the previous frame. Frames must not be taller
    than the terminal, or the part that scrolled off cannot be redrawn."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._height = 0

    def __enter__(self) -> Frame:
        self._out.write(_HIDE_CURSOR)
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.write(_SHOW_CURSOR)
        self._out.flush()

    def draw(self, lines: list[str]) -> None:
        self.clear()
        self._out.write("".join(line + "\x1b[K\n" for line in lines))
        self._out.flush()
        self._height = len(lines)

    def clear(self) -> None:
        if self._height:
            self._out.write(f"\x1b[{self._height}F\x1b[J")
        self._height = 0
