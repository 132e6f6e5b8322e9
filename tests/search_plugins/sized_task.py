"""The synthetic task with a hidden width of its own to search: its loss writes, to the file
that TUNER_TEST_SEEN names, the width of each model it runs and the rows of each batch, so a
test can tell which model and batch size each trial really trained with."""

import dataclasses
import os

import mlx.nn as nn

from tuner import Choice, TaskSpec, hookimpl
from tuner_builtins.tasks import MLP, build_synthetic


def mse(model, x, y):
    with open(os.environ["TUNER_TEST_SEEN"], "a") as seen:
        seen.write(f"{model.layers[0].weight.shape[0]} {x.shape[0]}\n")
    return nn.losses.mse_loss(model(x).squeeze(-1), y, reduction="mean")


def build():
    task = build_synthetic()
    return dataclasses.replace(task, model=lambda width=8: MLP([8, width, 1]), loss=mse)


@hookimpl
def tuner_register_tasks(register):
    register(TaskSpec("sized", build, "synthetic, its width searched", {"width": Choice((8, 16))}))
