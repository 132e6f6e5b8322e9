"""A schedule whose learning rate is NaN from its first step: a search must refuse it before
any trial."""

import mlx.core as mx

from tuner import ScheduleSpec, hookimpl


def build(lr, steps):
    return lambda step: mx.array(float("nan"))


@hookimpl
def tuner_register_schedules(register):
    register(ScheduleSpec("undefined", build, {}, "NaN at every step"))
