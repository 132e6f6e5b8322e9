"""A task whose model cannot be built in the third trial of a process: that trial must fail
and the study go on."""

import dataclasses
import itertools

from tuner import TaskSpec, hookimpl
from tuner.plugins import load_plugins


def build():
    task = load_plugins().tasks["synthetic"].build()
    calls = itertools.count()

    def model():
        # The fourth model: the search's check of the task builds the first, before any trial.
        if next(calls) == 3:
            raise RuntimeError("no model today")
        return task.model()

    return dataclasses.replace(task, model=model)


@hookimpl
def tuner_register_tasks(register):
    register(TaskSpec("flaky", build, "fails in its third trial"))
