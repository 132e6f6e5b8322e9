"""Which process runs a trial: the system attribute that names it, set as the trial starts,
and whether that process has ended, which a trial's own machine can tell at once; and so
whether tuner ran a trial at all, or another Optuna client on the same storage."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# The system attribute of a running trial that names its worker: machine and process.
WORKER_ATTR = "tuner:worker"
# The user attribute that tuner leaves with each trial that ends (see tuner.objective).
OUTCOME_ATTR = "outcome"


def this_worker() -> str:
    """This process, as :data:`WORKER_ATTR` names it."""
    return worker_named(os.getpid())


def worker_named(pid: int) -> str:
    """Process ``pid`` of this machine, as :data:`WORKER_ATTR` names it."""
    return f"{socket.gethostname()} {pid}"


def tuner_made(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether tuner ran ``trial``, rather than another Optuna client on the same storage (a
    script's ``study.optimize`` or ``study.add_trial``): tuner names the worker of each trial
    it starts, and before it did, left an outcome with each that ended. Another client's
    trials have no record of tuner's, and tuner leaves them out of its counts and rankings.
    The same rule in SQL is :func:`tuner.db.optuna.unrecorded_ids`'s."""
    return WORKER_ATTR in trial.system_attrs or OUTCOME_ATTR in trial.user_attrs


def dead_here(trial: optuna.trial.FrozenTrial) -> int | None:
    """The process id of the worker of running ``trial`` when it ran on this machine and has
    ended: its trial can be failed at once, not after the heartbeat's grace; None otherwise."""
    host, _, pid = str(trial.system_attrs.get(WORKER_ATTR, "")).rpartition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return int(pid)
    except PermissionError:
        pass  # Alive, and another user's.
    return None
