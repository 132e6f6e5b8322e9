"""The learning rate of a trial: a plugin's schedule behind an optional linear warmup."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mlx.optimizers as optim

from tuner.specs import ScheduleSpec


def make_schedule(
    spec: ScheduleSpec, lr: Any, steps: int, warmup: int = 0, params: Mapping[str, Any] = {}
) -> Callable[[Any], Any]:
    """The schedule of ``spec`` at peak ``lr`` over ``steps``, after ``warmup`` steps from 0.

    With warmup the schedule runs over the remaining ``steps - warmup`` and its step counter
    restarts at the boundary, as ``mlx.optimizers.join_schedules`` does.
    """
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must be at least 0 and below the {steps} steps, got {warmup}")
    if warmup == 0:
        return spec.build(lr, steps, **params)
    ramp = optim.linear_schedule(0.0, lr, warmup)
    return optim.join_schedules([ramp, spec.build(lr, steps - warmup, **params)], [warmup])
