"""Optimizers whose build, in a trial, ends the process (quitter), sleeps for an hour
(sleeper), loops in Python for ever (spinner) or crashes in native code (crasher). Each builds
as Adam at the middle of its range, which is what the check before a search builds, so that
only trials meet them. Where UNRULY_HANGING names a file, the sleeper and the spinner create it
as they begin to hang, so that a test can signal the search at that moment."""

import ctypes
import os
import sys
import time
from pathlib import Path

import mlx.optimizers as optim

from tuner import Float, OptimizerSpec, hookimpl

# The middle of Float(0, 1): what the check before a search builds, and no trial draws.
CHECKED = 0.5


def quit_(learning_rate, trigger):
    if trigger != CHECKED:
        sys.exit(3)
    return optim.Adam(learning_rate)


def hanging():
    if "UNRULY_HANGING" in os.environ:
        Path(os.environ["UNRULY_HANGING"]).touch()


def sleep(learning_rate, trigger):
    if trigger != CHECKED:
        hanging()
        time.sleep(3600)
    return optim.Adam(learning_rate)


def spin(learning_rate, trigger):
    if trigger != CHECKED:
        hanging()
    while trigger != CHECKED:
        pass
    return optim.Adam(learning_rate)


def crash(learning_rate, trigger):
    if trigger != CHECKED:
        # A read of address 0: SIGSEGV, as a fault in MLX's own code would give.
        ctypes.string_at(0)
    return optim.Adam(learning_rate)


@hookimpl
def tuner_register_optimizers(register):
    builds = [("quitter", quit_), ("sleeper", sleep), ("spinner", spin), ("crasher", crash)]
    for name, build in builds:
        register(OptimizerSpec(name, build, {"trigger": Float(0.0, 1.0)}, "unruly"))
