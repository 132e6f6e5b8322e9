"""Optuna's storage, but for its heartbeat, which a database error leaves silent.

Optuna beats from a thread of its own, where an error (a full disk, a server gone) would print
a traceback and end the beats. The trial's next write meets the same error and reports it in
one line; the next beat tries again. Its own module, imported when a storage is made, so that
what only reads tuner's tables never imports Optuna, and so that the class pickles, as a
storage sent to a worker process must.
"""

from __future__ import annotations

import contextlib

import optuna
from sqlalchemy.exc import SQLAlchemyError


class QuietHeartbeatStorage(optuna.storages.RDBStorage):
    """``RDBStorage`` whose ``record_heartbeat`` never raises a database's error."""

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(optuna.exceptions.StorageInternalError, SQLAlchemyError):
            super().record_heartbeat(trial_id)
