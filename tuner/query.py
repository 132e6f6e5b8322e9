"""Every read of a search's results that a command or a script needs, as typed objects.

After a search people ask what won, how sure they can be, and how each optimizer and schedule
did. Optuna could answer through ``study.trials``, but that loads every parameter, attribute
and intermediate value of every trial: seconds for a study of ten thousand. tuner's own tables
hold one row per trial with its optimizer, schedule, outcome and value in indexed columns, so
these reads select the few columns they need and let the database filter, sort and limit.
Curves are read for the one trial shown, never for a listing. Optuna is asked only about the
trials that have no row of ours: those still running, and those that failed before their
record was written (an interrupted search leaves some).

Reading never writes: a SQLite file that does not exist is not created, tables that are behind
are not migrated, and on SQLite each read is one DEFERRED transaction, which under WAL never
waits for a writer.

The module imports the database layer only when a storage is opened, so that ``import tuner``,
which every plugin does, stays fast.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput, TunerError, did_you_mean

if TYPE_CHECKING:
    import pandas
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial
    from sqlalchemy import Connection, Row
    from sqlalchemy.sql import ColumnElement

# tuner's outcomes, in the order they rank, then the state of a trial that has none yet.
STATES = ("complete", "pruned", "diverged", "failed", "interrupted", "running")
FINISHED = ("complete", "pruned", "diverged")
SORTS = ("value", "number", "duration")
GROUPINGS = ("optimizer", "schedule")
_FROM_OPTUNA = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    # Enqueued, not yet started.
    "WAITING": "running",
}
_OPTUNA_STATE = {
    "complete": "COMPLETE",
    "pruned": "PRUNED",
    "diverged": "PRUNED",
    "failed": "FAIL",
    "interrupted": "FAIL",
    "running": "RUNNING",
}
# Fewer finished values than this say nothing about how widely a group's trials spread.
MIN_FOR_SPREAD = 4


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
        return sum(getattr(self, state) for state in STATES)

    @property
    def finished(self) -> int:
        """Complete, pruned and diverged trials: those that ``--trials`` counts."""
        return self.complete + self.pruned + self.diverged

    def to_json(self) -> dict[str, int]:
        return {**{state: getattr(self, state) for state in STATES}, "total": self.total}

    def __str__(self) -> str:
        parts = [f"{getattr(self, state)} {state}" for state in STATES if getattr(self, state)]
        return ", ".join(parts) or "no trials"


@dataclass(frozen=True)
class TrialSummary:
    """One trial as ranked and listed: what it sampled, how it ended, what it took.

    ``outcome`` is tuner's word for the ending (see ``STATES``); :attr:`state` is Optuna's, in
    which a diverged trial is PRUNED. ``value`` is the study's objective at the trial's last
    evaluation: for a pruned trial, the one at which it was stopped; None when there was none.
    ``params`` holds every parameter Optuna sampled, ``lr`` and ``optimizer`` among them, under
    Optuna's names (``adam.beta1``). ``duration_s`` is the trial's own time, training and
    evaluation. A running trial, or one that failed before its record was written, is known to
    Optuna alone: it has its parameters, and None or nothing for the rest.
    """

    number: int
    outcome: str
    value: float | None
    optimizer: str | None
    schedule: str | None
    params: dict[str, Any]
    duration_s: float | None
    steps: int | None
    metrics: dict[str, float]
    reason: str | None
    finished_at: datetime | None

    @property
    def state(self) -> str:
        return _OPTUNA_STATE[self.outcome]

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
                "finished_at": self.finished_at,
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
    """A study: its task, its objective and direction, its trials, and its best trial."""

    name: str
    task: str
    metric: str
    direction: str
    counts: Counts
    best: TrialSummary | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "metric": self.metric,
            "direction": self.direction,
            "trials": self.counts.to_json(),
            "best": None if self.best is None else self.best.to_json(),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class GroupStats:
    """The trials of one optimizer, or of one schedule, in a study.

    ``best_value``, ``best_trial`` and ``best_outcome`` are those of the group's best trial,
    ranked as :meth:`Results.best` ranks; ``median`` and ``iqr`` (the interquartile range,
    None under ``MIN_FOR_SPREAD`` values) describe the finite values of its finished trials.
    """

    name: str | None
    counts: Counts
    best_value: float | None
    best_trial: int | None
    best_outcome: str | None
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


def open_results(url: str) -> Results:
    """The studies stored at ``url``, for reading; use it as a context manager to close it."""
    return Results(url)


class Results:
    """Read-only access to the studies in one storage.

    Each method is one short read; a study is named as in ``tuner search --study``. Bad
    requests (an unknown study, trial, state or filter) raise :class:`tuner.errors.BadInput`
    with a one-line message that says what exists.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        from tuner.db import make_engine, mask_url, schema_state, sqlite_path

        self.storage = mask_url(url)
        self._url = url
        state = schema_state(url)
        if state.status == "missing":
            raise BadInput(f"no database at {sqlite_path(make_url(url))}")
        if state.status in ("behind", "ahead"):
            raise TunerError(state.problem)
        # A database without tuner's tables holds no tuner study; it is not an error to look.
        self._has_tables = state.status == "current"
        self._engine = make_engine(url)
        self._optuna_storage: RDBStorage | None = None
        self._optuna_tables: bool | None = None

    def close(self) -> None:
        self._engine.dispose()
        if self._optuna_storage is not None:
            self._optuna_storage.engine.dispose()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- The questions ---------------------------------------------------------------------

    def studies(self) -> list[StudySummary]:
        """Every study, oldest first."""
        if not self._has_tables:
            return []
        from sqlalchemy import select

        from tuner.db import StudyRow

        with self._reading() as connection:
            query = select(StudyRow.name).order_by(StudyRow.created_at, StudyRow.name)
            names = list(connection.scalars(query))
        summaries = []
        for name in names:
            with self._read_study(name) as (connection, study, unrecorded):
                summaries.append(_summary(connection, study, unrecorded))
        return summaries

    def study(self, name: str) -> StudySummary:
        """One study, with its counts and best trial."""
        with self._read_study(name) as (connection, study, unrecorded):
            return _summary(connection, study, unrecorded)

    def counts(
        self,
        study: str,
        *,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
    ) -> Counts:
        """How the study's trials of these optimizers and schedules ended; of all its trials
        when neither is given."""
        with self._read_study(study) as (connection, record, unrecorded):
            filters = _filters(connection, record, optimizer, schedule)
            wanted = _matching(unrecorded, STATES, optimizer, schedule)
            return _counts(connection, record, filters, wanted)

    def best(
        self,
        study: str,
        n: int = 5,
        *,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
    ) -> list[TrialSummary]:
        """The top ``n`` finished trials, best first.

        Complete trials rank before pruned ones, and pruned before diverged: a pruned trial's
        value was measured before the end and is not comparable. Within each, the better value
        comes first in the study's direction, ties broken by trial number, and a trial whose
        value is missing or not finite ranks after every trial with a finite one. So the first
        is Optuna's ``study.best_trial``. Empty when no trial has finished.
        """
        if n < 1:
            raise BadInput(f"n must be at least 1, got {n}")
        with self._reading() as connection:
            record = self._find(connection, study)
            query = (
                _listing(record.id)
                .where(*_filters(connection, record, optimizer, schedule))
                .where(_columns().outcome.in_(FINISHED))
                .order_by(*_ranked(_direction(record)))
                .limit(n)
            )
            return [_from_row(row) for row in connection.execute(query)]

    def trials(
        self,
        study: str,
        *,
        state: str | Sequence[str] | None = None,
        optimizer: str | Sequence[str] | None = None,
        schedule: str | Sequence[str] | None = None,
        sort: str = "number",
        limit: int | None = None,
    ) -> list[TrialSummary]:
        """The study's trials, running ones included, filtered, sorted and limited.

        ``state`` is one or more of ``STATES``; ``sort`` is ``number``, ``value`` (best first,
        as :meth:`best` ranks, then failed and running trials) or ``duration`` (shortest
        first, running trials last).
        """
        states = STATES if state is None else _names(state)
        for name in states:
            if name not in STATES:
                raise BadInput(f"unknown state '{name}'{did_you_mean(name, STATES)}")
        if sort not in SORTS:
            raise BadInput(f"unknown sort '{sort}'{did_you_mean(sort, SORTS)}")
        if limit is not None and limit < 1:
            raise BadInput(f"limit must be at least 1, got {limit}")
        with self._read_study(study) as (connection, record, unrecorded):
            direction = _direction(record)
            filters = _filters(connection, record, optimizer, schedule)
            query = (
                _listing(record.id)
                .where(*filters, _columns().outcome.in_(states))
                .order_by(*_sql_order(sort, direction))
                .limit(limit)
            )
            recorded = [_from_row(row) for row in connection.execute(query)]
        wanted = _matching(unrecorded, states, optimizer, schedule)
        return sorted([*recorded, *wanted], key=_python_order(sort, direction))[:limit]

    def trial(self, study: str, number: int) -> TrialDetail:
        """One trial in full, learning curve included."""
        from sqlalchemy import select

        from tuner.db import CurveRow, TrialRow

        with self._reading() as connection:
            record = self._find(connection, study)
            query = (
                select(TrialRow.__table__, CurveRow.losses, CurveRow.lrs, CurveRow.evals)
                .outerjoin(CurveRow)
                .where(TrialRow.study_id == record.id, TrialRow.number == number)
            )
            row = connection.execute(query).first()
            optuna_id = None if row else self._optuna_trial_id(connection, record, number)
        provenance = _provenance(record)
        if row is not None:
            return TrialDetail(
                **vars(_from_row(row)),
                seed=row.seed,
                step_time_s=row.step_time_s,
                compiled=row.compiled,
                provenance=provenance,
                losses=row.losses or [],
                lrs=row.lrs or [],
                evals=row.evals or [],
            )
        (unrecorded,) = self._optuna_trials([optuna_id])
        return TrialDetail(
            **vars(unrecorded),
            seed=None,
            step_time_s=None,
            compiled=None,
            provenance=provenance,
            losses=[],
            lrs=[],
            evals=[],
        )

    def to_dataframe(self, study: str) -> pandas.DataFrame:
        """Every trial of ``study``, one row each, in the columns of ``tuner trials --format
        csv``: the JSON of :class:`TrialSummary` flattened (``params.lr``, ``metrics.r2``)."""
        try:
            # Optional: only this method needs pandas.
            import pandas
        except ImportError:
            raise TunerError("to_dataframe needs pandas: pip install 'tuner[pandas]'") from None
        return pandas.json_normalize([trial.to_json() for trial in self.trials(study)])

    def compare(self, study: str, by: str = "optimizer") -> Comparison:
        """The study's trials grouped by ``optimizer`` or ``schedule``, and which group leads.

        A group leads by its best trial, ranked as :meth:`best` ranks. Its lead over the
        runner-up counts as clear when the gap between their best values exceeds the larger
        interquartile range of their finished values: when the leader's best is better than
        the trial-to-trial variation of either group explains.
        """
        from sqlalchemy import select

        if by not in GROUPINGS:
            raise BadInput(f"cannot group by '{by}'; group by optimizer or schedule")
        c = _columns()
        with self._read_study(study) as (connection, record, unrecorded):
            query = select(c[by], c.number, c.outcome, c.value).where(c.study_id == record.id)
            rows = [(*row,) for row in connection.execute(query)]
        rows += [(getattr(t, by), t.number, t.outcome, None) for t in unrecorded]
        direction = _direction(record)
        groups = _groups(rows, direction)
        return _judge(record.name, by, record.settings.get("metric", "value"), direction, groups)

    # --- Reading -----------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        from tuner.db import READ_ONLY, storage_failure

        try:
            with self._engine.connect() as connection:
                connection = connection.execution_options(**{READ_ONLY: True})
                with connection.begin():
                    yield connection
        except SQLAlchemyError as error:
            raise storage_failure(error, self._engine.url) from None

    @contextmanager
    def _read_study(self, name: str) -> Iterator[tuple[Connection, Row, list[TrialSummary]]]:
        """One read of study ``name``: a connection, the study's row, and the trials that
        only Optuna knows, found in the same snapshot as the rest."""
        with self._reading() as connection:
            study = self._find(connection, name)
            unrecorded = self._optuna_trials(self._unrecorded_ids(connection, study))
            yield connection, study, unrecorded

    def _find(self, connection: Connection, name: str) -> Row:
        """The row of study ``name``; BadInput, suggesting the nearest names, if none."""
        from sqlalchemy import select

        from tuner.db import StudyRow

        names: list[str] = []
        if self._has_tables:
            query = select(StudyRow.__table__).where(StudyRow.name == name)
            row = connection.execute(query).first()
            if row is not None:
                return row
            names = list(connection.scalars(select(StudyRow.name)))
        hint = did_you_mean(name, names) if names else "; it holds no study"
        raise BadInput(f"no study '{name}' in {self.storage}{hint}")

    def _has_optuna_tables(self, connection: Connection) -> bool:
        from sqlalchemy import inspect

        if self._optuna_tables is None:
            self._optuna_tables = inspect(connection).has_table("trials")
        return self._optuna_tables

    def _unrecorded_ids(self, connection: Connection, study: Row) -> list[int]:
        """Optuna's ids of the study's trials that have no row of ours: running ones, and
        those that failed before their record was written.

        Optuna's storage cannot say which these are without reading every trial it has with
        all its parameters (its ``get_n_trials`` does), or every failed one by state, seconds
        for a large study. So this reads the ids and numbers of Optuna's ``trials`` table, the
        columns every Optuna version has had, against our rows, in one indexed query.
        """
        from sqlalchemy import exists, select

        if not self._has_optuna_tables(connection):
            return []
        trials, studies = _optuna_tables()
        ours = _columns()
        recorded = exists().where(ours.study_id == study.id, ours.number == trials.c.number)
        query = (
            select(trials.c.trial_id)
            .join(studies, studies.c.study_id == trials.c.study_id)
            .where(studies.c.study_name == study.name, ~recorded)
            .order_by(trials.c.number)
        )
        return list(connection.scalars(query))

    def _optuna_trial_id(self, connection: Connection, study: Row, number: int) -> int:
        """Optuna's id of trial ``number``; BadInput, saying which numbers exist, if none."""
        from sqlalchemy import func, select

        count = 0
        if self._has_optuna_tables(connection):
            trials, studies = _optuna_tables()
            query = (
                select(trials.c.trial_id, trials.c.number)
                .join(studies, studies.c.study_id == trials.c.study_id)
                .where(studies.c.study_name == study.name)
            )
            found = connection.execute(query.where(trials.c.number == number)).first()
            if found is not None:
                return found.trial_id
            count = connection.scalar(select(func.count()).select_from(query.subquery()))
        if not count:
            raise BadInput(f"study '{study.name}' has no trial {number}: it has no trials yet")
        raise BadInput(
            f"study '{study.name}' has no trial {number}: its {count} trials are numbered "
            f"0 to {count - 1}"
        )

    def _optuna_trials(self, ids: list[int]) -> list[TrialSummary]:
        """Trials as Optuna's storage knows them, opened to read only: it neither creates
        tables nor migrates."""
        if not ids:
            return []
        with self._optuna_errors():
            if self._optuna_storage is None:
                import optuna

                from tuner.db import engine_kwargs

                self._optuna_storage = optuna.storages.RDBStorage(
                    self._engine.url.render_as_string(hide_password=False),
                    engine_kwargs=engine_kwargs(self._url),
                    skip_compatibility_check=True,
                    skip_table_creation=True,
                )
            return [_from_optuna(self._optuna_storage.get_trial(id_)) for id_ in ids]

    @contextmanager
    def _optuna_errors(self) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        from tuner.db import storage_failure

        try:
            yield
        except SQLAlchemyError as error:
            raise storage_failure(error, self._engine.url) from None


# --- SQL ---------------------------------------------------------------------------------------


def _columns() -> Any:
    """The columns of tuner's trial table, imported on first use (see the module's docstring)."""
    from tuner.db import TrialRow

    return TrialRow.__table__.c


def _summary(connection: Connection, study: Row, unrecorded: list[TrialSummary]) -> StudySummary:
    direction = _direction(study)
    best_query = (
        _listing(study.id)
        .where(_columns().outcome.in_(FINISHED))
        .order_by(*_ranked(direction))
        .limit(1)
    )
    best = connection.execute(best_query).first()
    return StudySummary(
        name=study.name,
        task=study.task,
        metric=study.settings.get("metric", "value"),
        direction=direction,
        counts=_counts(connection, study, [], unrecorded),
        best=None if best is None else _from_row(best),
        created_at=study.created_at,
    )


def _counts(
    connection: Connection,
    study: Row,
    filters: list[ColumnElement[bool]],
    unrecorded: list[TrialSummary],
) -> Counts:
    """The outcomes of the study's recorded trials that pass ``filters``, and of ``unrecorded``."""
    from sqlalchemy import func, select

    c = _columns()
    query = (
        select(c.outcome, func.count()).where(c.study_id == study.id, *filters).group_by(c.outcome)
    )
    outcomes = Counter(dict((*row,) for row in connection.execute(query)))
    outcomes.update(t.outcome for t in unrecorded)
    return Counts(**outcomes)


def _direction(study: Row) -> str:
    return study.settings.get("direction", "minimize")


def _listing(study_id: int) -> Any:
    """The columns a listing shows, of one study's trials: never the curves."""
    from sqlalchemy import select

    c = _columns()
    columns = (
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
    return select(*columns).where(c.study_id == study_id)


def _ranked(direction: str) -> list[ColumnElement[Any]]:
    """ORDER BY terms that rank as :func:`_rank_key` does, on SQLite and PostgreSQL alike.

    SQLite stores NaN as NULL, PostgreSQL sorts NaN above infinity: "finite" is tested as
    ``abs(value) <= the largest double``, which NULL, NaN and infinities all fail, and every
    non-finite value sorts as 0 so that trial numbers alone order them.
    """
    from sqlalchemy import and_, case, func

    value = _columns().value
    finite = and_(value.is_not(None), func.abs(value) <= sys.float_info.max)
    tier = case({state: i for i, state in enumerate(STATES)}, value=_columns().outcome)
    sign = -1.0 if direction == "maximize" else 1.0
    return [
        case((finite, 0), else_=1),
        tier,
        case((finite, value * sign), else_=0.0),
        _columns().number,
    ]


def _rank_key(
    outcome: str, value: float | None, number: int, direction: str
) -> tuple[bool, int, float, int]:
    """Where a trial ranks: finite values first, then by outcome (complete, pruned, diverged,
    failed, running), then by value in the study's direction, then by number."""
    finite = value is not None and math.isfinite(value)
    sign = -1.0 if direction == "maximize" else 1.0
    return (not finite, STATES.index(outcome), sign * value if finite else 0.0, number)


def _sql_order(sort: str, direction: str) -> list[Any]:
    if sort == "value":
        return _ranked(direction)
    if sort == "duration":
        return [_columns().wall_time_s, _columns().number]
    return [_columns().number]


def _python_order(sort: str, direction: str) -> Any:
    if sort == "value":
        return lambda t: _rank_key(t.outcome, t.value, t.number, direction)
    if sort == "duration":
        return lambda t: (t.duration_s is None, t.duration_s or 0.0, t.number)
    return lambda trial: trial.number


def _filters(
    connection: Connection,
    study: Row,
    optimizer: str | Sequence[str] | None,
    schedule: str | Sequence[str] | None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the optimizers and schedules asked for; BadInput naming those the
    study used when it never used one of them."""
    from sqlalchemy import select

    clauses = []
    for kind, names in (("optimizer", optimizer), ("schedule", schedule)):
        if names is None:
            continue
        column = _columns()[kind]
        searched = study.settings.get("space", {}).get(f"{kind}s", {})
        recorded = connection.scalars(
            select(column).where(_columns().study_id == study.id).distinct()
        )
        used = sorted(set(searched) | set(recorded))
        for name in _names(names):
            if name not in used:
                raise BadInput(
                    f"study '{study.name}' never used {kind} '{name}'; it used {', '.join(used)}"
                )
        clauses.append(column.in_(_names(names)))
    return clauses


def _names(names: str | Sequence[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)


def _from_row(row: Row) -> TrialSummary:
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


def _optuna_tables() -> tuple[Any, Any]:
    """The two columns of Optuna's ``trials`` and ``studies`` tables that we read."""
    from sqlalchemy import column, table

    trials = table("trials", column("trial_id"), column("number"), column("study_id"))
    return trials, table("studies", column("study_id"), column("study_name"))


def _from_optuna(trial: FrozenTrial) -> TrialSummary:
    outcome = _FROM_OPTUNA[trial.state.name]
    reason = trial.user_attrs.get("reason")
    if outcome == "failed" and reason is None:
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
        steps=None,
        metrics={},
        reason=reason,
        finished_at=ended,
    )


def _utc(moment: datetime | None) -> datetime | None:
    # Optuna stores naive local times.
    return None if moment is None else moment.astimezone(UTC)


def _matching(
    trials: list[TrialSummary],
    states: Sequence[str],
    optimizer: str | Sequence[str] | None,
    schedule: str | Sequence[str] | None,
) -> list[TrialSummary]:
    def wanted(value: str | None, names: str | Sequence[str] | None) -> bool:
        return names is None or value in _names(names)

    return [
        t
        for t in trials
        if t.outcome in states and wanted(t.optimizer, optimizer) and wanted(t.schedule, schedule)
    ]


def _provenance(study: Row) -> Provenance:
    return Provenance(
        plugins=study.plugins,
        versions=study.versions,
        device=study.device,
        seed=study.seed,
        command=study.command,
    )


# --- Comparing groups -------------------------------------------------------------------------


def _groups(rows: list[tuple[Any, ...]], direction: str) -> list[GroupStats]:
    """One GroupStats for each name among ``(name, number, outcome, value)`` rows: the group
    with the best trial first, groups without a finished trial last, by name."""
    by_name: dict[str | None, list[tuple[Any, ...]]] = {}
    for name, *trial in rows:
        by_name.setdefault(name, []).append(trial)
    ranked = []
    for name, trials in by_name.items():
        finished = sorted(
            (_rank_key(outcome, value, number, direction), number, outcome, value)
            for number, outcome, value in trials
            if outcome in FINISHED
        )
        values = [t[3] for t in finished if t[3] is not None and math.isfinite(t[3])]
        rank, number, outcome, value = finished[0] if finished else ((), None, None, None)
        group = GroupStats(
            name=name,
            counts=Counts.of(trial[1] for trial in trials),
            best_value=value,
            best_trial=number,
            best_outcome=outcome,
            median=statistics.median(values) if values else None,
            iqr=_iqr(values),
        )
        ranked.append(((not finished, rank, name or ""), group))
    return [group for _, group in sorted(ranked, key=lambda pair: pair[0])]


def _iqr(values: list[float]) -> float | None:
    if len(values) < MIN_FOR_SPREAD:
        return None
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return high - low


def _judge(
    study: str, by: str, metric: str, direction: str, groups: list[GroupStats]
) -> Comparison:
    """The comparison, with its verdict in words."""
    ranked = [g for g in groups if g.best_value is not None and math.isfinite(g.best_value)]
    leader = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    gap = spread = clear = None
    if leader is None:
        verdict = "No trial has finished with a value yet: nothing to compare."
    elif runner_up is None:
        verdict = (
            f"Only {by} {leader.name} has finished trials with a value: "
            "there is nothing to compare it with."
        )
    elif leader.best_outcome != runner_up.best_outcome:
        verdict = (
            f"{by.capitalize()} {leader.name} leads: its best trial ({leader.best_trial}, "
            f"{metric} {_short(leader.best_value)}) is {leader.best_outcome}, while the best of "
            f"{runner_up.name} was {runner_up.best_outcome}, its value measured before the end."
        )
    elif leader.best_value == runner_up.best_value:
        gap, clear = 0.0, False
        verdict = (
            f"{by.capitalize()} {leader.name} and {runner_up.name} tie for the best {metric}, "
            f"{_short(leader.best_value)}: nothing separates them yet."
        )
    else:
        gap = abs(leader.best_value - runner_up.best_value)
        spreads = [g.iqr for g in (leader, runner_up) if g.iqr is not None]
        spread = max(spreads) if spreads else None
        verdict = (
            f"{by.capitalize()} {leader.name} leads: its best {metric} {_short(leader.best_value)} "
            f"(trial {leader.best_trial}) is {_short(gap)} better than {runner_up.name}'s "
            f"{_short(runner_up.best_value)}"
        )
        if spread is None:
            verdict += (
                f"; too few finished trials to measure the spread within groups "
                f"({MIN_FOR_SPREAD} a group are needed)."
            )
        else:
            clear = gap > spread
            verdict += (
                f", {'more' if clear else 'no more'} than the spread within groups "
                f"(interquartile range up to {_short(spread)}): "
                + ("the lead is clear." if clear else "the lead may be chance; run more trials.")
            )
    return Comparison(
        study=study,
        by=by,
        metric=metric,
        direction=direction,
        groups=groups,
        leader=None if leader is None else leader.name,
        gap=gap,
        spread=spread,
        clear=clear,
        verdict=verdict,
    )


def _short(value: float) -> str:
    return f"{value:.4g}"


# --- JSON --------------------------------------------------------------------------------------


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
