"""tuner's records of studies and trials, read and written in short transactions.

A study's record says what produced it; a trial's record, with its learning curve, is written
once, at the trial's end, in one transaction, so that a reader never sees half a trial and a
crash never leaves one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, sessionmaker

from tuner.db.engine import READ_ONLY, engine_for, make_engine
from tuner.db.migrations import ensure_ready, read_state
from tuner.db.models import OUTCOMES, CurveRow, StudyRow, TrialRow
from tuner.db.urls import storage_failure
from tuner.errors import TunerError


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StudyRecord:
    """What produced a study: its task and settings (the search space among them), the plugins
    and library versions, the device, the seed and the command line."""

    name: str
    task: str
    settings: dict[str, Any]
    plugins: dict[str, str | None]
    versions: dict[str, str]
    device: str
    seed: int
    command: str
    created_at: datetime = field(default_factory=_now)


@dataclass
class TrialRecord:
    """One finished trial of a study and its learning curve: the loss and learning rate of
    every step, and the metrics of every evaluation."""

    study: str
    number: int
    optimizer: str
    schedule: str
    params: dict[str, Any]
    seed: int
    steps: int
    wall_time_s: float
    step_time_s: float | None
    compiled: bool
    metrics: dict[str, Any]
    value: float | None
    outcome: str
    reason: str | None = None
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    finished_at: datetime = field(default_factory=_now)


_STUDY_FIELDS = tuple(f.name for f in fields(StudyRecord))
_CURVE_FIELDS = ("losses", "lrs", "evals")
_TRIAL_FIELDS = tuple(
    f.name for f in fields(TrialRecord) if f.name not in ("study", *_CURVE_FIELDS)
)


def _trial_record(study: str, row: TrialRow, curves: bool) -> TrialRecord:
    record = TrialRecord(study=study, **{name: getattr(row, name) for name in _TRIAL_FIELDS})
    if curves and row.curve is not None:
        for name in _CURVE_FIELDS:
            setattr(record, name, getattr(row.curve, name))
    return record


class Store:
    """tuner's records of studies and trials, each read or written in one short transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine: Engine = sessions.kw["bind"]

    def close(self) -> None:
        """Close the store's connections; a closed store reconnects if it is used again."""
        self._engine.dispose()

    @contextmanager
    def _transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                if read_only:
                    session.connection(execution_options={READ_ONLY: True})
                yield session
        except SQLAlchemyError as error:
            raise storage_failure(error, self._engine.url) from None

    def save_study(self, record: StudyRecord) -> None:
        """Record a study; a study that already has a record (one resumed) keeps its first."""
        values = {name: getattr(record, name) for name in _STUDY_FIELDS}
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(StudyRow).values(values).on_conflict_do_nothing()
        with self._transaction() as session:
            session.execute(statement)

    def study(self, name: str) -> StudyRecord | None:
        with self._transaction(read_only=True) as session:
            row = session.scalar(select(StudyRow).where(StudyRow.name == name))
            if row is None:
                return None
            return StudyRecord(**{name: getattr(row, name) for name in _STUDY_FIELDS})

    def twins(self, seed: int, settings: dict[str, Any]) -> list[str]:
        """The studies made with this seed and these settings, oldest first: a new study like
        them would repeat their trials one by one."""
        query = select(StudyRow.name, StudyRow.settings).where(StudyRow.seed == seed)
        with self._transaction(read_only=True) as session:
            rows = session.execute(query.order_by(StudyRow.created_at))
            return [name for name, stored in rows if stored == settings]

    def save_trial(self, record: TrialRecord) -> None:
        """Write a trial and its curve in one transaction: all of it is stored, or none."""
        if record.outcome not in OUTCOMES:
            raise ValueError(f"a trial's outcome is one of {OUTCOMES}, not {record.outcome!r}")
        with self._transaction() as session:
            study_id = session.scalar(select(StudyRow.id).where(StudyRow.name == record.study))
            if study_id is None:
                raise TunerError(f"study '{record.study}' has no record to add a trial to")
            taken = select(TrialRow.id).filter_by(study_id=study_id, number=record.number)
            if session.scalar(taken) is not None:
                raise TunerError(
                    f"trial {record.number} of study '{record.study}' is already recorded"
                )
            curve = CurveRow(**{name: getattr(record, name) for name in _CURVE_FIELDS})
            values = {name: getattr(record, name) for name in _TRIAL_FIELDS}
            session.add(TrialRow(study_id=study_id, curve=curve, **values))

    def trial(self, study: str, number: int) -> TrialRecord | None:
        with self._transaction(read_only=True) as session:
            row = session.scalar(
                select(TrialRow)
                .join(StudyRow)
                .where(StudyRow.name == study, TrialRow.number == number)
                .options(joinedload(TrialRow.curve))
            )
            return None if row is None else _trial_record(study, row, curves=True)

    def trials(self, study: str, *, curves: bool = True) -> list[TrialRecord]:
        """The study's trials by number; without ``curves`` their curve lists stay empty, which
        spares reading megabytes of curves to list a large study."""
        query = (
            select(TrialRow).join(StudyRow).where(StudyRow.name == study).order_by(TrialRow.number)
        )
        if curves:
            query = query.options(joinedload(TrialRow.curve))
        with self._transaction(read_only=True) as session:
            return [_trial_record(study, row, curves) for row in session.scalars(query)]


def open_store(url: str) -> Store:
    """The store on ``url``, its tables ready (see :func:`~tuner.db.migrations.ensure_ready`)."""
    engine = make_engine(url)
    try:
        ensure_ready(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise storage_failure(error, engine.url) from None
    except BaseException:
        engine.dispose()
        raise
    return Store(sessionmaker(engine, expire_on_commit=False))


def find_study(url: str, name: str) -> StudyRecord | None:
    """The record of study ``name`` at ``url``, if there is one; reads only, and creates no
    SQLite file, so that a request can be checked against it before anything is written."""
    with engine_for(url, create=False) as engine:
        if engine is None or read_state(engine).status != "current":
            return None
        return Store(sessionmaker(engine, expire_on_commit=False)).study(name)
