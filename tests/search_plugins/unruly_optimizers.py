"""Optimizers whose build, in a trial, ends the process (quitter), sleeps for an hour
(sleeper) or loops in Python for ever (spinner). Each builds as Adam at the middle of its
range, which is what the check before a search builds, so that only trials meet them."""

import sys
import time

import mlx.optimizers as optim

from tuner import Float, OptimizerSpec, hookimpl

# The middle of Float(0, 1): what the check before a search builds, and no trial draws.
CHECKED = 0.5


def quit_(learning_rate, trigger):
    if trigger != CHECKED:
        sys.exit(3)
    return optim.Adam(learning_rate)


def sleep(learning_rate, trigger):
    if trigger != CHECKED:
        time.sleep(3600)
    return optim.Adam(learning_rate)


def spin(learning_rate, trigger):
    while trigger != CHECKED:
        pass
    return optim.Adam(learning_rate)


@hookimpl
def tuner_register_optimizers(register):
    for name, build in [("quitter", quit_), ("sleeper", sleep), ("spinner", spin)]:
        register(OptimizerSpec(name, build, {"trigger": Float(0.0, 1.0)}, "unruly"))
