"""The figures of a report of one study, each a plotly figure, or None where the study has
nothing to draw yet.

Optuna's own plots (``optuna.visualization``) draw the parameter importances and the parallel
coordinates; plotly draws the rest, which Optuna has no plot for: trials coloured by
optimizer, with the populations that trained together shaded, groups of complete trials beside
the pruned ones, and the confirmation runs. Every optimizer has one colour in these; the
curves (:mod:`~tuner.report.curves`) colour each optimizer and schedule pair.
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
from tuner.results import Comparison, Outcome, TrialSummary, ranking

TEMPLATE = "plotly_white"
# Enough colours that the optimizers of a study rarely share one.
PALETTE = qualitative.Plotly + qualitative.Dark24
# The settings every trial has, beside those of its optimizer and its schedule.
SHARED = ("lr", "warmup", "schedule")
FAINT = 0.35
# Legend entries a row holds, about, at the report's width.
LEGEND_COLUMNS = 5


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


def pair(trial: TrialSummary) -> str:
    return f"{trial.optimizer}+{trial.schedule}"


def legend_below(figure: go.Figure, entries: int, height: int) -> go.Figure:
    """``figure`` with its legend in rows under the plot, the figure taller by as much: a
    legend beside it, past a dozen entries, scrolls and covers the traces at its edge."""
    room = 70 + 22 * math.ceil(entries / LEGEND_COLUMNS)
    figure.update_layout(
        height=height + room,
        margin={"t": 40, "b": room},
        legend={
            "orientation": "h",
            "yref": "container",
            "y": 0,
            "yanchor": "bottom",
            "x": 0,
            "xanchor": "left",
        },
    )
    return figure


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
                text=[f"{label(t)} ({t.outcome}){_together(t)}" for t in ours],
                hovertemplate="%{text}<br>" + metric + " %{y:.4g}<extra></extra>",
            )
    _populations(figure, data.trials)
    series = best_so_far(data)
    improved = sorted(t.number for t in complete_trials if finite(t.value))
    steps = [(number, series[number]) for number in improved]
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
    figure.update_layout(template=TEMPLATE, xaxis_title="trial", yaxis_title=metric)
    legend_below(figure, len(data.optimizers) + 1, 430)
    return scaled(figure, [t.value for t in finished if finite(t.value)])


def best_so_far(data: StudyData) -> list[float | None]:
    """The best complete value among trials 0 to n, for each trial number n."""
    key = ranking(data.summary.direction)
    complete = {
        t.number: t for t in data.trials if t.outcome is Outcome.COMPLETE and finite(t.value)
    }
    series: list[float | None] = []
    best: TrialSummary | None = None
    for number in range(max((t.number for t in data.trials), default=-1) + 1):
        trial = complete.get(number)
        if trial is not None and (best is None or key(trial) < key(best)):
            best = trial
        series.append(None if best is None else best.value)
    return series


def _together(trial: TrialSummary) -> str:
    return "" if trial.population is None else f", population {trial.population}"


def _populations(figure: go.Figure, trials: Sequence[TrialSummary]) -> None:
    """A grey band over the trial numbers of each population, whose trials trained together:
    a population's values are sampled at once, before any of its members has a value."""
    members: dict[int, list[int]] = {}
    for trial in trials:
        if trial.population is not None:
            members.setdefault(trial.population, []).append(trial.number)
    for i, (lead, numbers) in enumerate(sorted(members.items())):
        figure.add_vrect(
            x0=min(numbers) - 0.5,
            x1=max(numbers) + 0.5,
            fillcolor="grey",
            # Alternating, so that populations one after another stay apart.
            opacity=0.18 if i % 2 else 0.08,
            line_width=0,
            layer="below",
            annotation_text=f"population {lead} ({len(numbers)})",
            annotation_position="top left",
            annotation_font_size=10,
        )


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


def importances(data: StudyData, detail: StudyDetail) -> tuple[go.Figure | None, list[str]]:
    """Optuna's parameter importances over the complete trials, every parameter of every
    optimizer and schedule among them; and what Optuna warned of as it computed them, each
    once, for the page to show rather than hide."""
    if len(detail.complete) < 2:
        return None, []
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        figure = optuna.visualization.plot_param_importances(
            _in_memory(data, detail.complete), target_name=data.summary.metric
        )
    figure.update_layout(
        template=TEMPLATE, height=max(360, 22 * len(figure.data[0].y) + 120), margin={"t": 60}
    )
    experimental = optuna.exceptions.ExperimentalWarning
    said = [str(w.message) for w in warned if not issubclass(w.category, experimental)]
    return figure, list(dict.fromkeys(said))


def parallel(data: StudyData, detail: StudyDetail, least: int) -> dict[str, go.Figure]:
    """Optuna's parallel coordinates of each optimizer's complete trials, over the settings
    every trial has and the optimizer's own; for the optimizers with ``least`` complete
    trials or more."""
    figures = {}
    for optimizer in data.optimizers:
        ours = [t for t in detail.complete if t.params.get("optimizer") == optimizer]
        if len(ours) < least:
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
