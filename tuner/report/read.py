"""What a report shows of a study, read through :class:`tuner.query.Results`: every trial's
summary, the groups and verdicts of ``tuner compare``, the confirmation runs and provenance;
and, for a report of one study, the curves of its best trials and its complete trials as
Optuna holds them, for Optuna's own plots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.query import Results
from tuner.results import (
    Comparison,
    Confirmation,
    Provenance,
    StudySummary,
    TrialDetail,
    TrialSummary,
)

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class StudyData:
    """What every report shows of a study."""

    summary: StudySummary
    settings: dict[str, Any]
    provenance: Provenance
    # Every trial, running ones included, by number.
    trials: list[TrialSummary]
    by_optimizer: Comparison
    by_schedule: Comparison
    confirmation: Confirmation

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def optimizers(self) -> list[str]:
        """The study's optimizers: those it searched, in their order, then any others its
        trials used."""
        searched = list(self.settings.get("space", {}).get("optimizers", {}))
        used = [t.optimizer for t in self.trials if t.optimizer and t.optimizer not in searched]
        return list(dict.fromkeys([*searched, *used]))


@dataclass(frozen=True)
class StudyDetail:
    """What a report of one study adds: the ``top`` finished trials in full, best first, and
    the ``complete`` trials as Optuna holds them."""

    top: list[TrialDetail]
    complete: list[FrozenTrial]


def read_study(results: Results, name: str) -> StudyData:
    """What every report shows of study ``name``; BadInput when there is none."""
    return StudyData(
        summary=results.study(name),
        settings=results.settings(name),
        provenance=results.provenance(name),
        trials=results.trials(name),
        by_optimizer=results.compare(name, "optimizer"),
        by_schedule=results.compare(name, "schedule"),
        confirmation=results.confirmation(name),
    )


def read_detail(results: Results, name: str, top: int) -> StudyDetail:
    """The ``top`` finished trials of study ``name`` in full, and its complete trials."""
    best = results.best(name, top)
    return StudyDetail(
        top=[results.trial(name, trial.number) for trial in best],
        complete=results.complete_trials(name),
    )
