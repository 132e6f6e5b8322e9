"""A storage opened to read, beneath :class:`tuner.query.Results`: one read-only transaction at
a time, a study found by its name, and the trials that only Optuna knows, read in tuner's terms.

Optuna is asked only about the trials that have no row of tuner's: those still running, and
those whose worker died before writing it (an interrupted search leaves some). Each trial that
ends leaves its outcome, reason, steps and metrics with Optuna as user attributes too (see
:func:`tuner.study.objective_for`), so that Optuna's own tools show them; a trial stopped before
it wrote them reads as its Optuna state says.

Reading never writes: a SQLite file that does not exist is not created, tables that are behind
are not migrated, and on SQLite each read is one DEFERRED transaction, which under WAL never
waits for a writer. SQLAlchemy, :mod:`tuner.db` and Optuna are imported when a storage is
opened, not at the top: importing them takes most of a second, which ``import tuner`` (every
plugin does it) and the start of ``tuner best`` must not pay.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from tuner.errors import BadInput, TunerError, did_you_mean
from tuner.results import FINISHED, Outcome, TrialSummary

if TYPE_CHECKING:
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial
    from sqlalchemy import Connection, Row


class StorageReader:
    """One storage, opened to read only; raises :class:`tuner.errors.BadInput` for a SQLite
    file that does not exist, and :class:`tuner.errors.TunerError` for tables that tuner must
    migrate first."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url  # start-up time

        from tuner.db import (  # start-up time
            make_engine,
            mask_url,
            optuna,
            reads,
            schema_state,
            sqlite_path,
        )

        # The SQL of every read, of tuner's tables and of Optuna's; kept here so that only
        # opening a storage imports it.
        self._sql = reads
        self._optuna = optuna
        self.storage = mask_url(url)
        self._url = url
        state = schema_state(url)
        if state.status == "missing":
            raise BadInput(
                f"no database at {sqlite_path(make_url(url))}: run tuner search to make one, "
                "or point --storage (or TUNER_STORAGE) at one that exists"
            )
        if state.status in ("behind", "ahead"):
            raise TunerError(state.problem)
        # A database without tuner's tables holds no tuner study; it is not an error to look.
        self._has_tables = state.status == "current"
        self._engine = make_engine(url, read_only=True)
        self._optuna_storage: RDBStorage | None = None
        self._optuna_tables: bool | None = None

    def close(self) -> None:
        self._engine.dispose()
        if self._optuna_storage is not None:
            self._optuna_storage.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One read-only transaction; a database error, Optuna's storage's too, becomes one
        line that names the database."""
        with self._sql.reading(self._engine) as connection:
            yield connection

    @contextmanager
    def _read_study(self, name: str) -> Iterator[tuple[Connection, Row, list[TrialSummary]]]:
        """One read of study ``name``: a connection, the study's row, and the trials that
        only Optuna knows, found in the same snapshot as the rest."""
        with self._reading() as connection:
            study = self._live(connection, name)
            unrecorded = self._optuna_trials(self._unrecorded_ids(connection, study))
            yield connection, study, unrecorded

    def _live(self, connection: Connection, name: str) -> Row:
        """The row of study ``name``, as :meth:`_find` finds it; BadInput when Optuna's side
        of it was deleted, since its trials are then gone."""
        study = self._find(connection, name)
        if not self._in_optuna(connection, study):
            raise BadInput(
                f"study '{name}' was deleted from Optuna's tables (by optuna delete-study or "
                f"optuna-dashboard): tuner delete {shlex.quote(name)} removes what tuner kept of it"
            )
        return study

    def _in_optuna(self, connection: Connection, study: Row) -> bool:
        """Whether Optuna's side of the study is there, or was never deleted."""
        if not self._has_optuna_tables(connection):
            return True
        return not self._optuna.deleted_from_optuna(connection, study)

    def _find(self, connection: Connection, name: str) -> Row:
        """The row of study ``name``; BadInput, suggesting the nearest names, if none."""
        names: list[str] = []
        if self._has_tables:
            row = self._sql.find_study(connection, name)
            if row is not None:
                return row
            names = self._sql.study_names(connection)
        if self._has_optuna_tables(connection) and name in self._optuna.optuna_only_studies(
            connection, ours=self._has_tables
        ):
            why = "" if self._has_tables else " (tuner's tables are missing)"
            raise BadInput(
                f"study '{name}' is in Optuna's tables alone: tuner has no record of it{why}, "
                f"so read it with Optuna, or remove it with tuner delete {shlex.quote(name)}"
            )
        hint = did_you_mean(name, names) if names else "; it holds no study"
        raise BadInput(f"no study '{name}' in {self.storage}{hint}")

    def _has_optuna_tables(self, connection: Connection) -> bool:
        if self._optuna_tables is None:
            self._optuna_tables = self._optuna.has_optuna_tables(connection)
        return self._optuna_tables

    def _unrecorded_ids(
        self, connection: Connection, study: Row, *, ours: bool = True
    ) -> list[int]:
        """Optuna's ids of the study's trials that tuner ran and has no row of: running ones,
        and those that failed before their record was written; ``ours`` False: others'."""
        if not self._has_optuna_tables(connection):
            return []
        return self._optuna.unrecorded_ids(connection, study, ours=ours)

    def _optuna_trial_id(self, connection: Connection, study: Row, number: int) -> int:
        """Optuna's id of trial ``number``; BadInput, saying which numbers exist, if none."""
        count = 0
        if self._has_optuna_tables(connection):
            found = self._optuna.optuna_trial_id(connection, study.name, number)
            if found is not None:
                return found
            count = self._optuna.optuna_trial_count(connection, study.name)
        if not count:
            raise BadInput(f"study '{study.name}' has no trial {number}: it has no trials yet")
        raise BadInput(
            # Not "its N trials": Optuna numbers the trials queued to run again too, which
            # tuner studies does not count.
            f"study '{study.name}' has no trial {number}: its trials are numbered 0 to {count - 1}"
        )

    def _optuna_trials(self, ids: list[int]) -> list[TrialSummary]:
        """Trials as Optuna's storage knows them, opened to read only: it neither creates
        tables nor migrates. Called within :meth:`_reading`, which reports its errors."""
        if not ids:
            return []
        storage = self._read_only_optuna()
        return [from_optuna(storage.get_trial(id_)) for id_ in ids]

    def _read_only_optuna(self) -> RDBStorage:
        if self._optuna_storage is None:
            self._optuna_storage = self._optuna.read_only_storage(self._url)
        return self._optuna_storage


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
