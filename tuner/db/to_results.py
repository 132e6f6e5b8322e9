"""Rows of tuner's tables as readers see them: the :mod:`tuner.results` types that
:mod:`tuner.db.reads` and :class:`tuner.query.Results` return."""

from __future__ import annotations

from sqlalchemy import Row

from tuner.db.models import ConfirmationRow, read_value
from tuner.results import Outcome, Provenance, Run, TrialDetail, TrialSummary


def run_of(row: Row | ConfirmationRow) -> Run:
    """The confirmation run that ``row`` records, as readers see it."""
    return Run(
        seed=row.seed,
        outcome=Outcome(row.outcome),
        value=read_value(row.value, row.value_type),
        steps=row.steps,
        duration_s=row.duration_s,
        metrics=row.metrics,
        test_metrics=row.test_metrics,
        reason=row.reason,
    )


def from_row(row: Row) -> TrialSummary:
    return TrialSummary(
        number=row.number,
        outcome=Outcome(row.outcome),
        value=read_value(row.value, row.value_type),
        optimizer=row.optimizer,
        schedule=row.schedule,
        params=row.params,
        duration_s=row.duration_s,
        steps=row.steps,
        metrics=row.metrics,
        reason=row.reason,
        default=row.default,
        finished_at=row.finished_at,
        population=row.population,
    )


def provenance(study: Row) -> Provenance:
    return Provenance(
        plugins=study.plugins,
        versions=study.versions,
        device=study.device,
        seed=study.seed,
        command=study.command,
    )


def detail_from_row(row: Row, study: Row) -> TrialDetail:
    """Trial ``row``, read by :func:`trial_row`, in full."""
    return TrialDetail(
        **vars(from_row(row)),
        seed=row.seed,
        step_time_s=row.step_time_s,
        compiled=row.compiled,
        provenance=provenance(study),
        losses=row.losses or [],
        lrs=row.lrs or [],
        evals=row.evals or [],
    )
