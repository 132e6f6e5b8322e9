"""What becomes of a trial whose worker died (killed, or its machine lost): Optuna fails it once
its heartbeat has been silent for the grace and queues its settings once more, and tuner
records it as failed, with how long it ran, so that the two agree about it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import optuna

from tuner.db import (
    GRACE_BEATS,
    CurveRow,
    TrialRow,
    beatless_trial_ids,
    dead_here,
    heartbeat_s,
    make_engine,
    open_store,
    optuna_storage,
    silence,
)
from tuner.errors import BadInput
from tuner.query import open_results
from tuner.results import Outcome
from tuner.samplers import trial_seed

RUNNING = (optuna.trial.TrialState.RUNNING,)


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
    params = trial.params
    return TrialRow(
        number=trial.number,
        optimizer=params.get("optimizer", "-"),
        schedule=params.get("schedule", "-"),
        params=params,
        seed=seed,
        steps=0,
        wall_time_s=ran.total_seconds(),
        step_time_s=None,
        compiled=False,
        metrics={},
        value=None,
        outcome=Outcome.FAILED,
        reason=reason,
        default_source=trial.user_attrs.get("default"),
        curve=CurveRow(losses=[], lrs=[], evals=[]),
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
    optuna.storages.fail_stale_trials(study)
    started_before = datetime.now() - timedelta(seconds=GRACE_BEATS * heartbeat_s())
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
            reaped += running - len(study.get_trials(deepcopy=False, states=RUNNING))
        return reaped
    finally:
        storage.remove_session()
        storage.engine.dispose()
