"""The plugin of ``coordination.py``: a task whose trial costs next to nothing, and, when
``COORDINATION_TIMES`` names a folder, the claim lock's waits and holds of this worker written
to a file of its own there.

The lock is timed by wrapping ``ClaimLock``'s methods in the worker that loads this file, so
that tuner runs unchanged. One line a hold: the seconds waited for the lock, the seconds held,
and the time it was let go (``time.time()``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner import Task, TaskSpec, hookimpl
from tuner.db.claims import ClaimLock


def build() -> Task:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 2)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    data = (mx.array(x), mx.array(y))
    return Task(
        model=lambda: nn.Linear(2, 1),
        train=data,
        valid=data,
        loss=lambda model, x, y: nn.losses.mse_loss(model(x), y),
        steps=1,
        batch_size=16,
        eval_every=1,
    )


@hookimpl
def tuner_register_tasks(register: Callable[[TaskSpec], None]) -> None:
    register(TaskSpec("instant", build, "a linear model of 3 weights, one step a trial"))


def _time_the_claim_lock(folder: Path) -> None:
    log = (folder / f"{os.getpid()}.times").open("a", buffering=1)
    acquire, release = ClaimLock.acquire, ClaimLock.release
    taken: dict[int, float] = {}
    waited: dict[int, float] = {}

    def timed_acquire(self: ClaimLock, give_up: Callable[[], bool]) -> bool:
        asked = time.perf_counter()
        got = acquire(self, give_up)
        if got and id(self) not in taken:
            taken[id(self)] = time.perf_counter()
            waited[id(self)] = taken[id(self)] - asked
        return got

    def timed_release(self: ClaimLock) -> None:
        release(self)
        since = taken.pop(id(self), None)
        if since is not None:
            held = time.perf_counter() - since
            log.write(f"{waited.pop(id(self)):.6f} {held:.6f} {time.time():.6f}\n")

    ClaimLock.acquire, ClaimLock.release = timed_acquire, timed_release


if os.environ.get("COORDINATION_TIMES"):
    _time_the_claim_lock(Path(os.environ["COORDINATION_TIMES"]))
