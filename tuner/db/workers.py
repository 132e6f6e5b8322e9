"""Which process runs a trial: the system attribute that names it, set as the trial starts,
and whether that process has ended, which a trial's own machine can tell at once."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# The system attribute of a running trial that names its worker: machine and process.
WORKER_ATTR = "tuner:worker"


def this_worker() -> str:
    """This process, as :data:`WORKER_ATTR` names it."""
    return f"{socket.gethostname()} {os.getpid()}"


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
