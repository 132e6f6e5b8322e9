"""The report that compares studies, such as one task searched with several seeds, or several
tasks: how each study's best value fell trial by trial, with the band that the studies of one
task and objective span, and where each optimizer stands in each study."""

from __future__ import annotations

import html
import statistics
from collections.abc import Sequence
from itertools import groupby

import plotly.graph_objects as go

from tuner.report import tables
from tuner.report.figures import TEMPLATE, best_so_far, colors, finite, scaled
from tuner.report.page import Chart, Section, paragraph, render
from tuner.report.read import StudyData


def comparison_page(data: Sequence[StudyData], storage: str) -> str:
    """The page that compares studies ``data``, read from ``storage`` (masked)."""
    names = ", ".join(study.name for study in data)
    lead = [paragraph(f"{len(data)} studies from {storage}: {names}.", "lead")]
    if not any(study.summary.counts.complete for study in data):
        lead.append(paragraph("No trial of these studies has completed yet.", "empty"))
    sections = [
        Section("studies", "The studies", [tables.studies(data)]),
        Section("best-so-far", "Best so far, trial by trial", _best_so_far(data)),
        Section("standings", "Where each optimizer stands", _standings(data)),
        Section("provenance", "Provenance", [tables.provenances(data)]),
    ]
    return render(f"tuner report: {len(data)} studies", lead, sections)


def band(group: Sequence[StudyData]) -> go.Figure:
    """Each study's best so far, and the band from the worst to the best of them, with their
    median, at each trial number where every study has a value (a band over fewer would jump
    where one ends)."""
    series = {study.name: best_so_far(study) for study in group}
    figure = go.Figure()
    across = []
    for n in range(min(len(s) for s in series.values()) if len(series) > 1 else 0):
        values = [s[n] for s in series.values()]
        if None not in values:
            across.append((n, min(values), max(values), statistics.median(values)))
    if across:
        steps = [n for n, *_ in across]
        figure.add_scatter(
            x=steps,
            y=[high for _, _, high, _ in across],
            mode="lines",
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
        )
        figure.add_scatter(
            x=steps,
            y=[low for _, low, _, _ in across],
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(99, 110, 250, 0.18)",
            name="range across studies",
            hoverinfo="skip",
        )
        figure.add_scatter(
            x=steps,
            y=[m for *_, m in across],
            mode="lines",
            line={"color": "black", "dash": "dash"},
            name="median across studies",
        )
    palette = colors(list(series))
    for name, values in series.items():
        figure.add_scatter(
            x=list(range(len(values))),
            y=values,
            mode="lines",
            line={"shape": "hv", "width": 1.5, "color": palette[name]},
            name=name,
        )
    metric = group[0].summary.metric
    figure.update_layout(
        template=TEMPLATE, xaxis_title="trial", yaxis_title=f"best {metric} so far", height=440
    )
    return scaled(figure, [v for s in series.values() for v in s if v is not None])


def _key(study: StudyData) -> tuple[str, str, str]:
    return (study.summary.task, study.summary.metric, study.summary.direction)


def _best_so_far(data: Sequence[StudyData]) -> list[str | Chart]:
    parts: list[str | Chart] = [
        paragraph(
            "Each study's best complete value by trial number. Studies of the same task and "
            "objective share a plot; the band spans them, from the worst to the best, with their "
            "median dashed, as far as every one of them has a value.",
            "note",
        )
    ]
    for i, (key, group) in enumerate(groupby(sorted(data, key=_key), key=_key)):
        studies = list(group)
        task, metric, direction = key
        parts.append(f"<h3>{html.escape(f'{task}: {metric}, {direction}d')}</h3>")
        if not any(study.summary.counts.complete for study in studies):
            parts.append(paragraph("No trial of these studies has completed yet.", "empty"))
        else:
            parts.append(Chart(f"best-so-far-{i}", band(studies)))
    return parts


def standings(data: Sequence[StudyData]) -> go.Figure:
    """Each optimizer's rank in each study, by its best complete value (1 leads), with that
    value written in; blank where a study has no complete trial of it."""
    ranks = {
        study.name: {
            g.name: (rank, g.best_value)
            for rank, g in enumerate(
                (g for g in study.by_optimizer.groups if finite(g.best_value)), start=1
            )
        }
        for study in data
    }
    optimizers = sorted(
        {name for ranked in ranks.values() for name in ranked},
        key=lambda name: sum(r.get(name, (99, None))[0] for r in ranks.values()),
    )
    studies = list(ranks)
    figure = go.Figure(
        go.Heatmap(
            x=studies,
            y=optimizers,
            z=[[ranks[s].get(o, (None, None))[0] for s in studies] for o in optimizers],
            text=[[_standing(ranks[s].get(o)) for s in studies] for o in optimizers],
            texttemplate="%{text}",
            colorscale="RdYlGn",
            reversescale=True,
            colorbar={"title": {"text": "rank"}},
            hovertemplate="%{y} in %{x}: %{text}<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(
        template=TEMPLATE, height=max(300, 40 * len(optimizers) + 140), margin={"t": 30}
    )
    return figure


def _standing(ranked: tuple[int, float | None] | None) -> str:
    return "" if ranked is None else f"#{ranked[0]}<br>{tables.number(ranked[1])}"


def _standings(data: Sequence[StudyData]) -> list[str | Chart]:
    if not any(study.summary.counts.complete for study in data):
        return [paragraph("No trial of these studies has completed yet.", "empty")]
    note = paragraph(
        "Each optimizer's rank within each study by its best complete value (1 leads), with "
        "that value; blank where the study has no complete trial of it. Then each study's "
        "verdict on its leader.",
        "note",
    )
    verdicts = "".join(
        f"<li><b>{html.escape(study.name)}</b>: {html.escape(study.by_optimizer.verdict)}</li>"
        for study in data
    )
    return [note, Chart("standings", standings(data)), f"<ul>{verdicts}</ul>"]
