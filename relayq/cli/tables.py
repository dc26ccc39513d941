"""Plain-text tables. Columns are as wide as their widest cell. When a terminal is narrower, the
`optional` columns are left out (in the order given), then the `shrink` columns give way (cut
with `…`); other columns, ids above all, are never cut. Output that is not a terminal is never
cut."""

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
    optional: Sequence[str] = (),
    numeric: Sequence[str] = (),
    color: bool = False,
) -> list[str]:
    widths = {h: max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)}
    shown = list(headers)
    if width is not None:
        floors = {
            h: min(w, max(MIN_SHRUNK, len(h))) if h in shrink else w for h, w in widths.items()
        }
        for name in optional:
            if _total([floors[h] for h in shown]) <= width:
                break
            if name in shown:
                shown.remove(name)
        excess = _total([widths[h] for h in shown]) - width
        for name in shrink:
            if excess > 0 and name in shown:
                give = min(excess, widths[name] - floors[name])
                widths[name] -= give
                excess -= give

    def line(cells: Sequence[str]) -> str:
        out = []
        for h in shown:
            cell = cells[headers.index(h)]
            cell = cell if len(cell) <= widths[h] else cell[: max(widths[h] - 1, 0)] + "…"
            out.append(cell.rjust(widths[h]) if h in numeric else cell.ljust(widths[h]))
        return GAP.join(out).rstrip()

    return [style(line(headers), BOLD, enabled=color), *(line(r) for r in rows)]


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)
