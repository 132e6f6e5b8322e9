"""Formatting for people: aligned tables and sparklines."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import click

BARS = "▁▂▃▄▅▆▇█"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, under a header line."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def sparkline(values: Sequence[float], width: int = 60) -> str:
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


def number(value: float | None, digits: int = 4) -> str:
    """A float in ``digits`` significant figures, or '-' for none."""
    return "-" if value is None else f"{value:.{digits}g}"
