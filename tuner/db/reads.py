"""The SQL of every read of results: statements that select, filter and rank trials, and the
rows turned into :mod:`tuner.results` types.

:class:`tuner.query.Results` decides what to read and when; this module says how, in SQL that
SQLite and PostgreSQL run alike. Each function takes a connection already inside a read-only
transaction (:func:`reading` opens one) and selects only the columns its answer needs, so the
database filters, sorts and limits. It never reads curves for a listing, and of Optuna's tables
it reads only the ids and numbers of trials, the columns every Optuna version has had.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    case,
    column,
    exists,
    func,
    inspect,
    select,
    table,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from tuner.db.engine import READ_ONLY
from tuner.db.models import CurveRow, StudyRow, TrialRow
from tuner.db.urls import storage_failure
from tuner.errors import BadInput
from tuner.results import (
    FINISHED,
    STATES,
    Counts,
    Provenance,
    StudySummary,
    TrialDetail,
    TrialSummary,
)


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


def summary(connection: Connection, study: Row, unrecorded: list[TrialSummary]) -> StudySummary:
    """The study with its counts and best trial; ``unrecorded`` are the trials only Optuna
    knows."""
    top = best(connection, study, [], 1)
    return StudySummary(
        name=study.name,
        task=study.task,
        metric=study.settings.get("metric", "value"),
        direction=direction(study),
        counts=counts(connection, study, [], unrecorded),
        best=top[0] if top else None,
        created_at=study.created_at,
    )


def counts(
    connection: Connection,
    study: Row,
    filters: list[ColumnElement[bool]],
    unrecorded: list[TrialSummary],
) -> Counts:
    """The outcomes of the study's recorded trials that pass ``filters``, and of ``unrecorded``."""
    c = columns()
    query = (
        select(c.outcome, func.count()).where(c.study_id == study.id, *filters).group_by(c.outcome)
    )
    outcomes = Counter(dict((*row,) for row in connection.execute(query)))
    outcomes.update(t.outcome for t in unrecorded)
    return Counts(**outcomes)


# --- Trials ------------------------------------------------------------------------------------


def columns() -> Any:
    """The columns of tuner's trial table."""
    return TrialRow.__table__.c


def listing(study_id: int) -> Any:
    """The columns of one study's trials that a listing shows: never the curves."""
    c = columns()
    shown = (
        c.number,
        c.outcome,
        c.value,
        c.optimizer,
        c.schedule,
        c.params,
        c.wall_time_s,
        c.steps,
        c.metrics,
        c.reason,
        c.finished_at,
    )
    return select(*shown).where(c.study_id == study_id)


def best(
    connection: Connection, study: Row, filters: list[ColumnElement[bool]], n: int
) -> list[TrialSummary]:
    """The study's top ``n`` finished trials that pass ``filters``, best first."""
    query = (
        listing(study.id)
        .where(*filters)
        .where(columns().outcome.in_(FINISHED))
        .order_by(*ranked(direction(study)))
        .limit(n)
    )
    return [from_row(row) for row in connection.execute(query)]


def trials(
    connection: Connection,
    study: Row,
    filters: list[ColumnElement[bool]],
    states: Sequence[str],
    sort: str,
    limit: int | None,
) -> list[TrialSummary]:
    """The study's recorded trials in ``states`` that pass ``filters``, sorted and limited."""
    query = (
        listing(study.id)
        .where(*filters, columns().outcome.in_(states))
        .order_by(*sql_order(sort, direction(study)))
        .limit(limit)
    )
    return [from_row(row) for row in connection.execute(query)]


def trial_row(connection: Connection, study_id: int, number: int) -> Row | None:
    """Trial ``number``'s row with its curves, or None when it has no row of ours."""
    query = (
        select(TrialRow.__table__, CurveRow.losses, CurveRow.lrs, CurveRow.evals)
        .outerjoin(CurveRow)
        .where(TrialRow.study_id == study_id, TrialRow.number == number)
    )
    return connection.execute(query).first()


def outcomes_by(connection: Connection, study_id: int, by: str) -> list[tuple[Any, ...]]:
    """(``by``, number, outcome, value) of every recorded trial, ``by`` being a column such as
    ``optimizer`` or ``schedule``."""
    c = columns()
    query = select(c[by], c.number, c.outcome, c.value).where(c.study_id == study_id)
    return [(*row,) for row in connection.execute(query)]


def ranked(direction: str) -> list[ColumnElement[Any]]:
    """ORDER BY terms that rank as :func:`tuner.results.rank_key` does, on SQLite and
    PostgreSQL alike.

    SQLite stores NaN as NULL, PostgreSQL sorts NaN above infinity: "finite" is tested as
    ``abs(value) <= the largest double``, which NULL, NaN and infinities all fail, and every
    non-finite value sorts as 0 so that trial numbers alone order them.
    """
    value = columns().value
    finite = and_(value.is_not(None), func.abs(value) <= sys.float_info.max)
    tier = case({state: i for i, state in enumerate(STATES)}, value=columns().outcome)
    sign = -1.0 if direction == "maximize" else 1.0
    return [
        case((finite, 0), else_=1),
        tier,
        case((finite, value * sign), else_=0.0),
        columns().number,
    ]


def sql_order(sort: str, direction: str) -> list[Any]:
    if sort == "value":
        return ranked(direction)
    if sort == "duration":
        return [columns().wall_time_s, columns().number]
    return [columns().number]


def filters(
    connection: Connection,
    study: Row,
    optimizer: str | Sequence[str] | None,
    schedule: str | Sequence[str] | None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the optimizers and schedules asked for; BadInput naming those the
    study used when it never used one of them."""
    clauses = []
    for kind, wanted in (("optimizer", optimizer), ("schedule", schedule)):
        if wanted is None:
            continue
        column_ = columns()[kind]
        searched = study.settings.get("space", {}).get(f"{kind}s", {})
        recorded = connection.scalars(
            select(column_).where(columns().study_id == study.id).distinct()
        )
        used = sorted(set(searched) | set(recorded))
        for name in names(wanted):
            if name not in used:
                raise BadInput(
                    f"study '{study.name}' never used {kind} '{name}'; it used {', '.join(used)}"
                )
        clauses.append(column_.in_(names(wanted)))
    return clauses


def matching(
    trials: list[TrialSummary],
    states: Sequence[str],
    optimizer: str | Sequence[str] | None,
    schedule: str | Sequence[str] | None,
) -> list[TrialSummary]:
    """The trials, read without SQL, that :func:`filters` and ``states`` would let through."""

    def wanted(value: str | None, asked: str | Sequence[str] | None) -> bool:
        return asked is None or value in names(asked)

    return [
        t
        for t in trials
        if t.outcome in states and wanted(t.optimizer, optimizer) and wanted(t.schedule, schedule)
    ]


def names(given: str | Sequence[str]) -> tuple[str, ...]:
    return (given,) if isinstance(given, str) else tuple(given)


def from_row(row: Row) -> TrialSummary:
    return TrialSummary(
        number=row.number,
        outcome=row.outcome,
        value=row.value,
        optimizer=row.optimizer,
        schedule=row.schedule,
        params=row.params,
        duration_s=row.wall_time_s,
        steps=row.steps,
        metrics=row.metrics,
        reason=row.reason,
        finished_at=row.finished_at,
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


# --- Optuna's tables -----------------------------------------------------------------------------


def optuna_tables() -> tuple[Any, Any]:
    """The two columns of Optuna's ``trials`` and ``studies`` tables that we read."""
    trials = table("trials", column("trial_id"), column("number"), column("study_id"))
    return trials, table("studies", column("study_id"), column("study_name"))


def has_optuna_tables(connection: Connection) -> bool:
    return inspect(connection).has_table("trials")


def unrecorded_ids(connection: Connection, study: Row) -> list[int]:
    """Optuna's ids of the study's trials that have no row of ours, in one indexed query
    against our rows. Call only when :func:`has_optuna_tables`."""
    trials, studies = optuna_tables()
    ours = columns()
    recorded = exists().where(ours.study_id == study.id, ours.number == trials.c.number)
    query = (
        select(trials.c.trial_id)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(studies.c.study_name == study.name, ~recorded)
        .order_by(trials.c.number)
    )
    return list(connection.scalars(query))


def optuna_trial_id(connection: Connection, study_name: str, number: int) -> int | None:
    """Optuna's id of trial ``number``, or None; then :func:`optuna_trial_count` says how many
    there are. Call only when :func:`has_optuna_tables`."""
    query = _optuna_trials(study_name)
    found = connection.execute(query.where(query.selected_columns.number == number)).first()
    return None if found is None else found.trial_id


def optuna_trial_count(connection: Connection, study_name: str) -> int:
    query = select(func.count()).select_from(_optuna_trials(study_name).subquery())
    return connection.scalar(query) or 0


def _optuna_trials(study_name: str) -> Any:
    trials, studies = optuna_tables()
    return (
        select(trials.c.trial_id, trials.c.number)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(studies.c.study_name == study_name)
    )
