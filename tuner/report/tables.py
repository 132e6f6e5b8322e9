"""The tables of a report, as HTML: the leaderboard, the confirmed configurations, the
studies compared, and what produced each study. Every value from the database is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from tuner import columns
from tuner.columns import number, text
from tuner.report.read import StudyData
from tuner.results import Confirmation, TrialSummary


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "") -> str:
    """An HTML table, with a header row unless ``headers`` is empty; each cell is escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    head = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(text(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def leaderboard(trials: Sequence[TrialSummary], metric: str) -> str:
    """The best trials, best first: value, other metrics, what ran, how it ended."""
    shown = [
        *columns.leading(trials, metric),
        columns.FULL_SETTINGS,
        columns.OUTCOME,
        columns.STEPS,
        columns.SECONDS,
        columns.DEFAULT,
        columns.POPULATION,
    ]
    rows = [[rank, *row] for rank, row in enumerate(columns.cells(shown, trials), start=1)]
    return table(["rank", *columns.headings(shown)], rows, css="wide")


def confirmed(confirmation: Confirmation) -> str:
    """The confirmed configurations, the best mean first."""
    shown = [
        columns.of_trial(columns.TRIAL),
        columns.of_trial(columns.OPTIMIZER),
        columns.of_trial(columns.SCHEDULE),
        columns.mean(f"mean {confirmation.metric}"),
        columns.SD_3,
        columns.RUNS_COMPLETE,
        *columns.tests(confirmation.configs),
        columns.of_trial(columns.value("in the search")),
    ]
    rows = columns.cells(shown, confirmation.configs)
    return table(columns.headings(shown), rows)


def provenance(data: StudyData, storage: str) -> str:
    """What produced the study, and how it was searched."""
    summary, made, settings = data.summary, data.provenance, data.settings
    searched = ", ".join(
        f"{key} {settings[key]}"
        for key in ("steps", "batch_size", "eval_every", "sampler", "pruner")
        if key in settings
    )
    rows = [
        ("study", summary.name),
        ("storage", storage),
        ("task", summary.task),
        ("objective", f"{summary.metric}, {summary.direction}d"),
        ("trials", f"{summary.counts.total}: {summary.counts}"),
        ("search", searched or "-"),
        ("created", f"{summary.created_at:%Y-%m-%d %H:%M} UTC"),
        ("seed", made.seed),
        ("device", made.device),
        ("versions", ", ".join(f"{lib} {v}" for lib, v in made.versions.items())),
        ("plugins", ", ".join(f"{p} {v or '-'}" for p, v in made.plugins.items())),
        ("command", made.command),
    ]
    return table([], rows, css="pairs")


def studies(data: Sequence[StudyData]) -> str:
    """The studies compared, one row each: task, objective, trials, best, confirmed winner."""
    rows = []
    for study in data:
        best = study.summary.best
        winner = study.confirmation.winner
        rows.append(
            [
                study.name,
                study.summary.task,
                f"{study.summary.metric} ({study.summary.direction})",
                study.summary.counts.total,
                str(study.summary.counts),
                "-" if best is None else f"{number(best.value)} ({best.optimizer}+{best.schedule})",
                "-"
                if winner is None
                else f"{number(winner.mean)} ({winner.trial.optimizer}+{winner.trial.schedule})",
                study.provenance.seed,
            ]
        )
    headers = ["study", "task", "objective", "trials", "outcomes", "best trial"]
    return table([*headers, "confirmed winner (mean)", "seed"], rows, css="wide")


def provenances(data: Sequence[StudyData]) -> str:
    """What produced each study, one row each."""
    rows = [
        [
            study.name,
            f"{study.summary.created_at:%Y-%m-%d %H:%M} UTC",
            study.provenance.device,
            ", ".join(f"{lib} {v}" for lib, v in study.provenance.versions.items()),
            study.provenance.command,
        ]
        for study in data
    ]
    return table(["study", "created", "device", "versions", "command"], rows, css="wide")
