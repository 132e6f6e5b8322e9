"""The figures of a report of one study, each a plotly figure, or None where the study has
nothing to draw yet.

Optuna's own plots (``optuna.visualization``) draw the parameter importances and the parallel
coordinates; plotly draws the rest, which Optuna has no plot for: trials coloured by
optimizer, groups of complete trials beside the pruned ones, the curves and schedules tuner
records, and the confirmation runs. Every optimizer has one colour throughout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import optuna
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from tuner.report.read import StudyData, StudyDetail
from tuner.results import Comparison, Outcome, TrialDetail, TrialSummary

TEMPLATE = "plotly_white"
# Enough colours that the optimizers of a study rarely share one.
PALETTE = qualitative.Plotly + qualitative.Dark24
# Points of a curve drawn: a trial keeps every step's loss, up to a million.
CURVE_POINTS = 1000
# The settings every trial has, beside those of its optimizer and its schedule.
SHARED = ("lr", "warmup", "schedule")
FAINT = 0.35


def colors(names: Sequence[str]) -> dict[str, str]:
    """A colour for each name, in order, repeating past the palette's end."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def scaled(figure: go.Figure, values: Sequence[float], **axis: int) -> go.Figure:
    """``figure`` with its y axis logarithmic when the values are positive and span more than
    a factor of 20, as losses that fall or a few trials that go astray do."""
    shown = [v for v in values if finite(v)]
    if shown and min(shown) > 0 and max(shown) / min(shown) > 20:
        figure.update_yaxes(type="log", **axis)
    return figure


def label(trial: TrialSummary) -> str:
    return f"#{trial.number} {trial.optimizer}+{trial.schedule}"


def history(data: StudyData) -> go.Figure | None:
    """Every finished trial's value by trial number, coloured by optimizer (pruned and diverged
    ones hollow and faint), with the best complete value so far as a line."""
    finished = [t for t in data.trials if t.outcome in (Outcome.COMPLETE, Outcome.PRUNED)]
    finished += [t for t in data.trials if t.outcome is Outcome.DIVERGED and finite(t.value)]
    if not any(finite(t.value) for t in finished):
        return None
    metric = data.summary.metric
    figure = go.Figure()
    palette = colors(data.optimizers)
    complete_trials = [t for t in finished if t.outcome is Outcome.COMPLETE]
    for optimizer in data.optimizers:
        for complete in (True, False):
            ours = [
                t
                for t in finished
                if t.optimizer == optimizer and (t.outcome is Outcome.COMPLETE) == complete
            ]
            if not ours:
                continue
            figure.add_scatter(
                x=[t.number for t in ours],
                y=[t.value for t in ours],
                mode="markers",
                name=optimizer,
                legendgroup=optimizer,
                showlegend=complete or not any(t.optimizer == optimizer for t in complete_trials),
                marker={
                    "color": palette[optimizer],
                    "symbol": "circle" if complete else "circle-open",
                    "opacity": 1 if complete else FAINT,
                },
                text=[f"{label(t)} ({t.outcome})" for t in ours],
                hovertemplate="%{text}<br>" + metric + " %{y:.4g}<extra></extra>",
            )
    sign = -1 if data.summary.direction == "maximize" else 1
    steps, best = [], None
    for trial in sorted(data.trials, key=lambda t: t.number):
        if trial.outcome is Outcome.COMPLETE and finite(trial.value):
            if best is None or sign * trial.value < sign * best:
                best = trial.value
            steps.append((trial.number, best))
    last = max(t.number for t in finished)
    if steps and steps[-1][0] < last:
        # Flat to the last trial: none after the best beat it.
        steps.append((last, steps[-1][1]))
    if steps:
        figure.add_scatter(
            x=[n for n, _ in steps],
            y=[v for _, v in steps],
            mode="lines",
            line={"shape": "hv", "color": "black", "width": 2},
            name="best so far",
        )
    figure.update_layout(
        template=TEMPLATE,
        xaxis_title="trial",
        yaxis_title=metric,
        legend_title_text="optimizer",
        height=460,
        margin={"t": 30},
    )
    return scaled(figure, [t.value for t in finished if finite(t.value)])


def by_group(data: StudyData, comparison: Comparison) -> go.Figure | None:
    """The values of each optimizer's (or schedule's) complete trials as a box with every
    point, the leading group first; under them, apart, the values at which pruned and diverged
    trials were stopped, which are not comparable."""
    by = comparison.by
    groups = [g.name for g in comparison.groups]
    finished = (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED)
    if not any(t.outcome in finished and finite(t.value) for t in data.trials):
        return None
    names = {g.name: g for g in comparison.groups}
    ticks = {}
    for name in groups:
        counts = names[name].counts
        stopped = ", ".join(
            f"{n} {outcome}"
            for outcome, n in (("pruned", counts.pruned), ("diverged", counts.diverged))
            if n
        )
        ticks[name] = f"{name}<br>n={counts.complete}" + (f"<br>{stopped}" if stopped else "")
    palette = colors(data.optimizers if by == "optimizer" else groups)
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.06,
        subplot_titles=("complete trials", "pruned and diverged trials, when stopped"),
    )
    for row, outcomes in ((1, (Outcome.COMPLETE,)), (2, (Outcome.PRUNED, Outcome.DIVERGED))):
        for name in groups:
            values = [
                t
                for t in data.trials
                if getattr(t, by) == name and t.outcome in outcomes and finite(t.value)
            ]
            figure.add_box(
                x=[ticks[name]] * len(values),
                y=[t.value for t in values],
                name=name,
                legendgroup=name,
                showlegend=False,
                marker={"color": palette.get(name, "grey"), "opacity": 1 if row == 1 else FAINT},
                boxpoints="all",
                jitter=0.5,
                pointpos=0,
                fillcolor="rgba(0,0,0,0)" if row == 2 else None,
                line={"width": 1 if row == 1 else 0},
                text=[f"{label(t)} ({t.outcome})" for t in values],
                hovertemplate="%{text}<br>%{y:.4g}<extra></extra>",
                row=row,
                col=1,
            )
    figure.update_xaxes(categoryorder="array", categoryarray=[ticks[n] for n in groups])
    figure.update_yaxes(title_text=data.summary.metric, row=1, col=1)
    figure.update_layout(template=TEMPLATE, height=560, margin={"t": 30, "b": 90})
    for row, outcomes in ((1, (Outcome.COMPLETE,)), (2, (Outcome.PRUNED, Outcome.DIVERGED))):
        scaled(figure, [t.value for t in data.trials if t.outcome in outcomes], row=row, col=1)
    return figure


def _thin(values: Sequence[float]) -> tuple[list[int], list[float | None]]:
    """At most :data:`CURVE_POINTS` evenly spaced steps of a curve, its last among them;
    values that are not finite as gaps."""
    stride = max(1, math.ceil(len(values) / CURVE_POINTS))
    steps = [*range(0, len(values), stride)]
    if values and steps[-1] != len(values) - 1:
        steps.append(len(values) - 1)
    return steps, [values[s] if math.isfinite(values[s]) else None for s in steps]


def _style(trial: TrialDetail, palette: dict[str, str]) -> dict[str, object]:
    faint = trial.outcome is not Outcome.COMPLETE
    return {
        "legendgroup": str(trial.number),
        "opacity": FAINT if faint else 1,
        "line": {
            "color": palette.get(trial.optimizer or "", "grey"),
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
    palette = colors(data.optimizers)
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("training loss, every step", f"validation {metric}, at each evaluation"),
        horizontal_spacing=0.08,
    )
    for trial in drawn:
        steps, losses = _thin(trial.losses)
        name = f"{label(trial)}" + (
            "" if trial.outcome is Outcome.COMPLETE else f" ({trial.outcome})"
        )
        figure.add_scatter(
            x=steps, y=losses, mode="lines", name=name, **_style(trial, palette), row=1, col=1
        )
        evals = [e for e in trial.evals if finite(e.get(metric))]
        figure.add_scatter(
            x=[e["step"] for e in evals],
            y=[e[metric] for e in evals],
            mode="lines+markers",
            name=name,
            showlegend=False,
            **_style(trial, palette),
            row=1,
            col=2,
        )
    figure.update_xaxes(title_text="step")
    figure.update_layout(template=TEMPLATE, height=460, margin={"t": 30})
    scaled(figure, [v for t in drawn for v in t.losses], row=1, col=1)
    return scaled(figure, [e.get(metric) for t in drawn for e in t.evals], row=1, col=2)


def schedules(data: StudyData, detail: StudyDetail) -> go.Figure | None:
    """The learning rate of the best trials at every step, as they ran it, warmup included."""
    drawn = [t for t in detail.top if t.lrs]
    if not drawn:
        return None
    palette = colors(data.optimizers)
    figure = go.Figure()
    for trial in drawn:
        steps, rates = _thin(trial.lrs)
        figure.add_scatter(
            x=steps, y=rates, mode="lines", name=label(trial), **_style(trial, palette)
        )
    figure.update_layout(
        template=TEMPLATE, xaxis_title="step", yaxis_title="learning rate", height=420
    )
    return scaled(figure, [v for t in drawn for v in t.lrs if v > 0])


def confirmation(data: StudyData) -> go.Figure | None:
    """Each confirmed configuration's runs, one point a seed, with their mean and standard
    deviation; the best mean first."""
    configs = data.confirmation.configs
    if not configs:
        return None
    palette = colors(data.optimizers)
    metric = data.summary.metric
    figure = go.Figure()
    for config in configs:
        name = label(config.trial)
        runs = [r for r in config.runs if r.outcome is Outcome.COMPLETE and finite(r.value)]
        figure.add_scatter(
            x=[name] * len(runs),
            y=[r.value for r in runs],
            mode="markers",
            name=name,
            marker={
                "color": palette.get(config.trial.optimizer or "", "grey"),
                "size": 9,
                "opacity": 0.7,
            },
            text=[f"seed {r.seed}" for r in runs],
            hovertemplate="%{text}: %{y:.4g}<extra></extra>",
        )
        if config.mean is not None:
            figure.add_scatter(
                x=[name],
                y=[config.mean],
                mode="markers",
                showlegend=False,
                marker={
                    "color": "black",
                    "symbol": "line-ew-open",
                    "size": 28,
                    "line": {"width": 2},
                },
                error_y={"type": "data", "array": [config.std or 0], "color": "black", "width": 10},
                hovertemplate=f"mean %{{y:.4g}} ± {config.std or 0:.3g} "
                f"over {len(config.values)} seeds<extra></extra>",
            )
    figure.update_layout(
        template=TEMPLATE, yaxis_title=metric, height=420, showlegend=False, margin={"t": 30}
    )
    return figure


class _Uncopied(optuna.Study):
    """A study that hands out its trials without copying them. Optuna's plot of importances
    reads ``study.trials`` once for each parameter, and each read deep-copies every trial:
    5 of the 8 seconds of a report of 2,000 trials."""

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.get_trials(deepcopy=False)


def _in_memory(data: StudyData, trials: Sequence[optuna.trial.FrozenTrial]) -> optuna.Study:
    # Optuna would announce each study made in memory, one a plot.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    directions = optuna.study.StudyDirection
    maximize = data.summary.direction == "maximize"
    storage.create_new_study([directions.MAXIMIZE if maximize else directions.MINIMIZE], "report")
    study = _Uncopied("report", storage)
    study.add_trials(trials)
    return study


def importances(data: StudyData, detail: StudyDetail) -> go.Figure | None:
    """Optuna's parameter importances over the complete trials, every parameter of every
    optimizer and schedule among them."""
    if len(detail.complete) < 2:
        return None
    with warnings.catch_warnings():
        # Optuna warns of every parameter that few trials have: most of a conditional space.
        warnings.simplefilter("ignore")
        figure = optuna.visualization.plot_param_importances(
            _in_memory(data, detail.complete), target_name=data.summary.metric
        )
    figure.update_layout(
        template=TEMPLATE, height=max(360, 22 * len(figure.data[0].y) + 120), margin={"t": 60}
    )
    return figure


def parallel(data: StudyData, detail: StudyDetail) -> dict[str, go.Figure]:
    """Optuna's parallel coordinates of each optimizer's complete trials, over the settings
    every trial has and the optimizer's own; for the optimizers with two complete trials or
    more."""
    figures = {}
    for optimizer in data.optimizers:
        ours = [t for t in detail.complete if t.params.get("optimizer") == optimizer]
        if len(ours) < 2:
            continue
        own = sorted({p for t in ours for p in t.params if p.startswith(f"{optimizer}.")})
        figure = optuna.visualization.plot_parallel_coordinate(
            _in_memory(data, ours), params=[*SHARED, *own], target_name=data.summary.metric
        )
        figure.update_layout(
            template=TEMPLATE, title_text=f"{optimizer}: {len(ours)} complete trials", height=420
        )
        figures[optimizer] = figure
    return figures
