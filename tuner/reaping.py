"""What becomes of a trial whose worker died (killed, or its machine lost): Optuna fails it once
its heartbeat has been silent for the grace and queues its settings once more, and tuner
records it as failed, with how long it ran, so that the two agree about it.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace
from datetime import datetime, timedelta

import optuna
from sqlalchemy import select

from tuner.db import (
    GRACE_BEATS,
    StudyRow,
    TrialRow,
    beatless_trial_ids,
    dead_here,
    heartbeat_s,
    make_engine,
    open_store,
    optuna_storage,
    silence,
    unrecorded_ids,
)
from tuner.errors import BadInput, TunerError
from tuner.query import open_results
from tuner.results import FINISHED, Outcome
from tuner.samplers import trial_seed
from tuner.trial import TrialResult

RUNNING = (optuna.trial.TrialState.RUNNING,)
_BY_STATE = {"COMPLETE": Outcome.COMPLETE, "PRUNED": Outcome.PRUNED, "FAIL": Outcome.FAILED}


class Recorder:
    """Records in tuner's tables, as failed and with how long it ran, each trial of a study of
    tuner's that Optuna fails for a dead worker. A class, not a closure: Optuna's storage, which
    holds it, is pickled for processes."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with open_results(self.url) as results:
            try:
                seed = results.provenance(study.study_name).seed
            except BadInput:
                return  # Not a study of tuner's: Optuna's state is all there is.
        engine = make_engine(self.url)
        try:
            silent = silence(engine, study.study_name, trial.number)
        finally:
            engine.dispose()
        store = open_store(self.url)
        try:
            store.save_trial(study.study_name, _row(trial, trial_seed(seed, trial.number), silent))
        finally:
            store.close()


def _row(trial: optuna.trial.FrozenTrial, seed: int, silent: timedelta | None) -> TrialRow:
    """The record of ``trial``, failed after its worker was ``silent`` so long (None: it never
    beat)."""
    ran, reason = reaped_because(trial, silent)
    return TrialRow.of_trial(
        trial, seed, TrialResult.unrun(Outcome.FAILED, reason, ran.total_seconds())
    )


def reaped_because(
    trial: optuna.trial.FrozenTrial, silent: timedelta | None
) -> tuple[timedelta, str]:
    """How long reaped ``trial`` ran, until its worker's last sign of life, and why it was
    failed."""
    ran = timedelta(0)
    if silent is not None:
        ran = max(trial.datetime_complete - trial.datetime_start - silent, timedelta(0))
    pid = dead_here(trial)
    if pid is not None:
        return ran, (
            f"its worker, process {pid} on this machine, ended {ran.total_seconds():.0f} s in "
            "without recording it: killed, or stopped by an error it could not write (a lost "
            "database, a full disk)"
        )
    if silent is None:
        return ran, "its worker died as the trial began"
    return ran, (
        f"its worker stopped answering {ran.total_seconds():.0f} s in: killed, or its machine lost"
    )


def fill_in(study: optuna.Study, storage: optuna.storages.RDBStorage, url: str) -> None:
    """Record the trials of ``study`` that Optuna holds finished and tuner does not: their
    worker was killed between Optuna's state and tuner's record. Their outcome, reason, steps
    and metrics are Optuna's user attributes; their curve is lost. A live worker writes its
    record a moment after Optuna's state, so only the trials of a worker here that has ended,
    or those finished a grace ago, are filled in."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            record = connection.execute(
                select(StudyRow.__table__).where(StudyRow.name == study.study_name)
            ).first()
            ids = [] if record is None else unrecorded_ids(connection, record)
    finally:
        engine.dispose()
    settled = datetime.now() - timedelta(seconds=GRACE_BEATS * heartbeat_s())
    lost = [
        trial
        for trial in map(storage.get_trial, ids)
        if trial.state.is_finished()
        and (dead_here(trial) is not None or trial.datetime_complete < settled)
    ]
    if not lost:
        return
    with open_results(url) as results:
        seed = results.provenance(study.study_name).seed
    store = open_store(url)
    try:
        for trial in lost:
            with contextlib.suppress(TunerError):  # Another worker filled it in first.
                store.save_trial(study.study_name, _filled(trial, trial_seed(seed, trial.number)))
    finally:
        store.close()


def _filled(trial: optuna.trial.FrozenTrial, seed: int) -> TrialRow:
    """The record of finished ``trial`` that its worker did not live to write."""
    attrs = dict(trial.user_attrs)
    # The rest are its metrics; the record reads where a known-good setting came from.
    told = {
        key: attrs.pop(key, None) for key in ("outcome", "reason", "steps", "population", "default")
    }
    outcome = told["outcome"]
    if outcome not in tuple(Outcome) or Outcome(outcome).optuna_state != trial.state.name:
        outcome = _BY_STATE[trial.state.name]
    # Its curve and step times are lost, as an unrun trial's.
    lost = TrialResult.unrun(
        Outcome(outcome),
        told["reason"] or "its worker died after Optuna's state, before tuner's record",
        (trial.datetime_complete - trial.datetime_start).total_seconds(),
    )
    result = replace(
        lost,
        value=trial.value if Outcome(outcome) in FINISHED else None,
        metrics=attrs,
        steps=told["steps"] or 0,
    )
    return TrialRow.of_trial(trial, seed, result, told["population"])


def reaping_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on ``url``, which records in tuner's tables each trial it fails for a
    dead worker."""
    return optuna_storage(url, reaped=Recorder(url))


def reap(
    study: optuna.Study, storage: optuna.storages.RDBStorage
) -> list[optuna.trial.FrozenTrial]:
    """Fail the trials of ``study`` whose workers died: those whose heartbeat fell silent, as
    Optuna does; those whose workers died before their first heartbeat, which Optuna never
    fails; and, at once, those whose workers on this machine have ended. Return the trials
    failed here, not by Optuna."""
    # Experimental in Optuna since 2.9, and stable in use: its warning would reach every
    # command that reaps, `tuner db upgrade` among them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    started_before = datetime.now() - timedelta(seconds=GRACE_BEATS * heartbeat_s())
    # Optuna's storage takes a trial's id, which a FrozenTrial holds under no public name.
    dead = {
        trial._trial_id
        for trial in study.get_trials(deepcopy=False, states=RUNNING)
        if dead_here(trial) is not None
    }
    reaped = storage.get_heartbeat_stale_trial_callback()
    failed_here = []
    for trial_id in dead.union(beatless_trial_ids(storage, study.study_name, started_before)):
        try:
            failed = storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # Another worker failed it first, or its own ended it.
        if failed:
            failed_here.append(storage.get_trial(trial_id))
            if reaped is not None:
                reaped(study, failed_here[-1])
    return failed_here


def reap_every_study(url: str) -> int:
    """Fail the trials of dead workers in every study on ``url``, as :func:`reap` does; return
    how many it failed."""
    storage = reaping_storage(url)
    try:
        reaped = 0
        for name in optuna.get_all_study_names(storage):
            study = optuna.load_study(study_name=name, storage=storage)
            running = len(study.get_trials(deepcopy=False, states=RUNNING))
            reap(study, storage)
            fill_in(study, storage, url)
            reaped += running - len(study.get_trials(deepcopy=False, states=RUNNING))
        return reaped
    finally:
        storage.remove_session()
        storage.engine.dispose()
