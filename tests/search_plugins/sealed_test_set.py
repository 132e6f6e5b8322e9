"""The synthetic task with a test set that raises when read: a search must never read it."""

import dataclasses

from tuner import TaskSpec, hookimpl
from tuner.plugins import load_plugins


def sealed():
    raise RuntimeError("a trial read the test set")


def build():
    return dataclasses.replace(load_plugins().tasks["synthetic"].build(), test=sealed)


@hookimpl
def tuner_register_tasks(register):
    register(TaskSpec("sealed", build, "its test set raises when read"))
