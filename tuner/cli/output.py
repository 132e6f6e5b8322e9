"""Formatting for people: aligned tables and text that fit a terminal, and sparklines."""

from __future__ import annotations

import json
import math
import shutil
import sys
import textwrap
from collections.abc import Callable, Collection, Sequence
from typing import Any

import click

# The tables of trials share their numbers' form with the report's.
from tuner.columns import number as number

BARS = "▁▂▃▄▅▆▇█"
# What people read fits their terminal, unless they ask for --wide; piped or redirected, where
# no terminal says how wide, it fits 100 columns.
WIDTH = 100
# The points of a sparkline; fewer where a line must fit a width.
SPARKLINE = 60


def wide_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--wide``, passed on as ``width``: None for whole tables, else
    :func:`terminal_width`."""
    return click.option(
        "--wide",
        "width",
        is_flag=True,
        callback=lambda ctx, param, wide: None if wide else terminal_width(),
        help="Show tables whole, however wide; by default they fit the terminal "
        f"({WIDTH} columns when piped).",
    )(command)


def terminal_width() -> int:
    """The columns of the terminal that stdout shows on (``COLUMNS`` where set), or ``WIDTH``
    where stdout is no terminal."""
    if not sys.stdout.isatty():
        return WIDTH
    return shutil.get_terminal_size((WIDTH, 24)).columns


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int | None = None,
    below: Collection[str] = (),
    shrink: Collection[str] = (),
) -> str:
    """Left-aligned columns, two spaces apart, under a header line.

    A table wider than ``width`` first moves the columns named in ``below`` out, each cell to
    a line of its own under its row; then it narrows the columns named in ``shrink``, the
    widest first but none below its header, cutting their cells with '…'.
    """
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    shown = list(range(len(headers)))
    moved: list[int] = []
    if width is not None and _span(widths, shown) > width:
        moved = [i for i in shown if headers[i] in below]
        shown = [i for i in shown if i not in moved]
        narrow = [i for i in shown if headers[i] in shrink]
        while narrow and _span(widths, shown) > width:
            widest = max(narrow, key=lambda i: widths[i])
            if widths[widest] <= len(headers[widest]):
                break
            widths[widest] -= 1
    indent = widths[shown[0]] + 2
    lines = [_line(cells[0], widths, shown), "  ".join("-" * widths[i] for i in shown)]
    for row in cells[1:]:
        lines.append(_line(row, widths, shown))
        for i in moved:
            if row[i]:
                label = f"{' ' * indent}{headers[i]}: "
                lines.append(wrap(label + row[i], width, len(label)))
    return "\n".join(lines)


def _span(widths: Sequence[int], shown: Sequence[int]) -> int:
    return sum(widths[i] for i in shown) + 2 * (len(shown) - 1)


def _line(row: Sequence[str], widths: Sequence[int], shown: Sequence[int]) -> str:
    cut = [row[i] if len(row[i]) <= widths[i] else f"{row[i][: widths[i] - 1]}…" for i in shown]
    return "  ".join(c.ljust(widths[i]) for c, i in zip(cut, shown, strict=True)).rstrip()


def wrap(text: str, width: int | None, indent: int = 0) -> str:
    """``text`` in lines of at most ``width``, each after the first ``indent`` columns in;
    unchanged without a width."""
    if width is None:
        return text
    return textwrap.fill(text, width, subsequent_indent=" " * indent, break_on_hyphens=False)


def sparkline(values: Sequence[float], width: int = SPARKLINE) -> str:
    """The values as one line of block characters, resampled to at most ``width``."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        BARS[round((v - low) / span * (len(BARS) - 1))] if math.isfinite(v) else "×" for v in values
    )
