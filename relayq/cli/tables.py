"""Plain-text tables. Columns are as wide as their widest cell; when a terminal is narrower,
only the columns named `shrink` give way (cut with `…`), so ids are never cut: a row that still
does not fit wraps in the terminal rather than losing characters. Output that is not a terminal
is never cut."""

from __future__ import annotations

from collections.abc import Sequence

from relayq.cli.terminal import BOLD, style

GAP = "  "
MIN_SHRUNK = 8


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    shrink: Sequence[str] = (),
    numeric: Sequence[str] = (),
    color: bool = False,
) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if width is not None:
        widths = _fit(list(headers), widths, width, shrink)
    right = {headers.index(h) for h in numeric if h in headers}

    def line(cells: Sequence[str]) -> str:
        shown = []
        for i, cell in enumerate(cells):
            cell = _cut(cell, widths[i])
            shown.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return GAP.join(shown).rstrip()

    return [style(line(headers), BOLD, enabled=color), *(line(r) for r in rows)]


def _fit(headers: list[str], widths: list[int], width: int, shrink: Sequence[str]) -> list[int]:
    excess = sum(widths) + len(GAP) * (len(widths) - 1) - width
    for name in shrink:
        if excess <= 0:
            break
        if name not in headers:
            continue
        i = headers.index(name)
        floor = min(widths[i], max(MIN_SHRUNK, len(name)))
        give = min(excess, widths[i] - floor)
        widths[i] -= give
        excess -= give
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
