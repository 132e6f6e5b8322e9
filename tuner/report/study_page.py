"""The report of one study: did it converge, which optimizer and schedule win and by how
much, whether the lead survives fresh seeds, what the best trials' curves and schedules looked
like, which settings mattered, the leaderboard, and what produced it."""

from __future__ import annotations

import shlex

import plotly.graph_objects as go

from tuner.report import figures, tables
from tuner.report.page import Chart, Section, paragraph, render
from tuner.report.read import StudyData, StudyDetail
from tuner.results import Comparison


def study_page(data: StudyData, detail: StudyDetail, storage: str) -> str:
    """The page of study ``data``, read from ``storage`` (its URL, masked)."""
    summary = data.summary
    lead = [paragraph(_headline(data), "lead")]
    if not summary.counts.complete:
        lead.append(paragraph(_nothing_complete(data), "empty"))
    sections = [
        Section("history", "Did it converge?", _history(data)),
        Section("groups", "Which optimizer and schedule win?", _groups(data)),
        Section("confirmation", "Is the winner more than luck?", _confirmation(data)),
        Section("curves", "The best trials' learning curves", _curves(data, detail)),
        Section("importance", "Which settings mattered?", _importance(data, detail)),
        Section("leaderboard", "Leaderboard", _leaderboard(data, detail)),
        Section("provenance", "Provenance", [tables.provenance(data, storage)]),
    ]
    return render(f"tuner report: {summary.name}", lead, sections)


def _headline(data: StudyData) -> str:
    summary = data.summary
    text = f"Study {summary.name} on task {summary.task}: {summary.counts.total} trials"
    text += f" ({summary.counts}), {summary.metric} {summary.direction}d."
    if summary.best is not None and summary.best.outcome == "complete":
        best = summary.best
        text += f" Best: trial {best.number}, {best.optimizer}+{best.schedule}, "
        text += f"{summary.metric} {tables.number(best.value)} ({best.outcome})."
    if summary.foreign:
        # Neither counted above nor drawn below: tuner has no record of them.
        n = summary.foreign
        what = (
            "1 trial written by another Optuna client is"
            if n == 1
            else f"{n} trials written by another Optuna client are"
        )
        text += f" {what} left out."
    return text


def _nothing_complete(data: StudyData) -> str:
    counts = data.summary.counts
    if not counts.total:
        run = f"tuner search --study {shlex.quote(data.name)}"
        return f"Study {data.name} has no trials yet: {run} runs some."
    if counts.failed + counts.interrupted == counts.total:
        first = next((t.reason for t in data.trials if t.reason), None)
        why = f" The first reason: {first}" if first else ""
        return f"No trial of study {data.name} completed: all {counts.total} failed.{why}"
    return (
        f"No trial of study {data.name} has completed yet ({counts}): the figures show the "
        "values at which trials were stopped, which are not comparable with complete ones."
    )


def _drawn(key: str, figure: go.Figure | None, missing: str) -> list[str | Chart]:
    """The figure, or a line that says why there is none."""
    return [paragraph(missing, "empty")] if figure is None else [Chart(key, figure)]


def _history(data: StudyData) -> list[str | Chart]:
    note = paragraph(
        "Each finished trial's value, coloured by optimizer; hollow points were pruned or "
        "diverged, at the value where they stopped. The line is the best complete value so far.",
        "note",
    )
    return [note, *_drawn("history", figures.history(data), "No trial has a value yet.")]


def _group(data: StudyData, comparison: Comparison) -> list[str | Chart]:
    figure = figures.by_group(data, comparison)
    missing = f"No trial has finished yet to group by {comparison.by}."
    return [
        *_drawn(f"by-{comparison.by}", figure, missing),
        paragraph(comparison.verdict, "verdict"),
    ]


def _groups(data: StudyData) -> list[str | Chart]:
    note = paragraph(
        "Complete trials' values, grouped, with the count in each group; the leader first. "
        "Below, apart, the values at which pruned and diverged trials were stopped: measured "
        "earlier, they are not comparable.",
        "note",
    )
    return [note, *_group(data, data.by_optimizer), *_group(data, data.by_schedule)]


def _confirmation(data: StudyData) -> list[str | Chart]:
    confirmation = data.confirmation
    if not confirmation.configs:
        advice = (
            f": tuner confirm {shlex.quote(data.name)} trains its best configurations again "
            "with fresh seeds"
        )
        advice = advice if data.summary.counts.complete else ""
        return [paragraph(f"Study {data.name} has no confirmation runs{advice}.", "empty")]
    note = paragraph(
        "The best configurations, trained again in full with the same fresh seeds: one point "
        "a seed, the bar their mean, the whisker one standard deviation.",
        "note",
    )
    chart = _drawn("confirmation", figures.confirmation(data), "No confirmation run completed.")
    verdict = paragraph(confirmation.verdict, "verdict")
    return [note, *chart, verdict, tables.confirmed(confirmation)]


def _curves(data: StudyData, detail: StudyDetail) -> list[str | Chart]:
    if not detail.top:
        return [paragraph("No trial has finished yet.", "empty")]
    note = paragraph(
        f"The {len(detail.top)} best finished trials, coloured by optimizer; pruned and "
        "diverged ones faint and dotted. Then the learning rate each ran, warmup included.",
        "note",
    )
    missing = "The best trials recorded no curves."
    return [
        note,
        *_drawn("curves", figures.curves(data, detail), missing),
        *_drawn("schedules", figures.schedules(data, detail), missing),
    ]


def _importance(data: StudyData, detail: StudyDetail) -> list[str | Chart]:
    if len(detail.complete) < 2:
        return [paragraph("Importances need two complete trials or more.", "empty")]
    note = paragraph(
        "Optuna's parameter importances over the complete trials; then, for each optimizer "
        "with two complete trials or more, its trials' settings and values side by side.",
        "note",
    )
    parallel = figures.parallel(data, detail).items()
    return [
        note,
        *_drawn("importances", figures.importances(data, detail), "No importances to show."),
        *(Chart(f"parallel-{name}", figure) for name, figure in parallel),
    ]


def _leaderboard(data: StudyData, detail: StudyDetail) -> list[str | Chart]:
    if not detail.top:
        return [paragraph("No trial has finished yet.", "empty")]
    return [tables.leaderboard(detail.top, data.summary.metric)]
