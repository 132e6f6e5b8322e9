"""Optuna's storage, but steady: a lost PostgreSQL connection is retried, and its heartbeat
never raises, and a trial's user attributes are written with its final state.

Each of Optuna's operations on the database is one short transaction: one whose connection
the server ended (``pg_terminate_backend``, a restart) is tried again on a new connection
(see :mod:`tuner.db.retry`) rather than fail the trial, or the search, on Optuna's misleading
"exceeding max length". Optuna beats from a thread of its own, where an error (a full disk, a
server gone) would print a traceback and end the beats. The trial's next write meets the same
error and reports it in one line; the next beat tries again. tuner sets a trial's user
attributes (its outcome, reason, steps, metrics) as it ends, just before Optuna is told its
state: written apart, a kill between the two would leave a trial that Optuna fails for its dead
worker saying ``outcome="complete"``. Its own module, imported when a
storage is made, so that what only reads tuner's tables never imports Optuna, and so that the
class pickles, as a storage sent to a worker process must.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tuner.db.retry import retrying
from tuner.db.workers import WORKER_ATTR, this_worker

# The methods of RDBStorage that run a transaction, and none that calls another of them.
_TRANSACTIONS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "_get_trials",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
)


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def retried(self: optuna.storages.RDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retrying(lambda: method(self, *args, **kwargs))

    return retried


class SteadyStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` that retries a transaction whose connection was lost, names the worker
    of each trial it starts (:data:`~tuner.db.workers.WORKER_ATTR`), so that a trial whose
    worker on this machine has ended is failed at once, whose ``record_heartbeat`` never
    raises a database's error, and that writes the user attributes of a trial it started in
    the transaction that finishes it: until then they are held here, and a worker that dies
    first leaves none."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The user attributes not yet written of each trial that this process started.
        self._held: dict[int, dict[str, Any]] = {}
        # The parameters drawn within params_together, not yet written.
        self._params: list[tuple[Any, ...]] | None = None
        super().__init__(*args, **kwargs)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # A storage sent to a worker process holds none of its parent's trials.
        super().__setstate__(state)
        self._held = {}
        self._params = None

    def _create_new_trial(
        self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None
    ) -> optuna.trial.FrozenTrial:
        base = super()._create_new_trial
        trial = retrying(lambda: base(study_id, template_trial))
        if trial.state == optuna.trial.TrialState.RUNNING:
            self._held[trial._trial_id] = {}
        return trial

    def _get_prepared_new_trial(
        self,
        study_id: int,
        template_trial: optuna.trial.FrozenTrial | None,
        session: Session,
    ) -> models.TrialModel:
        trial = super()._get_prepared_new_trial(study_id, template_trial, session)
        if template_trial is None:
            # A trial that starts running: its worker named in the transaction that makes it.
            self._set_trial_attr_without_commit(
                session,
                models.TrialSystemAttributeModel,
                trial.trial_id,
                WORKER_ATTR,
                this_worker(),
            )
        return trial

    @contextlib.contextmanager
    def params_together(self) -> Iterator[None]:
        """Within, the parameters that trials draw are held, and written at the end in one
        transaction rather than one each: a trial's settings are all stored before it trains.
        A worker that dies while they are drawn, or a draw that fails, leaves the trial
        without them, where each written apart would have left some."""
        self._params = []
        try:
            yield
            params, self._params = self._params, None
            if params:
                retrying(lambda: self._write_params(params))
        finally:
            self._params = None

    def _set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: optuna.distributions.BaseDistribution,
        previous_distribution: optuna.distributions.BaseDistribution | None,
    ) -> None:
        param = (trial_id, param_name, param_value_internal, distribution, previous_distribution)
        if self._params is not None:
            self._params.append(param)
        else:
            retrying(lambda: self._write_params([param]))

    def _write_params(self, params: Sequence[tuple[Any, ...]]) -> None:
        with _create_scoped_session(self.scoped_session, True) as session:
            for param in params:
                self._set_trial_param_without_commit(session, *param)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        held = self._held.get(trial_id)
        if held is None:
            retrying(lambda: super(SteadyStorage, self).set_trial_user_attr(trial_id, key, value))
            return
        # Refused now, as Optuna would, rather than with the trial's state.
        json.dumps(value)
        held[key] = value

    def set_trial_state_values(
        self,
        trial_id: int,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None = None,
    ) -> bool:
        held = self._held.get(trial_id, {}) if state.is_finished() else {}
        tries = 0

        def once() -> bool:
            nonlocal tries
            tries += 1
            try:
                # Optuna's update takes this thread's scoped session, which then holds the
                # attributes: its commit writes them with the state, and its rollback neither.
                with _create_scoped_session(self.scoped_session) as session:
                    for key, value in held.items():
                        self._set_trial_attr_without_commit(
                            session, models.TrialUserAttributeModel, trial_id, key, value
                        )
                    return super(SteadyStorage, self).set_trial_state_values(
                        trial_id, state, values
                    )
            except optuna.exceptions.UpdateFinishedTrialError:
                # The commit of the try before went through; only its answer was lost.
                if tries > 1 and self.get_trial(trial_id).state == state:
                    return True
                raise

        try:
            started = retrying(once)
        finally:
            if state.is_finished():
                # Written, or the trial was finished by another (its dead worker's reaper):
                # either way nothing more is written to it.
                self._held.pop(trial_id, None)
        if started and state == optuna.trial.TrialState.RUNNING:
            self._held[trial_id] = {}
            self.set_trial_system_attr(trial_id, WORKER_ATTR, this_worker())
        return started

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(optuna.exceptions.StorageInternalError, SQLAlchemyError):
            retrying(lambda: super(SteadyStorage, self).record_heartbeat(trial_id))

    def record_heartbeats(self, trial_ids: Sequence[int]) -> None:
        """A heartbeat for each of ``trial_ids``, as ``record_heartbeat`` records one, in one
        transaction: a population's members beat together."""

        def once() -> None:
            with _create_scoped_session(self.scoped_session, True) as session:
                now = session.execute(func.now()).scalar_one()
                for trial_id in trial_ids:
                    beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                    if beat is None:
                        session.add(models.TrialHeartbeatModel(trial_id=trial_id))
                    else:
                        beat.heartbeat = now

        with contextlib.suppress(optuna.exceptions.StorageInternalError, SQLAlchemyError):
            retrying(once)


for _name in _TRANSACTIONS:
    setattr(SteadyStorage, _name, _retried(getattr(optuna.storages.RDBStorage, _name)))
