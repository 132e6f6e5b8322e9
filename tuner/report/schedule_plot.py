"""``tuner schedule --plot``: a schedule's learning rate at every step, each variant of its
settings a line, drawn by matplotlib to a PNG or by plotly to a self-contained HTML file."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io
from matplotlib.figure import Figure

from tuner.errors import BadInput

KINDS = (".png", ".html")


def check_kind(path: Path) -> None:
    """BadInput unless ``path`` names a kind of file the plot can be."""
    if path.suffix.lower() not in KINDS:
        raise BadInput(f"--plot {path}: give a file ending in .png (matplotlib) or .html (plotly)")


def plot_schedule(
    title: str, variants: Sequence[tuple[Mapping[str, Any], Sequence[float]]], path: Path
) -> bytes | str:
    """The plot of each variant's ``(settings, rate at every step)``, one line each, as the
    PNG's bytes or the HTML's text that ``path``'s extension asks for."""
    labels = [
        " ".join(f"{k}={v}" for k, v in settings.items()) or "rate" for settings, _ in variants
    ]
    if path.suffix.lower() == ".png":
        return _png(title, labels, [rates for _, rates in variants])
    return _html(title, labels, [rates for _, rates in variants])


def _png(title: str, labels: Sequence[str], curves: Sequence[Sequence[float]]) -> bytes:
    # A Figure of its own rather than pyplot's, which would choose a display for it.
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, rates in zip(labels, curves, strict=True):
        axes.plot(range(len(rates)), rates, label=label)
    axes.set(title=title, xlabel="step", ylabel="learning rate")
    axes.grid(alpha=0.3)
    if len(curves) > 1:
        axes.legend()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=150)
    return out.getvalue()


def _html(title: str, labels: Sequence[str], curves: Sequence[Sequence[float]]) -> str:
    figure = go.Figure()
    for label, rates in zip(labels, curves, strict=True):
        figure.add_scatter(x=list(range(len(rates))), y=list(rates), mode="lines", name=label)
    figure.update_layout(
        title_text=title, xaxis_title="step", yaxis_title="learning rate", template="plotly_white"
    )
    return plotly.io.to_html(figure, include_plotlyjs=True, full_html=True)
