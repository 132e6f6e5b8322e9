"""The learning curves and schedules of a report's best trials, as they ran them: one colour
for each optimizer and schedule together, since two schedules of one optimizer can differ more
than two optimizers do."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tuner.report.figures import FAINT, TEMPLATE, colors, finite, label, legend_below, pair, scaled
from tuner.report.read import StudyData, StudyDetail
from tuner.results import Outcome, TrialDetail

# Points of a curve drawn: a trial keeps every step's loss, up to a million.
CURVE_POINTS = 1000


def _thin(values: Sequence[float]) -> tuple[list[int], list[float | None]]:
    """At most :data:`CURVE_POINTS` evenly spaced steps of a curve, its last among them;
    values that are not finite as gaps."""
    stride = max(1, math.ceil(len(values) / CURVE_POINTS))
    steps = [*range(0, len(values), stride)]
    if values and steps[-1] != len(values) - 1:
        steps.append(len(values) - 1)
    return steps, [values[s] if math.isfinite(values[s]) else None for s in steps]


def _style(trial: TrialDetail, palette: dict[str, str], shown: set[str]) -> dict[str, object]:
    """A trial's line, in the colour of its optimizer and schedule; the first of each pair
    names it in the legend (``shown`` holds those named), which hides them all."""
    faint = trial.outcome is not Outcome.COMPLETE
    first = pair(trial) not in shown
    shown.add(pair(trial))
    return {
        "name": pair(trial),
        "legendgroup": pair(trial),
        "showlegend": first,
        "hovertemplate": label(trial)
        + ("" if not faint else f" ({trial.outcome})")
        + "<br>step %{x}: %{y:.4g}<extra></extra>",
        "opacity": FAINT if faint else 1,
        "line": {
            "color": palette[pair(trial)],
            "dash": "dot" if faint else "solid",
            "width": 1.5,
        },
    }


def curves(data: StudyData, detail: StudyDetail) -> go.Figure | None:
    """The training loss at every step and the objective at every evaluation of the best
    trials, coloured by optimizer; pruned and diverged ones faint and dotted."""
    drawn = [t for t in detail.top if t.losses or t.evals]
    if not drawn:
        return None
    metric = data.summary.metric
    palette = colors(list(dict.fromkeys(pair(t) for t in detail.top)))
    shown: set[str] = set()
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("training loss, every step", f"validation {metric}, at each evaluation"),
        horizontal_spacing=0.08,
    )
    for trial in drawn:
        steps, losses = _thin(trial.losses)
        figure.add_scatter(
            x=steps, y=losses, mode="lines", **_style(trial, palette, shown), row=1, col=1
        )
        evals = [e for e in trial.evals if finite(e.get(metric))]
        figure.add_scatter(
            x=[e["step"] for e in evals],
            y=[e[metric] for e in evals],
            mode="lines+markers",
            **{**_style(trial, palette, shown), "showlegend": False},
            row=1,
            col=2,
        )
    figure.update_xaxes(title_text="step")
    figure.update_layout(template=TEMPLATE)
    legend_below(figure, len(palette), 430)
    scaled(figure, [v for t in drawn for v in t.losses], row=1, col=1)
    return scaled(figure, [e.get(metric) for t in drawn for e in t.evals], row=1, col=2)


def schedules(data: StudyData, detail: StudyDetail) -> go.Figure | None:
    """The learning rate of the best trials at every step, as they ran it, warmup included."""
    drawn = [t for t in detail.top if t.lrs]
    if not drawn:
        return None
    palette = colors(list(dict.fromkeys(pair(t) for t in detail.top)))
    shown: set[str] = set()
    figure = go.Figure()
    for trial in drawn:
        steps, rates = _thin(trial.lrs)
        figure.add_scatter(x=steps, y=rates, mode="lines", **_style(trial, palette, shown))
    figure.update_layout(template=TEMPLATE, xaxis_title="step", yaxis_title="learning rate")
    legend_below(figure, len(shown), 400)
    return scaled(figure, [v for t in drawn for v in t.lrs if v > 0])
