"""Writes tuner's records of studies and trials, each in one short transaction.

A study's record says what produced it; a trial's record, with its learning curve, is written
once, at the trial's end, in one transaction, so that a reader never sees half a trial and a
crash never leaves one. The records are the rows of :mod:`tuner.db.models`; every read goes
through :class:`tuner.query.Results`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tuner.db.engine import make_engine
from tuner.db.migrations import ensure_ready
from tuner.db.models import ConfirmationRow, StudyRow, TrialRow
from tuner.db.retry import retrying
from tuner.db.urls import storage_failure
from tuner.errors import TunerError

T = TypeVar("T")


class Store:
    """Writes tuner's records of studies and trials, each in one short transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine: Engine = sessions.kw["bind"]

    @property
    def _dialect(self) -> Any:
        return postgresql if self._engine.dialect.name == "postgresql" else sqlite

    def close(self) -> None:
        """Close the store's connections; a closed store reconnects if it is used again."""
        self._engine.dispose()

    def _write(self, write: Callable[[Session], T]) -> T:
        """``write(session)`` in one transaction, tried again on a new connection while the
        server ends the one it has (see :mod:`tuner.db.retry`)."""

        def once() -> T:
            with self._sessions.begin() as session:
                return write(session)

        try:
            return retrying(once)
        except SQLAlchemyError as error:
            raise storage_failure(error, self._engine.url) from None

    def save_study(self, study: StudyRow) -> None:
        """Record a study; a study that already has a record (one resumed) keeps its first."""
        values = {f.name: getattr(study, f.name) for f in fields(study) if f.init}
        statement = self._dialect.insert(StudyRow).values(values).on_conflict_do_nothing()
        self._write(lambda session: session.execute(statement))

    def save_trial(self, study: str, trial: TrialRow) -> None:
        """Write a trial of ``study`` and its curve in one transaction: all of it, or none."""
        tries = 0

        def write(session: Session) -> None:
            nonlocal tries
            tries += 1
            study_id = _study_id(session, study, "a trial")
            taken = select(TrialRow.id).filter_by(study_id=study_id, number=trial.number)
            if session.scalar(taken) is not None:
                if tries > 1:
                    return  # The try before went through; only its answer was lost.
                raise TunerError(f"trial {trial.number} of study '{study}' is already recorded")
            trial.study_id = study_id
            session.add(trial)

        self._write(write)

    def save_confirmation(self, study: str, run: ConfirmationRow) -> bool:
        """Write a confirmation run of ``study``, with its curve, in one statement; False when
        the study already holds that run (another worker's, the same by its seed)."""

        def write(session: Session) -> bool:
            run.study_id = _study_id(session, study, "a confirmation run")
            values = {f.name: getattr(run, f.name) for f in fields(run) if f.name != "id"}
            statement = self._dialect.insert(ConfirmationRow).values(values)
            # Workers that confirm together race to the same runs: the first one's stays.
            return bool(session.execute(statement.on_conflict_do_nothing()).rowcount)

        return self._write(write)


def _study_id(session: Session, study: str, what: str) -> int:
    study_id = session.scalar(select(StudyRow.id).where(StudyRow.name == study))
    if study_id is None:
        raise TunerError(f"study '{study}' has no record to add {what} to")
    return study_id


def open_store(url: str) -> Store:
    """The store on ``url``, its tables ready (see :func:`~tuner.db.migrations.ensure_ready`)."""
    engine = make_engine(url)
    try:
        # The first connection of every search, worker and confirmation: a server that
        # restarts as they start is waited for, as it is once they run.
        retrying(lambda: ensure_ready(engine))
    except SQLAlchemyError as error:
        engine.dispose()
        raise storage_failure(error, engine.url) from None
    except BaseException:
        engine.dispose()
        raise
    return Store(sessionmaker(engine, expire_on_commit=False))
