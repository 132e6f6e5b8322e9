"""The report of one study: did it converge, which optimizer and schedule win and by how
much, whether the lead survives fresh seeds, what the best trials' curves and schedules looked
like, which settings mattered, the leaderboard, and what produced it."""

from __future__ import annotations

import shlex

import plotly.graph_objects as go

from tuner.report import curves, figures, slices, tables
from tuner.report.answer import answer_box
from tuner.report.page import Chart, Section, paragraph, render
from tuner.report.read import StudyData, StudyDetail
from tuner.results import Comparison, Outcome

# Below these counts, importances and parallel coordinates say more of the sample than of the
# settings: Optuna's fANOVA fits a random forest to the trials, and a conditional space gives
# each optimizer's own settings a fraction of them. The textbook defaults tried first sit at
# a few fixed points and do not count.
MIN_FOR_IMPORTANCE = 20
MIN_FOR_PARALLEL = 10


def study_page(
    data: StudyData, detail: StudyDetail, storage: str, command_storage: str | None = None
) -> str:
    """The page of study ``data``, read from ``storage`` (its URL, masked); the commands it
    gives name ``command_storage`` with ``--storage``, or none where it is None."""
    summary = data.summary
    lead = [paragraph(_headline(data), "lead")]
    if not summary.counts.complete:
        lead.append(paragraph(_nothing_complete(data), "empty"))
    else:
        lead.append(answer_box(data, command_storage))
    sections = [
        Section("history", "Did it converge?", _history(data)),
        Section("groups", "Which optimizer and schedule win?", _groups(data)),
        Section("confirmation", "Is the winner more than luck?", _confirmation(data)),
        Section("curves", "The best trials' learning curves", _curves(data, detail)),
        Section("slices", "Learning rate, per optimizer", _slices(data)),
        Section("importance", "Which settings mattered?", _importance(data, detail)),
        Section("leaderboard", "Leaderboard", _leaderboard(data, detail)),
        Section("provenance", "Provenance", [tables.provenance(data, storage)]),
    ]
    return render(f"tuner report: {summary.name}", lead, sections)


def _headline(data: StudyData) -> str:
    summary = data.summary
    text = f"Study {summary.name} on task {summary.task}: {summary.counts.total} trials"
    text += f" ({summary.counts}), {summary.metric} {summary.direction}d."
    populations = {t.population for t in data.trials if t.population is not None}
    if populations:
        together = sum(t.population is not None for t in data.trials)
        text += f" {together} trials trained together, in {len(populations)} populations."
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
    together = (
        " Grey bands: the trials of a population, which trained together, stacked, from "
        "settings sampled before any of them had a value."
        if any(t.population is not None for t in data.trials)
        else ""
    )
    note = paragraph(
        "Each finished trial's value, coloured by optimizer; hollow points were pruned or "
        "diverged, at the value where they stopped. The line is the best complete value so far."
        + together,
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
        f"The {len(detail.top)} best finished trials, coloured by optimizer and schedule "
        "together; pruned and diverged ones faint and dotted. Then the learning rate each ran, "
        "warmup included.",
        "note",
    )
    missing = "The best trials recorded no curves."
    return [
        note,
        *_drawn("curves", curves.curves(data, detail), missing),
        *_drawn("schedules", curves.schedules(data, detail), missing),
    ]


def _slices(data: StudyData) -> list[str | Chart]:
    note = paragraph(
        "Each finished trial's value against its learning rate, one panel an optimizer, "
        "coloured by schedule; pruned and diverged trials are crosses, at the value where "
        "they stopped.",
        "note",
    )
    return [note, *_drawn("lr-slice", slices.lr_slice(data), "No trial has a value yet.")]


def _importance(data: StudyData, detail: StudyDetail) -> list[str | Chart]:
    complete = [t for t in data.trials if t.outcome is Outcome.COMPLETE]
    sampled = [t for t in complete if t.default is None]
    if len(sampled) < MIN_FOR_IMPORTANCE:
        defaults = len(complete) - len(sampled)
        also = (
            f", beside {defaults} complete textbook defaults, tried first at fixed points, "
            "which do not count"
            if defaults
            else ""
        )
        more = f"tuner search --study {shlex.quote(data.name)} adds trials"
        return [
            paragraph(
                f"No importances or parallel coordinates: they need {MIN_FOR_IMPORTANCE} "
                f"complete trials sampled by the search, and study {data.name} has "
                f"{len(sampled)}{also}. With fewer, they describe the sample more than the "
                f"settings; {more}.",
                "empty",
            )
        ]
    note = paragraph(
        f"Optuna's parameter importances over the {len(complete)} complete trials (drawn from "
        f"{MIN_FOR_IMPORTANCE} sampled ones on); then, for each optimizer with "
        f"{MIN_FOR_PARALLEL} complete trials or more, its trials' settings and values side by "
        "side.",
        "note",
    )
    figure, warned = figures.importances(data, detail)
    parallel = figures.parallel(data, detail, MIN_FOR_PARALLEL)
    few = [o for o in data.optimizers if o not in parallel]
    parts: list[str | Chart] = [note, *_drawn("importances", figure, "No importances to show.")]
    parts += [paragraph(f"Optuna warned: {line}", "note") for line in warned]
    parts += [Chart(f"parallel-{name}", figure) for name, figure in parallel.items()]
    if few:
        counts = ", ".join(f"{o} {sum(t.optimizer == o for t in complete)}" for o in few)
        parts.append(
            paragraph(
                f"No parallel coordinates for {', '.join(few)}: each needs "
                f"{MIN_FOR_PARALLEL} complete trials ({counts}).",
                "note",
            )
        )
    return parts


def _leaderboard(data: StudyData, detail: StudyDetail) -> list[str | Chart]:
    if not detail.top:
        return [paragraph("No trial has finished yet.", "empty")]
    return [tables.leaderboard(detail.top, data.summary.metric)]
