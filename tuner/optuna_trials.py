"""A trial as Optuna knows it, in tuner's terms: for the trials that have no record of tuner's
(running ones, and those whose worker died before writing it), and for a search's display.

Each trial that ends leaves its outcome, reason, steps and metrics with Optuna as user
attributes (see :func:`tuner.study.objective_for`), so that Optuna's own tools show them; a
trial stopped before it wrote them reads as its Optuna state says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tuner.results import FINISHED, Outcome, TrialSummary

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

_FROM_OPTUNA = {
    "COMPLETE": Outcome.COMPLETE,
    "PRUNED": Outcome.PRUNED,
    "FAIL": Outcome.FAILED,
    "RUNNING": Outcome.RUNNING,
    # Enqueued, not yet started.
    "WAITING": Outcome.RUNNING,
}


def from_optuna(trial: FrozenTrial, outcome: Outcome | None = None) -> TrialSummary:
    """``trial`` as Optuna knows it; ``outcome`` says how it ended when tuner knows better
    than Optuna's state (a diverged trial is PRUNED there, an interrupted one FAIL)."""
    attrs = trial.user_attrs
    told = attrs.get("outcome")
    # Believed only where Optuna's state agrees: Optuna copies the attributes of a trial whose
    # worker died into the trial that retries it.
    ended_so = told in tuple(Outcome) and Outcome(told).optuna_state == trial.state.name
    steps = attrs.get("steps") if ended_so or outcome else None
    outcome = outcome or (Outcome(told) if ended_so else _FROM_OPTUNA[trial.state.name])
    reason = attrs.get("reason")
    if outcome is Outcome.FAILED and reason is None:
        reason = "ended before its record was written: interrupted, or its worker died"
    started, ended = _utc(trial.datetime_start), _utc(trial.datetime_complete)
    return TrialSummary(
        number=trial.number,
        outcome=outcome,
        value=trial.value if outcome in FINISHED else None,
        optimizer=trial.params.get("optimizer"),
        schedule=trial.params.get("schedule"),
        params=dict(trial.params),
        duration_s=(ended - started).total_seconds() if started and ended else None,
        steps=steps,
        metrics={},
        reason=reason,
        default=attrs.get("default"),
        finished_at=ended,
        population=attrs.get("population"),
    )


def _utc(moment: datetime | None) -> datetime | None:
    # Optuna stores naive local times.
    return None if moment is None else moment.astimezone(UTC)
