"""The answers that reading a study gives, as typed objects with a stable JSON form.

``tuner best``, ``trials``, ``show``, ``studies`` and ``compare``, and scripts through
``tuner.open_results``, all receive these objects, whoever computed them: the SQL of
:mod:`tuner.db.reads` or the statistics of :mod:`tuner.compare`. Keeping them apart from both
means a command or a script can name them, and the README's JSON is defined in one place, by
their ``to_json``. They import only the standard library, so ``import tuner`` stays fast.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a trial ended, in tuner's words and in the order trials rank; a running trial has
    not ended yet. The members are strings, as stored and as printed."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    RUNNING = "running"

    @property
    def optuna_state(self) -> str:
        """Optuna's state of a trial that ended this way: Optuna cannot tell a diverged trial
        from a pruned one, nor an interrupted one from a failure."""
        return _OPTUNA_STATE[self]


# The trials that ``--trials`` counts, and the only ones ranked by value.
FINISHED = (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED)
_OPTUNA_STATE = {
    Outcome.COMPLETE: "COMPLETE",
    Outcome.PRUNED: "PRUNED",
    Outcome.DIVERGED: "PRUNED",
    Outcome.FAILED: "FAIL",
    Outcome.INTERRUPTED: "FAIL",
    Outcome.RUNNING: "RUNNING",
}


@dataclass(frozen=True)
class Counts:
    """How many trials ended each way; ``running`` ones have not ended yet."""

    complete: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    interrupted: int = 0
    running: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[str]) -> Counts:
        return cls(**Counter(outcomes))

    @property
    def total(self) -> int:
        return sum(getattr(self, outcome) for outcome in Outcome)

    @property
    def finished(self) -> int:
        """Complete, pruned and diverged trials: those that ``--trials`` counts."""
        return self.complete + self.pruned + self.diverged

    def to_json(self) -> dict[str, int]:
        return {**{outcome: getattr(self, outcome) for outcome in Outcome}, "total": self.total}

    def __str__(self) -> str:
        parts = [f"{getattr(self, o)} {o}" for o in Outcome if getattr(self, o)]
        return ", ".join(parts) or "no trials"


@dataclass(frozen=True)
class TrialSummary:
    """One trial as ranked and listed: what it sampled, how it ended, what it took.

    ``outcome`` is tuner's word for the ending (see :class:`Outcome`); :attr:`state` is Optuna's, in
    which a diverged trial is PRUNED. ``value`` is the study's objective at the trial's last
    evaluation: for a pruned trial, the one at which it was stopped; None when there was none.
    ``params`` holds every parameter Optuna sampled, ``lr`` and ``optimizer`` among them, under
    Optuna's names (``adam.beta1``). ``duration_s`` is the trial's own time, training and
    evaluation. ``default`` names the source of the known-good setting a trial tried before the
    search sampled (see ``OptimizerSpec.defaults``), None for a sampled one. ``population`` is
    the number of the first trial of the population the trial trained in (see
    :mod:`tuner.train`), the same for each of its members; None for a trial trained
    alone. A running trial, or
    one that failed before its record was written, is known to Optuna alone: it has its
    parameters, and None or nothing for the rest.
    """

    number: int
    outcome: Outcome
    value: float | None
    optimizer: str | None
    schedule: str | None
    params: dict[str, Any]
    duration_s: float | None
    steps: int | None
    metrics: dict[str, float]
    reason: str | None
    default: str | None
    finished_at: datetime | None
    population: int | None

    @property
    def state(self) -> str:
        return Outcome(self.outcome).optuna_state

    @property
    def lr(self) -> float | None:
        return self.params.get("lr")

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form: non-finite numbers become null, times ISO 8601 strings."""
        return _plain(
            {
                "number": self.number,
                "value": self.value,
                "state": self.state,
                "outcome": self.outcome,
                "optimizer": self.optimizer,
                "schedule": self.schedule,
                "params": self.params,
                "duration_s": self.duration_s,
                "steps": self.steps,
                "metrics": self.metrics,
                "reason": self.reason,
                "default": self.default,
                "finished_at": self.finished_at,
                "population": self.population,
            }
        )


@dataclass(frozen=True)
class Provenance:
    """What produced a study: plugin and library versions, device, seed and command line."""

    plugins: dict[str, str | None]
    versions: dict[str, str]
    device: str
    seed: int
    command: str


@dataclass(frozen=True)
class TrialDetail(TrialSummary):
    """One trial in full: its summary, how it ran, what produced it, and its learning curve.

    ``losses`` and ``lrs`` hold the training loss and learning rate of every step; ``evals``
    holds one dict per evaluation, ``step`` and ``val_loss`` and the task's metrics.
    """

    seed: int | None
    step_time_s: float | None
    compiled: bool | None
    provenance: Provenance
    losses: list[float]
    lrs: list[float]
    evals: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            **_plain(
                {
                    "seed": self.seed,
                    "step_time_s": self.step_time_s,
                    "compiled": self.compiled,
                    "provenance": vars(self.provenance),
                    "curve": {"losses": self.losses, "lrs": self.lrs, "evals": self.evals},
                }
            ),
        }


@dataclass(frozen=True)
class StudySummary:
    """A study: its task, its objective and direction, its trials, and its best trial.

    ``in_optuna`` is False when Optuna's side of the study was deleted by another tool
    (``optuna delete-study``, optuna-dashboard) after tuner recorded trials of it: then it has
    no trials to count or rank, and ``tuner delete`` removes what tuner kept. ``foreign`` counts
    the trials that another Optuna client wrote into the study (a script's ``study.optimize``
    or ``study.add_trial``): tuner has no record of them and leaves them out of its counts,
    listings and rankings.
    """

    name: str
    task: str
    metric: str
    direction: str
    counts: Counts
    best: TrialSummary | None
    created_at: datetime
    in_optuna: bool = True
    foreign: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "metric": self.metric,
            "direction": self.direction,
            "trials": self.counts.to_json(),
            "best": None if self.best is None else self.best.to_json(),
            "created_at": self.created_at.isoformat(),
            "in_optuna": self.in_optuna,
            "foreign_trials": self.foreign,
        }


@dataclass(frozen=True)
class GroupStats:
    """The trials of one optimizer, or of one schedule, in a study.

    ``best_value``, ``best_trial`` and ``best_outcome`` are those of the group's best complete
    trial, ranked as :meth:`tuner.query.Results.best` ranks; ``median`` and ``iqr`` (the
    interquartile range, None under ``tuner.compare.MIN_FOR_SPREAD`` values) describe the
    finite values of its complete trials. A pruned or diverged trial's value was measured
    before the end and is not comparable: ``counts`` says how many there were.
    """

    name: str | None
    counts: Counts
    best_value: float | None
    best_trial: int | None
    best_outcome: Outcome | None
    median: float | None
    iqr: float | None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return _plain({**data, "counts": self.counts.to_json()})


@dataclass(frozen=True)
class Comparison:
    """A study's trials grouped by optimizer or schedule, the leading group first.

    ``gap`` is how far the leader's best value is ahead of the runner-up's; ``spread`` the
    larger interquartile range of the two groups; ``clear`` says whether the gap exceeds it
    (None when either is unknown). ``verdict`` says all that in one sentence.
    """

    study: str
    by: str
    metric: str
    direction: str
    groups: list[GroupStats]
    leader: str | None
    gap: float | None
    spread: float | None
    clear: bool | None
    verdict: str

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return _plain({**data, "groups": [group.to_json() for group in self.groups]})


@dataclass(frozen=True)
class Run:
    """One confirmation run: a configuration trained again, in full and unpruned, with a fresh
    ``seed``. ``metrics`` are its last validation metrics; ``test_metrics`` those on the task's
    held-out test set (empty when the task has none)."""

    seed: int
    outcome: Outcome
    value: float | None
    steps: int
    duration_s: float
    metrics: dict[str, float]
    test_metrics: dict[str, float]
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return _plain({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class Confirmed:
    """A trial's configuration and its confirmation runs, one a seed. ``mean`` and ``std``
    (the sample standard deviation, None under two values) are of the complete runs' values;
    ``test`` holds the mean of each test metric over them."""

    trial: TrialSummary
    runs: list[Run]

    @property
    def values(self) -> list[float]:
        """The values of the complete runs, the only ones that measure the whole run."""
        return [
            run.value
            for run in self._complete
            if run.value is not None and math.isfinite(run.value)
        ]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def test(self) -> dict[str, float]:
        complete = self._complete
        names = sorted({name for run in complete for name in run.test_metrics})
        return {
            name: statistics.fmean(run.test_metrics[name] for run in complete)
            for name in names
            if all(name in run.test_metrics for run in complete)
        }

    @property
    def _complete(self) -> list[Run]:
        return [run for run in self.runs if run.outcome == Outcome.COMPLETE]

    def to_json(self) -> dict[str, Any]:
        return _plain(
            {
                "trial": self.trial.number,
                "optimizer": self.trial.optimizer,
                "schedule": self.trial.schedule,
                "params": self.trial.params,
                "search_value": self.trial.value,
                "mean": self.mean,
                "std": self.std,
                "test": self.test,
                "runs": [run.to_json() for run in self.runs],
            }
        )


@dataclass(frozen=True)
class Confirmation:
    """A study's confirmed configurations, the best mean first, and whether the winner's lead
    over the runner-up is larger than the seed-to-seed noise.

    ``p_value`` is Welch's two-sided t-test of the two best configurations' complete values;
    ``clear`` is whether it is under 0.05 (None when there is nothing to test). ``verdict``
    says it in one sentence.
    """

    study: str
    metric: str
    direction: str
    configs: list[Confirmed]
    p_value: float | None
    clear: bool | None
    verdict: str

    @property
    def winner(self) -> Confirmed | None:
        return self.configs[0] if self.configs and self.configs[0].mean is not None else None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return _plain({**data, "configs": [config.to_json() for config in self.configs]})


def ranking(direction: str) -> Callable[[TrialSummary], tuple[int, int, float, int]]:
    """The key that sorts trials best first in a study of ``direction``, as the SQL of
    :func:`tuner.db.reads.ranked` does: see :func:`rank`."""
    return lambda t: rank(direction, t.outcome, t.value, t.number)


def rank(direction: str, outcome: Outcome, value: float | None, number: int) -> tuple:
    """A trial's place: those with a finite value first, then by outcome in :class:`Outcome`'s
    order, then by value in the study's direction, then by number."""
    tier, finite = list(Outcome).index(outcome), value is not None and math.isfinite(value)
    signed = (-value if direction == "maximize" else value) if finite else 0.0
    return (0 if finite else 1, tier, signed, number)


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: non-finite floats as null, datetimes as ISO 8601."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
