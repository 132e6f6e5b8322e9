"""What a plugin registers: optimizers, schedules and tasks, each described by a spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.params import Param


@dataclass(frozen=True)
class Default:
    """A known-good setting of an optimizer, from the literature, that a new study tries before
    it samples: the peak learning rate ``lr``, the optimizer's own ``params`` (by the names of
    its space), a ``schedule`` with its ``schedule_params``, the ``warmup`` as a fraction of
    the steps, and the ``source`` it comes from, which ``tuner trials`` shows."""

    lr: float
    params: Mapping[str, Any] = field(default_factory=dict)
    schedule: str = "constant"
    schedule_params: Mapping[str, Any] = field(default_factory=dict)
    warmup: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer the search can try.

    ``build(learning_rate, **params)`` returns an ``mlx.optimizers.Optimizer``.
    ``learning_rate`` is a float or a schedule callable; ``params`` holds one value for every
    key of ``space``.

    ``code(learning_rate, **params)``, optional, returns the Python expression that builds the
    same optimizer from ``mlx.optimizers`` (as ``optim``) and ``mlx.core`` (as ``mx``), so that
    ``tuner export`` can print MLX code that needs no tuner; see ``tuner_register_optimizers``.

    ``defaults``, optional, are known-good settings that a new study tries first, so that a
    search never ends worse than the textbook setting; see :class:`Default`.

    ``eval_weights(state, parameters)``, optional, gives the weights to evaluate the model at,
    and to save it with, for an optimizer that trains the model at other weights than those
    (schedule-free methods): ``state`` is the optimizer's ``Optimizer.state`` and
    ``parameters`` the model's trainable parameters; see ``tuner_register_optimizers``.
    """

    name: str
    build: Callable[..., Any]
    space: Mapping[str, Param]
    description: str = ""
    code: Callable[..., str] | None = None
    defaults: tuple[Default, ...] = ()
    eval_weights: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule the search can try.

    ``build(lr, steps, **params)`` returns a callable from the step to the learning rate;
    ``lr`` is the peak rate and ``steps`` the number of steps the schedule runs over.

    ``code(lr, steps, **params)``, optional, returns the Python expression of the same schedule
    for ``tuner export``, as ``OptimizerSpec.code`` does for an optimizer.
    """

    name: str
    build: Callable[..., Callable[[Any], Any]]
    space: Mapping[str, Param]
    description: str = ""
    code: Callable[..., str] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A training task: ``build()`` returns a ``tuner.Task``.

    ``space``, optional, declares the task's own parameters (a hidden width, a dropout rate),
    which its model factory receives as keyword arguments. None is searched until
    ``--space TASK.PARAM=VALUES`` names it; until then the factory's own defaults hold, so a
    factory gives each a default. The declared ranges are what ``tuner plugins`` shows, and
    their limits those ``--space`` may choose within.
    """

    name: str
    build: Callable[[], Task]
    description: str = ""
    space: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A validation metric: ``fn(model, x, y)`` returns a scalar ``mx.array``."""

    fn: Callable[[Any, Any, Any], Any]
    direction: str = "maximize"


@dataclass(frozen=True)
class Task:
    """Everything one trial needs; see ``tuner_register_tasks`` for the contract.

    ``test``, optional, returns the held-out ``(x, y)`` that only a confirmation run reads,
    through ``run_trial(..., test=True)``: a function, so that no trial of a search can touch
    the data, nor pay to make it.
    """

    model: Callable[..., Any]
    train: tuple[Any, Any]
    valid: tuple[Any, Any]
    loss: Callable[[Any, Any, Any], Any]
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 64
    eval_every: int = 50
    test: Callable[[], tuple[Any, Any]] | None = None
