"""How trials read in a table: the listing of ``tuner best`` and ``tuner trials``, the
leaderboard that ``tuner search`` ends with, and the confirmed configurations."""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import shorten
from typing import Any

from tuner.cli.output import WIDTH, number, table, wrap
from tuner.results import Confirmation, Outcome, StudySummary, TrialSummary


def trial_table(trials: Sequence[TrialSummary], metric: str, width: int | None = WIDTH) -> str:
    """Trials as a table, in the order given: value, the other metrics, the optimizer and
    schedule with their own settings, and time; outcome and steps when not all are complete,
    and the reason when one has one. To fit ``width``, the settings and the reason go under
    each row."""
    others = sorted({k for t in trials for k in t.metrics} - {metric})
    unfinished = any(t.outcome is not Outcome.COMPLETE for t in trials)
    reasons = any(t.reason for t in trials)
    headers = ["trial", metric, *others, "optimizer", "schedule", "lr", "settings"]
    headers += [*(["outcome", "steps"] if unfinished else []), "time"]
    headers += ["reason"] if reasons else []
    rows = []
    for trial in trials:
        row = [
            trial.number,
            number(trial.value),
            *(number(trial.metrics.get(k)) for k in others),
            trial.optimizer or "-",
            trial.schedule or "-",
            number(trial.lr, 3),
            settings(trial),
        ]
        if unfinished:
            row += [trial.outcome, "-" if trial.steps is None else trial.steps]
        row.append("-" if trial.duration_s is None else f"{trial.duration_s:.1f}s")
        if reasons:
            row.append(shorten(trial.reason or "-", REASON_WIDTH, placeholder="…"))
        rows.append(row)
    # The reason goes under its row, whole to REASON_WIDTH: cut to a column's width, it read
    # "prune…".
    # A long optimizer's name (schedule_free_adamw) is cut before a table overflows a terminal.
    fitted = ["optimizer", "schedule"]
    return table(headers, rows, width=width, below=["settings", "reason"], shrink=fitted)


def best_title(shown: int, finished: int, metric: str, direction: str, among: str = "") -> str:
    """The line above the best trials, in ``tuner best`` and at the end of a search."""
    better = "lowest" if direction == "minimize" else "highest"
    return (
        f"Top {shown} of {finished} finished trials by {metric}{among}, {better} first; "
        "complete trials before pruned ones"
    )


def left_out(study: StudySummary, width: int | None = WIDTH) -> str:
    """The line that says how many of the study's trials another Optuna client wrote, which
    every count and ranking of tuner's leaves out; empty when there are none."""
    if not study.foreign:
        return ""
    n, one = study.foreign, study.foreign == 1
    trials, are, them = ("1 trial", "is", "it") if one else (f"{n} trials", "are", "them")
    return wrap(
        f"Note: {trials} of study {study.name} written by another Optuna client {are} left "
        f"out: tuner has no record of {them}, so it neither counts nor ranks {them}.",
        width,
    )


# Long enough to tell reasons apart; `tuner show` prints one whole.
REASON_WIDTH = 60


def settings(trial: TrialSummary) -> str:
    """The trial's own optimizer parameters, then its schedule's and its warmup unless none,
    then its batch size and task parameters where the study searches them: groups, since an
    optimizer and a schedule may name a parameter alike."""
    plugins = (f"{trial.optimizer}.", f"{trial.schedule}.")

    def of(prefix: str) -> list[str]:
        return [
            f"{key.removeprefix(prefix)}={value_text(value)}"
            for key, value in trial.params.items()
            if key.startswith(prefix)
        ]

    optimizer, schedule = of(plugins[0]), of(plugins[1])
    if trial.params.get("warmup"):
        schedule.append(f"warmup={value_text(trial.params['warmup'])}")
    groups = [" ".join(optimizer) or "-", " ".join(schedule) or "-"]
    model = [
        f"{key.partition('.')[2] or key}={value_text(value)}"
        for key, value in trial.params.items()
        if key == "batch_size" or ("." in key and not key.startswith(plugins))
    ]
    if model:
        groups.append(" ".join(model))
    text = " | ".join(groups)
    return f"default ({trial.default}): {text}" if trial.default else text


def value_text(value: Any) -> str:
    """A parameter's value as tables show it."""
    if value is None:
        return "-"
    # Four figures, so that a beta of 0.9995 does not read as 1.
    return number(value, 4) if isinstance(value, float) else str(value).lower()


def confirmation_table(confirmation: Confirmation, width: int | None = WIDTH) -> str:
    """The confirmed configurations, the best mean first: the mean and standard deviation of
    their runs' values, the test metrics' means, and the value the search found, with the
    verdict on the winner's lead under the table."""
    metric = confirmation.metric
    tests = sorted({name for config in confirmation.configs for name in config.test})
    headers = ["trial", "mean", "sd", "runs", *tests, "optimizer", "schedule"]
    headers += ["lr", "search", "settings"]
    rows = []
    for config in confirmation.configs:
        trial = config.trial
        complete = len(config.values)
        rows.append(
            [
                trial.number,
                number(config.mean),
                number(config.std),
                f"{complete}/{len(config.runs)}",
                *(number(config.test.get(name)) for name in tests),
                trial.optimizer or "-",
                trial.schedule or "-",
                number(trial.lr, 3),
                number(trial.value),
                settings(trial),
            ]
        )
    # The longest optimizer and schedule names, with two test metrics, need the search's
    # value under the row too.
    board = table(headers, rows, width=width, below=["search", "settings"])
    title = (
        f"Confirmed: the best configurations trained again in full, each with the same "
        f"{max(len(c.runs) for c in confirmation.configs)} fresh seeds; the mean and standard "
        f"deviation of their {metric}"
    )
    return f"{wrap(title, width)}\n{board}\n{wrap(confirmation.verdict, width)}"
