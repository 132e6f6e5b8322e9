"""The tables of a report, as HTML: the leaderboard, the confirmed configurations, the
studies compared, and what produced each study. Every value from the database is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from tuner.report.read import StudyData
from tuner.results import Confirmation, TrialSummary


def number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def text(value: Any) -> str:
    """A parameter's value as a table shows it."""
    if value is None:
        return "-"
    return number(value) if isinstance(value, float) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "") -> str:
    """An HTML table, with a header row unless ``headers`` is empty; each cell is escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    head = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(text(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def own_settings(trial: TrialSummary) -> str:
    """The settings of the trial's optimizer and schedule, its warmup, and its batch size and
    task parameters where the study searches them."""
    own = [
        f"{key}={text(value)}"
        for key, value in trial.params.items()
        if key.startswith((f"{trial.optimizer}.", f"{trial.schedule}."))
    ]
    if trial.params.get("warmup"):
        own.append(f"warmup={text(trial.params['warmup'])}")
    plugins = (f"{trial.optimizer}.", f"{trial.schedule}.")
    own += [
        f"{key}={text(value)}"
        for key, value in trial.params.items()
        if key == "batch_size" or ("." in key and not key.startswith(plugins))
    ]
    return " ".join(own) or "-"


def leaderboard(trials: Sequence[TrialSummary], metric: str) -> str:
    """The best trials, best first: value, other metrics, what ran, how it ended."""
    others = sorted({k for t in trials for k in t.metrics} - {metric})
    headers = ["rank", "trial", metric, *others, "optimizer", "schedule", "lr", "settings"]
    headers += ["outcome", "steps", "time (s)", "default", "population"]
    rows = [
        [
            rank,
            trial.number,
            number(trial.value),
            *(number(trial.metrics.get(k)) for k in others),
            trial.optimizer,
            trial.schedule,
            number(trial.lr, 3),
            own_settings(trial),
            trial.outcome,
            trial.steps,
            number(trial.duration_s, 3),
            trial.default,
            trial.population,
        ]
        for rank, trial in enumerate(trials, start=1)
    ]
    return table(headers, rows, css="wide")


def confirmed(confirmation: Confirmation) -> str:
    """The confirmed configurations, the best mean first."""
    tests = sorted({name for config in confirmation.configs for name in config.test})
    headers = ["trial", "optimizer", "schedule", f"mean {confirmation.metric}", "sd", "runs"]
    headers += [*tests, "in the search"]
    rows = [
        [
            config.trial.number,
            config.trial.optimizer,
            config.trial.schedule,
            number(config.mean),
            number(config.std, 3),
            f"{len(config.values)} of {len(config.runs)} complete",
            *(number(config.test.get(name)) for name in tests),
            number(config.trial.value),
        ]
        for config in confirmation.configs
    ]
    return table(headers, rows)


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
