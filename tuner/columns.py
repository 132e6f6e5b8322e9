"""The columns of the tables of trials and of confirmed configurations, each defined once: its
heading and how it shows a value, as text. Each table picks its columns from here;
:mod:`tuner.cli.trials` lays them out for a terminal, :mod:`tuner.report.tables` as HTML.

Where the terminal and the report show a thing differently (the settings, the time, a
configuration's runs), each way is a column of its own, named for how it shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from textwrap import shorten
from typing import Any, Generic, TypeVar

from tuner.results import Confirmed, TrialSummary

Item = TypeVar("Item")

# Long enough to tell reasons apart; `tuner show` prints one whole.
REASON_WIDTH = 60


@dataclass(frozen=True)
class Column(Generic[Item]):
    """A column of a table whose rows are items: its heading, and the text of an item's cell."""

    heading: str
    cell: Callable[[Item], str]


def cells(columns: Sequence[Column[Item]], items: Sequence[Item]) -> list[list[str]]:
    """The rows of a table of ``items`` in ``columns``."""
    return [[column.cell(item) for column in columns] for item in items]


def headings(columns: Sequence[Column[Any]]) -> list[str]:
    return [column.heading for column in columns]


def number(value: float | None, digits: int = 4) -> str:
    """A float in ``digits`` significant figures, or '-' for none."""
    return "-" if value is None else f"{value:.{digits}g}"


def text(value: Any) -> str:
    """A value as the report's tables show it."""
    if value is None:
        return "-"
    return number(value) if isinstance(value, float) else str(value)


def value_text(value: Any) -> str:
    """A parameter's value as the terminal's tables show it."""
    if value is None:
        return "-"
    # Four figures, so that a beta of 0.9995 does not read as 1.
    return number(value, 4) if isinstance(value, float) else str(value).lower()


# --- Trials -----------------------------------------------------------------------------------


def setting_groups(trial: TrialSummary) -> list[list[tuple[str, Any]]]:
    """The trial's own settings, by their full names, in three groups: its optimizer's; its
    schedule's and its warmup unless none; and its batch size and task parameters where the
    study searches them. Groups, since an optimizer and a schedule may name a parameter
    alike."""
    plugins = (f"{trial.optimizer}.", f"{trial.schedule}.")
    optimizer = [(k, v) for k, v in trial.params.items() if k.startswith(plugins[0])]
    schedule = [(k, v) for k, v in trial.params.items() if k.startswith(plugins[1])]
    if trial.params.get("warmup"):
        schedule.append(("warmup", trial.params["warmup"]))
    model = [
        (key, value)
        for key, value in trial.params.items()
        if key == "batch_size" or ("." in key and not key.startswith(plugins))
    ]
    return [optimizer, schedule, model]


def short_settings(trial: TrialSummary) -> str:
    """The trial's settings, each group apart and each setting by its own name, after the
    known-good setting it tried, if it tried one."""
    optimizer, schedule, model = (
        " ".join(f"{key.partition('.')[2] or key}={value_text(value)}" for key, value in group)
        for group in setting_groups(trial)
    )
    text = " | ".join([optimizer or "-", schedule or "-", *([model] if model else [])])
    return f"default ({trial.default}): {text}" if trial.default else text


def full_settings(trial: TrialSummary) -> str:
    """The trial's settings by their full names, in one run."""
    groups = setting_groups(trial)
    return " ".join(f"{key}={text(value)}" for group in groups for key, value in group) or "-"


def value(heading: str) -> Column[TrialSummary]:
    """The trial's value of the study's objective, under ``heading``: the objective's name, in
    a table of trials."""
    return Column(heading, lambda trial: number(trial.value))


def other_metrics(trials: Sequence[TrialSummary], metric: str) -> list[Column[TrialSummary]]:
    """A column for each metric of ``trials`` but the objective, ``metric``, by name."""
    others = sorted({name for trial in trials for name in trial.metrics} - {metric})
    return [
        Column(name, lambda trial, name=name: number(trial.metrics.get(name))) for name in others
    ]


def leading(trials: Sequence[TrialSummary], metric: str) -> list[Column[TrialSummary]]:
    """The columns that every table of ``trials`` begins with: the trial, its value of the
    objective, ``metric``, and its other metrics, its optimizer, schedule and learning rate."""
    return [TRIAL, value(metric), *other_metrics(trials, metric), OPTIMIZER, SCHEDULE, LR]


TRIAL = Column("trial", lambda trial: str(trial.number))
OPTIMIZER = Column("optimizer", lambda trial: trial.optimizer or "-")
SCHEDULE = Column("schedule", lambda trial: trial.schedule or "-")
LR = Column("lr", lambda trial: number(trial.lr, 3))
SHORT_SETTINGS = Column("settings", short_settings)
FULL_SETTINGS = Column("settings", full_settings)
OUTCOME = Column("outcome", lambda trial: str(trial.outcome))
STEPS = Column("steps", lambda trial: text(trial.steps))
TIME = Column("time", lambda trial: "-" if trial.duration_s is None else f"{trial.duration_s:.1f}s")
SECONDS = Column("time (s)", lambda trial: number(trial.duration_s, 3))
REASON = Column("reason", lambda trial: shorten(trial.reason or "-", REASON_WIDTH, placeholder="…"))
DEFAULT = Column("default", lambda trial: text(trial.default))
POPULATION = Column("population", lambda trial: text(trial.population))


# --- Confirmed configurations -------------------------------------------------------------------


def of_trial(column: Column[TrialSummary]) -> Column[Confirmed]:
    """``column`` of a confirmed configuration's trial."""
    return Column(column.heading, lambda config: column.cell(config.trial))


def mean(heading: str) -> Column[Confirmed]:
    """The mean of the values of a configuration's runs, under ``heading``."""
    return Column(heading, lambda config: number(config.mean))


def tests(configs: Sequence[Confirmed]) -> list[Column[Confirmed]]:
    """A column for each test metric of ``configs``, by name: its mean over the runs."""
    names = sorted({name for config in configs for name in config.test})
    return [Column(name, lambda config, name=name: number(config.test.get(name))) for name in names]


SD = Column("sd", lambda config: number(config.std))
SD_3 = Column("sd", lambda config: number(config.std, 3))
RUNS = Column("runs", lambda config: f"{len(config.values)}/{len(config.runs)}")
RUNS_COMPLETE = Column(
    "runs", lambda config: f"{len(config.values)} of {len(config.runs)} complete"
)
