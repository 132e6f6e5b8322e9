"""The learning-rate slice of a report: each finished trial's value against its learning rate,
one panel an optimizer, since each optimizer has its own good range; pruned and diverged
trials marked apart, at the value where they stopped, since their values are not comparable
with complete ones but say where a rate failed."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tuner.report.figures import TEMPLATE, colors, finite, label, legend_below
from tuner.report.read import StudyData
from tuner.results import FINISHED, Outcome

# Panels a row holds.
COLUMNS = 3


def lr_slice(data: StudyData) -> go.Figure | None:
    """The slice, or None where no finished trial has a value and a learning rate."""
    trials = [
        t for t in data.trials if t.outcome in FINISHED and finite(t.value) and t.lr is not None
    ]
    optimizers = [o for o in data.optimizers if any(t.optimizer == o for t in trials)]
    if not optimizers:
        return None
    rows = math.ceil(len(optimizers) / COLUMNS)
    columns = min(COLUMNS, len(optimizers))
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=optimizers,
        horizontal_spacing=0.06,
        vertical_spacing=0.14 / rows,
    )
    schedules = list(dict.fromkeys(t.schedule for t in data.trials if t.schedule))
    palette = colors(schedules)
    named: set[tuple[str, bool]] = set()
    for i, optimizer in enumerate(optimizers):
        row, col = divmod(i, COLUMNS)
        for schedule in schedules:
            for complete in (True, False):
                ours = [
                    t
                    for t in trials
                    if t.optimizer == optimizer
                    and t.schedule == schedule
                    and (t.outcome is Outcome.COMPLETE) == complete
                ]
                if not ours:
                    continue
                key = (schedule, complete)
                figure.add_scatter(
                    x=[t.lr for t in ours],
                    y=[t.value for t in ours],
                    mode="markers",
                    name=schedule if complete else f"{schedule}, pruned or diverged",
                    legendgroup=schedule,
                    showlegend=key not in named,
                    marker={
                        "color": palette[schedule],
                        "symbol": "circle" if complete else "x-thin-open",
                        "size": 8,
                        "line": {"width": 1.5, "color": palette[schedule]},
                    },
                    text=[f"{label(t)} ({t.outcome})" for t in ours],
                    hovertemplate="%{text}<br>lr %{x:.3g}: %{y:.4g}<extra></extra>",
                    row=row + 1,
                    col=col + 1,
                )
                named.add(key)
    figure.update_xaxes(type="log", title_text="lr")
    figure.update_yaxes(title_text=data.summary.metric, col=1)
    figure.update_layout(template=TEMPLATE)
    return legend_below(figure, len(named), 300 * rows + 60)
