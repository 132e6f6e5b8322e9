"""A task that builds one model, for the search's check of the task, and none for any trial:
every trial of a search on it fails."""

import dataclasses
import itertools

from tuner import TaskSpec, hookimpl
from tuner.plugins import load_plugins


def build():
    task = load_plugins().tasks["synthetic"].build()
    built = itertools.count()

    def model():
        # The search's check of the task, before any trial, gets the one model there is.
        if next(built) > 0:
            raise RuntimeError("no model ever")
        return task.model()

    return dataclasses.replace(task, model=model)


@hookimpl
def tuner_register_tasks(register):
    register(TaskSpec("broken", build, "builds no model for a trial"))
