"""How trials read in a table: the listing of ``tuner best`` and ``tuner trials``, the
leaderboard that ``tuner search`` ends with, and the confirmed configurations."""

from __future__ import annotations

from collections.abc import Sequence

from tuner import columns
from tuner.cli.output import WIDTH, table, wrap
from tuner.results import Confirmation, Outcome, StudySummary, TrialSummary


def trial_table(trials: Sequence[TrialSummary], metric: str, width: int | None = WIDTH) -> str:
    """Trials as a table, in the order given: value, the other metrics, the optimizer and
    schedule with their own settings, and time; outcome and steps when not all are complete,
    and the reason when one has one. To fit ``width``, the settings and the reason go under
    each row."""
    unfinished = any(t.outcome is not Outcome.COMPLETE for t in trials)
    reasons = any(t.reason for t in trials)
    shown = [
        *columns.leading(trials, metric),
        columns.SHORT_SETTINGS,
        *([columns.OUTCOME, columns.STEPS] if unfinished else []),
        columns.TIME,
        *([columns.REASON] if reasons else []),
    ]
    # The reason goes under its row, whole to columns.REASON_WIDTH: cut to a column's width,
    # it read "prune…".
    # A long optimizer's name (schedule_free_adamw) is cut before a table overflows a terminal.
    return table(
        columns.headings(shown),
        columns.cells(shown, trials),
        width=width,
        below=["settings", "reason"],
        shrink=["optimizer", "schedule"],
    )


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


def confirmation_table(confirmation: Confirmation, width: int | None = WIDTH) -> str:
    """The confirmed configurations, the best mean first: the mean and standard deviation of
    their runs' values, the test metrics' means, and the value the search found, with the
    verdict on the winner's lead under the table."""
    if not confirmation.configs:
        return wrap(confirmation.verdict, width)
    metric = confirmation.metric
    shown = [
        columns.of_trial(columns.TRIAL),
        columns.mean("mean"),
        columns.SD,
        columns.RUNS,
        *columns.tests(confirmation.configs),
        columns.of_trial(columns.OPTIMIZER),
        columns.of_trial(columns.SCHEDULE),
        columns.of_trial(columns.LR),
        columns.of_trial(columns.value("search")),
        columns.of_trial(columns.SHORT_SETTINGS),
    ]
    # The longest optimizer and schedule names, with two test metrics, need the search's
    # value under the row too.
    board = table(
        columns.headings(shown),
        columns.cells(shown, confirmation.configs),
        width=width,
        below=["search", "settings"],
    )
    title = (
        f"Confirmed: the best configurations trained again in full, each with the same "
        f"{max(len(c.runs) for c in confirmation.configs)} fresh seeds; the mean and standard "
        f"deviation of their {metric}"
    )
    return f"{wrap(title, width)}\n{board}\n{wrap(confirmation.verdict, width)}"
