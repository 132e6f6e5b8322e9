"""The SQL of every read of results: statements that select, filter and rank trials.

:class:`tuner.query.Results` decides what to read and when; this module says how, in SQL that
SQLite and PostgreSQL run alike. Each function takes a connection already inside a read-only
transaction (:func:`reading` opens one) and selects only the columns its answer needs, so the
database filters, sorts and limits. It never reads curves for a listing; what it reads of
Optuna's tables, :mod:`tuner.db.optuna` reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Double,
    Engine,
    Integer,
    Row,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    column,
    func,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from tuner.db.engine import READ_ONLY
from tuner.db.models import ConfirmationRow, CurveRow, StudyRow, TrialRow, split_value
from tuner.db.to_results import from_row, run_of
from tuner.db.urls import storage_failure
from tuner.errors import BadInput
from tuner.results import FINISHED, Counts, Outcome, Run, StudySummary, TrialSummary


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction; a database error, Optuna's storage's too, becomes one line
    that names the database."""
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield connection
    except SQLAlchemyError as error:
        raise storage_failure(error, engine.url) from None


# --- Studies -----------------------------------------------------------------------------------


def study_names(connection: Connection) -> list[str]:
    """The name of every study, oldest first."""
    query = select(StudyRow.name).order_by(StudyRow.created_at, StudyRow.name)
    return list(connection.scalars(query))


def find_study(connection: Connection, name: str) -> Row | None:
    """The row of study ``name``, or None."""
    query = select(StudyRow.__table__).where(StudyRow.name == name)
    return connection.execute(query).first()


def direction(study: Row) -> str:
    return study.settings.get("direction", "minimize")


def twins(connection: Connection, seed: int, settings: dict[str, Any]) -> list[str]:
    """The studies made with this seed and these settings, oldest first."""
    query = select(StudyRow.name, StudyRow.settings).where(StudyRow.seed == seed)
    rows = connection.execute(query.order_by(StudyRow.created_at))
    return [name for name, stored in rows if stored == settings]


def summary(
    connection: Connection, study: Row, unrecorded: list[TrialSummary], foreign: int
) -> StudySummary:
    """The study with its counts and best trial; ``unrecorded`` are tuner's trials that only
    Optuna knows, and ``foreign`` counts those another Optuna client wrote, left out."""
    top = trials(connection, study, {}, FINISHED, "value", 1, unrecorded)
    return StudySummary(
        name=study.name,
        task=study.task,
        metric=study.settings.get("metric", "value"),
        direction=direction(study),
        counts=counts(connection, study, {}, unrecorded),
        best=top[0] if top else None,
        created_at=study.created_at,
        foreign=foreign,
    )


def counts(
    connection: Connection, study: Row, wanted: Wanted, unrecorded: list[TrialSummary]
) -> Counts:
    """The outcomes of the study's trials, ``unrecorded`` ones included, that are ``wanted``."""
    c = candidates(study.id, unrecorded).c
    query = select(c.outcome, func.count()).where(*where(c, wanted)).group_by(c.outcome)
    return Counts(**dict((*row,) for row in connection.execute(query)))


# --- Trials ------------------------------------------------------------------------------------


def columns() -> Any:
    """The columns of tuner's trial table."""
    return TrialRow.__table__.c


def candidates(study_id: int, unrecorded: list[TrialSummary]) -> Subquery:
    """The study's trials as the rows that are filtered and ranked: tuner's records, and the
    trials that only Optuna knows (``unrecorded``, read through Optuna's storage), so that
    both are ordered by one ORDER BY."""
    c = columns()
    ours = select(
        c.number,
        c.outcome,
        c.value,
        c.optimizer,
        c.schedule,
        # Named so in SQL too, as the trials that only Optuna knows are.
        c.duration_s.label("duration_s"),
    ).where(c.study_id == study_id)
    if not unrecorded:
        return ours.subquery("candidates")
    return union_all(ours, _listed(unrecorded)).subquery("candidates")


# The columns of :func:`candidates`, for the trials that only Optuna knows.
_CANDIDATE_TYPES = (Integer, String, Double, String, String, Double)


def _listed(unrecorded: list[TrialSummary]) -> Select[Any]:
    """``unrecorded`` as a VALUES list. SQLite and PostgreSQL both name its columns column1,
    column2 and so on (SQLite accepts no other names), and each is cast so that PostgreSQL
    knows its type even when all its values are NULL."""
    params: dict[str, Any] = {}
    rows = []
    for i, trial in enumerate(unrecorded):
        row = (
            trial.number,
            str(trial.outcome),
            split_value(trial.value)[0],
            trial.optimizer,
            trial.schedule,
            trial.duration_s,
        )
        params.update({f"c{k}_{i}": item for k, item in enumerate(row)})
        rows.append("(" + ", ".join(f":c{k}_{i}" for k in range(len(row))) + ")")
    names = [f"column{k + 1}" for k in range(len(_CANDIDATE_TYPES))]
    listed = text("VALUES " + ", ".join(rows)).bindparams(**params)
    listed = listed.columns(*(column(name) for name in names)).subquery("unrecorded")
    labels = ("number", "outcome", "value", "optimizer", "schedule", "duration_s")
    return select(
        *(
            cast(listed.c[name], type_).label(label)
            for name, type_, label in zip(names, _CANDIDATE_TYPES, labels, strict=True)
        )
    )


# What each filter lets through: the optimizers, or the schedules, asked for.
Wanted = dict[str, tuple[str, ...]]


def where(c: Any, wanted: Wanted) -> list[ColumnElement[bool]]:
    return [c[kind].in_(names) for kind, names in wanted.items()]


def trials(
    connection: Connection,
    study: Row,
    wanted: Wanted,
    states: Sequence[str],
    sort: str,
    limit: int | None,
    unrecorded: list[TrialSummary],
) -> list[TrialSummary]:
    """The study's trials, ``unrecorded`` ones included, that are ``wanted`` and in
    ``states``, sorted and limited by the database. A listing never reads curves."""
    found = candidates(study.id, unrecorded)
    t = columns()
    shown = (
        t.number,
        t.outcome,
        t.value,
        t.value_type,
        t.optimizer,
        t.schedule,
        t.params,
        t.duration_s,
        t.steps,
        t.metrics,
        t.reason,
        t.default,
        t.finished_at,
        t.population,
    )
    recorded = and_(t.study_id == study.id, t.number == found.c.number)
    query = (
        select(found.c.number.label("candidate"), *shown)
        .select_from(found.outerjoin(TrialRow.__table__, recorded))
        .where(*where(found.c, wanted), found.c.outcome.in_(states))
        .order_by(*order(sort, direction(study), found.c))
        .limit(limit)
    )
    only_optuna = {trial.number: trial for trial in unrecorded}
    return [
        from_row(row) if row.number is not None else only_optuna[row.candidate]
        for row in connection.execute(query)
    ]


def trial_row(connection: Connection, study_id: int, number: int) -> Row | None:
    """Trial ``number``'s row with its curves, or None when it has no row of ours."""
    query = (
        select(TrialRow.__table__, CurveRow.losses, CurveRow.lrs, CurveRow.evals)
        .outerjoin(CurveRow)
        .where(TrialRow.study_id == study_id, TrialRow.number == number)
    )
    return connection.execute(query).first()


def members(connection: Connection, study: Row, population: int) -> list[int]:
    """The numbers of the recorded trials that trained in population ``population``."""
    c = columns()
    query = select(c.number).where(c.study_id == study.id, c.population == population)
    return list(connection.scalars(query))


def outcomes_by(
    connection: Connection, study: Row, by: str, unrecorded: list[TrialSummary]
) -> list[tuple[Any, ...]]:
    """(``by``, number, outcome, value) of every trial, ``by`` being ``optimizer`` or
    ``schedule``."""
    c = candidates(study.id, unrecorded).c
    return [(*row,) for row in connection.execute(select(c[by], c.number, c.outcome, c.value))]


def group_bests(
    connection: Connection, study: Row, by: str, unrecorded: list[TrialSummary]
) -> list[tuple[Any, ...]]:
    """(``by``, number, outcome, value) of each group's best complete trial, ranked as
    :func:`trials` ranks, the best group first: a pruned or diverged trial's value was measured
    before the end, and is not comparable."""
    c = candidates(study.id, unrecorded).c
    rank = func.row_number().over(partition_by=c[by], order_by=ranked(direction(study), c))
    best = (
        select(c[by].label("name"), c.number, c.outcome, c.value, rank.label("rank"))
        .where(c.outcome == Outcome.COMPLETE)
        .subquery("best")
    )
    query = select(best.c.name, best.c.number, best.c.outcome, best.c.value)
    query = query.where(best.c.rank == 1).order_by(*ranked(direction(study), best.c))
    return [(*row,) for row in connection.execute(query)]


def pair_bests(connection: Connection, study: Row, top: int) -> list[TrialSummary]:
    """The ``top`` best complete trials, at most one for each optimizer and schedule pair, best
    first: the configurations that confirmation runs train again."""
    c = columns()
    pair = (c.optimizer, c.schedule)
    rank = func.row_number().over(partition_by=pair, order_by=ranked(direction(study), c))
    best = (
        select(c.id, rank.label("rank"))
        .where(c.study_id == study.id, c.outcome == Outcome.COMPLETE, c.value.is_not(None))
        .subquery("best")
    )
    query = (
        select(TrialRow.__table__)
        .join(best, and_(best.c.id == c.id, best.c.rank == 1))
        .order_by(*ranked(direction(study), c))
        .limit(top)
    )
    return [from_row(row) for row in connection.execute(query)]


def confirmation_runs(connection: Connection, study: Row) -> dict[int, list[Run]]:
    """The study's confirmation runs, by the number of the trial they confirm, each trial's
    in the order they ran."""
    query = (
        select(ConfirmationRow.__table__)
        .where(ConfirmationRow.study_id == study.id)
        .order_by(ConfirmationRow.trial, ConfirmationRow.id)
    )
    runs: dict[int, list[Run]] = {}
    for row in connection.execute(query):
        runs.setdefault(row.trial, []).append(run_of(row))
    return runs


def recorded(connection: Connection, study: Row, numbers: Sequence[int]) -> list[TrialSummary]:
    """The records of trials ``numbers``, in that order."""
    query = select(TrialRow.__table__).where(
        TrialRow.study_id == study.id, TrialRow.number.in_(numbers)
    )
    rows = {row.number: from_row(row) for row in connection.execute(query)}
    return [rows[number] for number in numbers if number in rows]


def ranked(direction: str, c: Any) -> list[ColumnElement[Any]]:
    """ORDER BY terms that rank trials as :func:`tuner.results.ranking` does: those with a
    finite value first, then by outcome (complete, pruned, diverged, failed, interrupted,
    running), then by value in the study's direction, then by number. A stored ``value`` is
    finite or NULL (see :class:`~tuner.db.models.TrialRow`)."""
    finite = c.value.is_not(None)
    tier = case({outcome: i for i, outcome in enumerate(Outcome)}, value=c.outcome)
    sign = -1.0 if direction == "maximize" else 1.0
    return [case((finite, 0), else_=1), tier, case((finite, c.value * sign), else_=0.0), c.number]


def order(sort: str, direction: str, c: Any) -> list[Any]:
    """ORDER BY terms for ``tuner trials --sort``: by ``value`` as :func:`ranked` ranks, by
    ``duration`` with running trials last, or by ``number``."""
    if sort == "value":
        return ranked(direction, c)
    if sort == "duration":
        return [c.duration_s.is_(None), c.duration_s, c.number]
    return [c.number]


def filters(
    connection: Connection,
    study: Row,
    optimizer: str | Sequence[str] | None,
    schedule: str | Sequence[str] | None,
) -> Wanted:
    """The optimizers and schedules asked for, for :func:`where`; BadInput naming those the
    study used when it never used one of them."""
    wanted = {}
    for kind, asked in (("optimizer", optimizer), ("schedule", schedule)):
        if asked is None:
            continue
        column_ = columns()[kind]
        searched = study.settings.get("space", {}).get(f"{kind}s", {})
        recorded = connection.scalars(
            select(column_).where(columns().study_id == study.id).distinct()
        )
        used = sorted(set(searched) | set(recorded))
        for name in names(asked):
            if name not in used:
                raise BadInput(
                    f"study '{study.name}' never used {kind} '{name}'; it used {', '.join(used)}"
                )
        wanted[kind] = names(asked)
    return wanted


def names(given: str | Sequence[str]) -> tuple[str, ...]:
    return (given,) if isinstance(given, str) else tuple(given)
