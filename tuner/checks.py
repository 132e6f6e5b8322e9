"""What a search tries once before anything is written: each chosen schedule and optimizer built
and run for a step, and the task's model, loss and metrics on a few rows. A setting that can
never train would otherwise fail trial after trial, and leave a study of failures behind.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from tuner.errors import BadInput
from tuner.params import Choice, Float, Param
from tuner.plugins import Registry
from tuner.space import SearchSpace
from tuner.specs import Metric, OptimizerSpec, ScheduleSpec, Task

# Enough validation rows to tell a loss that is a scalar from one per row.
ROWS = 4
DIRECTIONS = ("maximize", "minimize")


def check_trainable(
    name: str, task: Task, registry: Registry, space: SearchSpace, steps: int
) -> int:
    """Raise BadInput unless task ``name``'s model is made, its loss is a scalar with a
    gradient (with each setting of the task's searched parameters too) and each metric a
    scalar, and every schedule and optimizer of ``space`` builds and takes a step of the model,
    each with the middle of its parameters' ranges and with each value of each choice; return
    how many numbers (weights and biases) the model holds."""
    # An array whatever its space, as a trial's peak rate always is.
    lr = mx.array(space.shared["lr"].midpoint(), dtype=mx.float32)
    for schedule, params in space.schedules.items():
        _check_schedule(registry.schedules[schedule], params, lr, steps)
    model, grads = _check_loss(name, task, {})
    _check_metrics(name, task, model)
    for settings in _settings(space.task_params) if space.task_params else ():
        # The model factory receives plain Python values, as a trial's sample holds them.
        plain = {k: v.item() if isinstance(v, mx.array) else v for k, v in settings.items()}
        _check_loss(name, task, plain)
    for optimizer, params in space.optimizers.items():
        _check_optimizer(registry.optimizers[optimizer], params, lr, model, grads, name)
    return sum(array.size for _, array in tree_flatten(model.parameters()))


def _settings(space: Mapping[str, Param]) -> Iterator[dict[str, Any]]:
    """The middle of each range, then each other value of each choice in turn: a choice's
    values may each run other code (a shape, a switch), and ``--space`` may add some."""
    # As a trial passes them: a Float as an mx.array, since it reaches a trial's step as one.
    middle = {
        key: mx.array(param.midpoint(), dtype=mx.float32)
        if isinstance(param, Float)
        else param.midpoint()
        for key, param in space.items()
    }
    yield middle
    for key, param in space.items():
        if isinstance(param, Choice):
            for value in param.values[1:]:
                yield {**middle, key: value}


def _why(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def _check_schedule(spec: ScheduleSpec, params: Mapping[str, Param], lr: Any, steps: int) -> None:
    for settings in _settings(params):
        _check_one_schedule(spec, settings, lr, steps)


def _check_one_schedule(spec: ScheduleSpec, settings: dict[str, Any], lr: Any, steps: int) -> None:
    try:
        schedule = spec.build(lr, steps, **settings)
    except Exception as error:
        raise BadInput(f"schedule '{spec.name}' cannot be built: {_why(error)}") from None
    if not callable(schedule):
        raise BadInput(
            f"schedule '{spec.name}' cannot be used: its build returned "
            f"{_kind(schedule)}, not a function from the step to the learning rate"
        )
    try:
        # The step as an optimizer counts it.
        rate = float(schedule(mx.array(0, dtype=mx.uint64)))
    except Exception as error:
        raise BadInput(f"schedule '{spec.name}' fails at step 0: {_why(error)}") from None
    if not math.isfinite(rate):
        raise BadInput(
            f"schedule '{spec.name}' gives the learning rate {rate} at step 0, not a finite number"
        )


def _check_loss(name: str, task: Task, params: Mapping[str, Any]) -> tuple[nn.Module, Any]:
    """A new model of the task, given its parameters ``params``, and its gradient on a few
    validation rows."""
    x, y = (part[:ROWS] for part in task.valid)
    given = "".join(f" {key}={value}" for key, value in params.items())
    try:
        model = task.model(**params)
    except Exception as error:
        raise BadInput(
            f"the model of task '{name}'{' with' + given if given else ''} cannot be made: "
            f"{_why(error)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise BadInput(
            f"the model of task '{name}' is {_kind(model)}, not an mlx.nn.Module: give a "
            "function that returns a new model"
        )
    try:
        loss = task.loss(model, x, y)
    except Exception as error:
        raise BadInput(
            f"the loss of task '{name}'{' with' + given if given else ''} fails on {ROWS} "
            f"validation rows: {_why(error)}"
        ) from None
    _require_scalar(f"the loss of task '{name}'", loss)
    try:
        _, grads = nn.value_and_grad(model, task.loss)(model, x, y)
        mx.eval(grads)
    except Exception as error:
        raise BadInput(f"the loss of task '{name}' has no gradient: {_why(error)}") from None
    return model, grads


def _check_metrics(name: str, task: Task, model: nn.Module) -> None:
    """Each metric of the task, on a few validation rows of its untrained model."""
    x, y = (part[:ROWS] for part in task.valid)
    for metric_name, metric in task.metrics.items():
        said = f"metric '{metric_name}' of task '{name}'"
        if not isinstance(metric, Metric):
            raise BadInput(
                f"{said} is {_kind(metric)}, not a tuner.Metric: give Metric(fn), or "
                f"Metric(fn, 'minimize')"
            )
        if metric.direction not in DIRECTIONS:
            raise BadInput(f"{said} has direction '{metric.direction}': give maximize or minimize")
        try:
            value = metric.fn(model, x, y)
            mx.eval(value)
        except Exception as error:
            raise BadInput(f"{said} fails on {ROWS} validation rows: {_why(error)}") from None
        _require_scalar(said, value)


def _require_scalar(said: str, value: Any) -> None:
    # Training reads it with .item() and differentiates it: a number MLX computed, one.
    if not isinstance(value, mx.array):
        raise BadInput(
            f"{said} returns {_kind(value)} on {ROWS} validation rows, not an mx.array: "
            "compute it with mlx"
        )
    if value.ndim != 0:
        raise BadInput(
            f"{said} is an array of shape {value.shape} on {ROWS} validation rows, not a "
            "scalar: reduce it, to its mean say"
        )


def _check_optimizer(
    spec: OptimizerSpec,
    params: Mapping[str, Param],
    lr: Any,
    model: nn.Module,
    grads: Any,
    task: str,
) -> None:
    for settings in _settings(params):
        _check_one_optimizer(spec, settings, lr, model, grads, task)


def _check_one_optimizer(
    spec: OptimizerSpec,
    settings: dict[str, Any],
    lr: Any,
    model: nn.Module,
    grads: Any,
    task: str,
) -> None:
    try:
        optimizer = spec.build(lr, **settings)
    except Exception as error:
        raise BadInput(f"optimizer '{spec.name}' cannot be built: {_why(error)}") from None
    if not isinstance(optimizer, optim.Optimizer):
        raise BadInput(
            f"optimizer '{spec.name}' cannot be used: its build returned {_kind(optimizer)}, "
            "not an mlx.optimizers.Optimizer"
        )
    try:
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state)
    except Exception as error:
        raise BadInput(
            f"optimizer '{spec.name}' fails a step on the model of task '{task}': {_why(error)}"
        ) from None


def _kind(value: object) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
