"""Optuna's storage on the database of a storage URL, with tuner's engine settings.

Everything that depends on how Optuna's ``RDBStorage`` behaves is kept here: its heartbeat, the
race of workers that create its tables together, and its refusal of a database whose
``alembic_version`` another application wrote; and the few columns of Optuna's tables that
tuner reads itself (the ids and numbers of trials, which every Optuna version has had).
Optuna's tables are Optuna's to create and migrate; tuner's are made ready first, as by
:func:`~tuner.db.store.open_store`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Row,
    String,
    cast,
    column,
    exists,
    func,
    inspect,
    or_,
    select,
    table,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql import ColumnElement

from tuner.db.engine import engine_kwargs, forget_in_forked_children
from tuner.db.models import StudyRow, TrialRow
from tuner.db.retry import retrying
from tuner.db.store import open_store
from tuner.db.urls import mask_url, parse_url, storage_failure
from tuner.db.workers import OUTCOME_ATTR, WORKER_ATTR, worker_named
from tuner.errors import BadInput, TunerError

if TYPE_CHECKING:
    import optuna

HEARTBEAT_ENV = "TUNER_HEARTBEAT_S"
# A trial silent for this many heartbeats is a dead worker's.
GRACE_BEATS = 3
OPTUNA_CREATE_TRIES = 5


Reaped = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


def _rdb_storage(
    parsed: URL, url: str, reaped: Reaped | None, *, foreign_alembic_version: bool = False
) -> optuna.storages.RDBStorage:
    # Imported here for start-up time: the commands that only read tuner's tables never pay
    # for Optuna.
    import optuna

    from tuner.db.steady_storage import SteadyStorage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return SteadyStorage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=engine_kwargs(url),
            # A worker that dies mid-trial leaves it RUNNING; without a heartbeat it would stay
            # so forever. With one, the next worker to start (or start a trial) marks it FAIL,
            # and queues its settings once more, so that the study still reaches its count.
            heartbeat_interval=heartbeat_s(),
            grace_period=GRACE_BEATS * heartbeat_s(),
            heartbeat_stale_trial_callback=_Stale(reaped),
            skip_compatibility_check=foreign_alembic_version,
        )


class _Stale:
    """What befalls a trial whose worker died: its settings are queued once more, and
    ``reaped`` is told. A class, not a closure: Optuna's storage is pickled for processes."""

    def __init__(self, reaped: Reaped | None) -> None:
        # Imported here for start-up time, as in _rdb_storage.
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
        self._reaped = reaped

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._retry(study, trial)
        if self._reaped is not None:
            self._reaped(study, trial)


def heartbeat_s() -> int:
    """Seconds between a worker's signs of life: 30, or ``TUNER_HEARTBEAT_S``, which a cluster
    that preempts its workers may shorten so that their trials are failed and retried sooner."""
    text = os.environ.get(HEARTBEAT_ENV, "30")
    if not text.isdigit() or int(text) < 1:
        raise BadInput(f"{HEARTBEAT_ENV}={text!r}: give a whole number of seconds, 1 or more")
    return int(text)


def _lost_creation_race(error: SQLAlchemyError) -> bool:
    return isinstance(error, IntegrityError) or "already exists" in str(error)


def _despite_foreign_alembic_version(
    error: RuntimeError, parsed: URL, url: str, reaped: Reaped | None
) -> optuna.storages.RDBStorage:
    """Optuna's storage on a database whose ``alembic_version`` belongs to another application.

    Optuna keeps its schema revision in that table too, finds a revision it does not know, and
    refuses. When Optuna's own tables say this very Optuna made them, that revision is someone
    else's and the check is skipped; an Optuna schema of another version is for Optuna to
    upgrade.
    """
    # Imported here for start-up time, as in _rdb_storage.
    import optuna

    message = str(error)
    if "table schema" not in message:
        raise error
    if f"(set up by optuna {optuna.__version__})" not in message:
        raise TunerError(f"{mask_url(url)}: {message.splitlines()[0]}") from None
    return _rdb_storage(parsed, url, reaped, foreign_alembic_version=True)


def optuna_storage(url: str, reaped: Reaped | None = None) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``, with tuner's engine settings; tuner's tables are made ready
    first (created if absent; upgraded on SQLite, checked on PostgreSQL), as by
    :func:`~tuner.db.store.open_store`.

    A trial whose worker died is failed once its heartbeat has been silent for the grace, and
    its settings are queued once more; then ``reaped`` is called with it.
    """
    parsed = parse_url(url)
    open_store(url).close()
    for attempt in range(OPTUNA_CREATE_TRIES):
        try:
            storage = _rdb_storage(parsed, url, reaped)
            break
        except SQLAlchemyError as error:
            # Workers that start together on a new database race to create Optuna's tables;
            # the loser finds them made when it tries again.
            if attempt + 1 == OPTUNA_CREATE_TRIES or not _lost_creation_race(error):
                raise storage_failure(error, parsed) from None
            time.sleep(0.2)
        except RuntimeError as error:
            storage = _despite_foreign_alembic_version(error, parsed, url, reaped)
            break
    forget_in_forked_children(storage.engine)
    return storage


def read_only_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url`` to read trials through: it neither creates tables nor
    migrates, and accepts any Optuna's schema."""
    # Imported here for start-up time, as in _rdb_storage.
    import optuna

    return optuna.storages.RDBStorage(
        parse_url(url).render_as_string(hide_password=False),
        engine_kwargs=engine_kwargs(url, read_only=True),
        skip_compatibility_check=True,
        skip_table_creation=True,
    )


def study_user_attrs(url: str, study: str) -> dict[str, Any]:
    """The user attributes of ``study``, read through :func:`read_only_storage`."""
    import optuna  # start-up time, as in _rdb_storage

    return optuna.load_study(study_name=study, storage=read_only_storage(url)).user_attrs


def interrupted_by(url: str, study: str, pids: Collection[int]) -> list[tuple[int, str | None]]:
    """The trials of ``study`` that the worker processes ``pids``, of this machine, left
    interrupted, and why each was."""
    import optuna  # start-up time, as in _rdb_storage

    workers = {worker_named(pid) for pid in pids}
    storage = read_only_storage(url)
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.FAIL,)
        )
    finally:
        storage.engine.dispose()
    return [
        (trial.number, trial.user_attrs.get("reason"))
        for trial in trials
        if trial.system_attrs.get(WORKER_ATTR) in workers
        and trial.user_attrs.get(OUTCOME_ATTR) == "interrupted"
    ]


# --- The columns of Optuna's tables that tuner reads --------------------------------------------


def optuna_tables() -> tuple[Any, Any]:
    """The columns of Optuna's ``trials`` and ``studies`` tables that we read."""
    trials = table(
        "trials",
        column("trial_id"),
        column("number"),
        column("study_id"),
        column("state"),
        column("datetime_start", DateTime),
    )
    return trials, table("studies", column("study_id"), column("study_name"))


def has_optuna_tables(connection: Connection) -> bool:
    return inspect(connection).has_table("trials")


def deleted_from_optuna(connection: Connection, study: Row) -> bool:
    """Whether Optuna's side of the study was deleted (by ``optuna delete-study``, say): its
    tables lack it while tuner holds trials of it. tuner records a new study before Optuna
    makes it, so one without a trial recorded is not. Call only when :func:`has_optuna_tables`."""
    studies = optuna_tables()[1]
    held = select(studies.c.study_id).where(studies.c.study_name == study.name)
    if connection.execute(held).first() is not None:
        return False
    ours = select(TrialRow.id).where(TrialRow.study_id == study.id).limit(1)
    return connection.execute(ours).first() is not None


def optuna_only_studies(connection: Connection, *, ours: bool) -> dict[str, int]:
    """The studies in Optuna's tables that tuner holds no record of, oldest first, each with
    its number of trials; every one of them when tuner's tables are not there (``ours`` False).
    tuner records a new study before Optuna makes it, so none of these is one of tuner's being
    made. Call only when :func:`has_optuna_tables`."""
    trials, studies = optuna_tables()
    query = (
        select(studies.c.study_name, func.count(trials.c.trial_id))
        .outerjoin(trials, trials.c.study_id == studies.c.study_id)
        .group_by(studies.c.study_id, studies.c.study_name)
        .order_by(studies.c.study_id)
    )
    if ours:
        query = query.where(~exists().where(StudyRow.name == studies.c.study_name))
    return {name: count for name, count in connection.execute(query)}


def unrecorded_ids(connection: Connection, study: Row, *, ours: bool = True) -> list[int]:
    """Optuna's ids of the study's trials that have no row of ours, in one indexed query
    against our rows, but for those enqueued and not yet started (WAITING), which are no
    trials yet: those tuner ran, or with ``ours`` False those another Optuna client wrote
    (see :func:`~tuner.db.workers.tuner_made`). Call only when :func:`has_optuna_tables`.

    Optuna's storage cannot say which these are without reading every trial it has with all
    its parameters (its ``get_n_trials`` does), or every failed one by state, seconds for a
    large study. So this reads the ids and numbers of Optuna's ``trials`` table, the columns
    every Optuna version has had, and its attributes' keys, against our rows."""
    trials, studies = optuna_tables()
    rows = TrialRow.__table__.c
    recorded = exists().where(rows.study_id == study.id, rows.number == trials.c.number)
    made = _tuner_made(trials)
    query = (
        select(trials.c.trial_id)
        .join(studies, studies.c.study_id == trials.c.study_id)
        # PostgreSQL holds the state as an enum of Optuna's, which compares only with its own.
        .where(studies.c.study_name == study.name, ~recorded)
        .where(cast(trials.c.state, String) != "WAITING")
        .where(made if ours else ~made)
        .order_by(trials.c.number)
    )
    return list(connection.scalars(query))


def _tuner_made(trials: Any) -> ColumnElement[bool]:
    """:func:`~tuner.db.workers.tuner_made` in SQL, for a trial of Optuna's ``trials``."""
    system = table("trial_system_attributes", column("trial_id"), column("key"))
    user = table("trial_user_attributes", column("trial_id"), column("key"))
    return or_(
        exists().where(system.c.trial_id == trials.c.trial_id, system.c.key == WORKER_ATTR),
        exists().where(user.c.trial_id == trials.c.trial_id, user.c.key == OUTCOME_ATTR),
    )


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


def beatless_trial_ids(
    storage: optuna.storages.RDBStorage, study: str, started_before: datetime
) -> list[int]:
    """Optuna's ids of the study's running trials that started before ``started_before`` (on
    Optuna's clock, the worker's local time) and never beat: their workers died between
    creating them and their first heartbeat, a gap that Optuna's reaping never looks at."""
    trials, studies = optuna_tables()
    beats = table("trial_heartbeats", column("trial_id"))
    query = (
        select(trials.c.trial_id)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(studies.c.study_name == study, cast(trials.c.state, String) == "RUNNING")
        .where(trials.c.datetime_start < started_before)
        .where(~exists().where(beats.c.trial_id == trials.c.trial_id))
    )

    def read() -> list[int]:
        with storage.engine.connect() as connection:
            return list(connection.scalars(query))

    return retrying(read)


def silence(engine: Engine, study: str, number: int) -> timedelta | None:
    """How long the worker of trial ``number`` of ``study`` has not beaten, on the database's
    clock, which Optuna's heartbeats are written by; None when it never beat."""
    trials, studies = optuna_tables()
    beats = table("trial_heartbeats", column("trial_id"), column("heartbeat"))
    query = (
        select(func.now(), beats.c.heartbeat)
        .join(trials, trials.c.trial_id == beats.c.trial_id)
        .join(studies, studies.c.study_id == trials.c.study_id)
        .where(studies.c.study_name == study, trials.c.number == number)
    )

    def read() -> Row[Any] | None:
        with engine.connect() as connection:
            return connection.execute(query).first()

    found = retrying(read)
    if found is None:
        return None
    now, beat = (_naive(moment) for moment in found)
    return now - beat


def _naive(moment: datetime | str) -> datetime:
    # SQLite returns its CURRENT_TIMESTAMP as text; PostgreSQL's now() with a time zone.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=None)
