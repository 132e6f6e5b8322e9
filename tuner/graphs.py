"""What a search compiles once per graph key and reuses across its trials: the training step and
the validation, with the model and optimizer state they read and write.

On the CPU ``mx.compile`` builds C++ kernels with every Python float baked in as a constant, and
a search runs hundreds of short trials that differ only in their numbers. So a trial's settings
are split in two (:class:`TrialPlan`): what selects a graph (the task, the optimizer and schedule
with their Int/Choice parameters, the warmup, steps and batch size) and the continuous
hyperparameters (``lr`` and each parameter a spec declares ``Float``), which reach the step as
``mx.array`` values in the compiled function's inputs. A :class:`GraphCache`, created once per
search, holds one :class:`Graph` per key; a new trial only loads fresh weights into it, resets
the optimizer state and writes its numbers into those arrays. Running a trial is
:mod:`tuner.train`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from tuner.errors import BadInput
from tuner.lr import make_schedule
from tuner.space import Float, Param, Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task


@dataclass(frozen=True)
class TrialPlan:
    """One trial's settings, split into what selects a graph and what flows into it."""

    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    steps: int
    warmup: int
    hp: dict[str, Any]
    optimizer_static: dict[str, Any]
    schedule_static: dict[str, Any]

    @classmethod
    def of(
        cls, optimizer: OptimizerSpec, schedule: ScheduleSpec, sample: Sample, steps: int
    ) -> TrialPlan:
        opt_floats, opt_static = _split(optimizer.space, sample.optimizer_params)
        sched_floats, sched_static = _split(schedule.space, sample.schedule_params)
        return cls(
            optimizer=optimizer,
            schedule=schedule,
            steps=steps,
            warmup=round(sample.warmup * steps),
            hp={"lr": _scalar(sample.lr), "optimizer": opt_floats, "schedule": sched_floats},
            optimizer_static=opt_static,
            schedule_static=sched_static,
        )

    def key(self, task: Task, batch_size: int) -> tuple[Any, ...]:
        return (
            id(task),
            self.optimizer.name,
            self.optimizer.build,
            tuple(sorted(self.hp["optimizer"])),
            tuple(sorted(self.optimizer_static.items())),
            self.schedule.name,
            self.schedule.build,
            tuple(sorted(self.hp["schedule"])),
            tuple(sorted(self.schedule_static.items())),
            self.warmup,
            self.steps,
            batch_size,
        )

    def build_optimizer(self, hp: Mapping[str, Any]) -> Any:
        """The schedule, then the optimizer, from ``hp`` (tracers when called inside a trace)."""
        params = {**hp["schedule"], **self.schedule_static}
        schedule = make_schedule(self.schedule, hp["lr"], self.steps, self.warmup, params)
        return self.optimizer.build(schedule, **hp["optimizer"], **self.optimizer_static)


def _scalar(value: float) -> mx.array:
    return mx.array(value, dtype=mx.float32)


def _split(space: Mapping[str, Param], params: Mapping[str, Any]) -> tuple[dict, dict]:
    floats = {k: _scalar(v) for k, v in params.items() if isinstance(space.get(k), Float)}
    return floats, {k: v for k, v in params.items() if k not in floats}


def validation(model: nn.Module, task: Task) -> dict[str, mx.array]:
    """The validation loss and the task's metrics of ``model``, as arrays not yet evaluated."""
    x, y = task.valid
    values = {"val_loss": task.loss(model, x, y)}
    values.update({name: metric.fn(model, x, y) for name, metric in task.metrics.items()})
    return values


@dataclass
class Graph:
    """A compiled step and the containers it reads and writes, shared by the trials of one key.

    ``task`` is held so that its ``id`` in the key cannot be reused while the entry lives.
    ``traces`` counts the times MLX traced the step: once, when the trials reuse it.
    ``evaluate`` is None once the validation could not be compiled and is measured eagerly, and
    ``fallback`` says why the key's trials train eagerly, when they do.
    """

    task: Task
    model: nn.Module
    opt_state: dict = field(default_factory=dict)
    hp: dict = field(default_factory=dict)
    step: Callable[[mx.array, mx.array], tuple[mx.array, mx.array]] | None = None
    evaluate: Callable[[], dict[str, mx.array]] | None = None
    traces: int = 0
    fallback: str | None = None

    @property
    def state(self) -> list[Any]:
        return [self.model.state, self.opt_state, mx.random.state]

    def load(self, plan: TrialPlan, fresh: nn.Module) -> None:
        """Point the graph at a new trial: ``fresh``'s weights, new optimizer state, its numbers."""
        self.model.update(fresh.parameters())
        self.hp.update(plan.hp)
        # The state is built eagerly so that the compiled step always sees one tree structure.
        initial = plan.build_optimizer(plan.hp)
        initial.init(self.model.trainable_parameters())
        self.opt_state.clear()
        self.opt_state.update(initial.state)

    def validate(self) -> dict[str, mx.array]:
        """:func:`validation` of the graph's model, compiled while the metrics can be traced."""
        if self.evaluate is not None:
            weights = self.model.parameters()
            try:
                values = self.evaluate()
                mx.eval(values)
                return values
            except Exception:
                # A metric that cannot be traced is measured eagerly from now on; the failed
                # trace left tracers in the model, so its weights are put back first.
                self.model.update(weights)
                self.evaluate = None
        return validation(self.model, self.task)


class GraphCache(Mapping[tuple[Any, ...], Graph]):
    """The graphs compiled for one search, by graph key: the first trial of a key builds its
    graph and the later ones reuse it.

    A graph holds the model and optimizer state that its trials train in turn, so a cache serves
    one search, one trial at a time; a trial given a new cache reuses nothing and disturbs nothing.
    """

    def __init__(self) -> None:
        self._graphs: dict[tuple[Any, ...], Graph] = {}

    def __getitem__(self, key: tuple[Any, ...]) -> Graph:
        return self._graphs[key]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._graphs)

    def __len__(self) -> int:
        return len(self._graphs)

    def get_or_build(
        self, key: tuple[Any, ...], task: Task, plan: TrialPlan, model: nn.Module
    ) -> Graph:
        """The graph of ``key``, or a new one around ``model``, the trial's fresh model."""
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = Graph(task=task, model=model)
            graph.step = _compile(graph, plan)
            # Compiled, the loss and the metrics share one forward pass and fuse their arithmetic.
            graph.evaluate = mx.compile(
                partial(validation, graph.model, task), inputs=[graph.model.state]
            )
        return graph

    def fall_back(self, key: tuple[Any, ...], reason: str) -> None:
        """Train the trials of ``key`` eagerly from now on, saying ``reason``."""
        self._graphs[key].fallback = reason

    def discard(self, key: tuple[Any, ...]) -> None:
        """Forget ``key``, so that its next trial builds the graph again."""
        del self._graphs[key]


def _compile(graph: Graph, plan: TrialPlan) -> Callable[[mx.array, mx.array], Any]:
    loss_and_grad = nn.value_and_grad(graph.model, graph.task.loss)

    def step(x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
        # This body runs only while mx.compile traces it: the optimizer built here exists to
        # record its arithmetic on the hp tracers and the persistent state.
        graph.traces += 1
        optimizer = plan.build_optimizer(graph.hp)
        optimizer.state = graph.opt_state
        loss, grads = loss_and_grad(graph.model, x, y)
        optimizer.update(graph.model, grads)
        return loss, optimizer.learning_rate

    return mx.compile(step, inputs=[*graph.state, graph.hp], outputs=graph.state)


def find_compiler() -> None:
    """Have MLX look for its C++ compiler now, before a search begins.

    MLX asks with ``system()``, which makes this process ignore SIGINT while the compiler
    answers: a Ctrl-C pressed then is lost. It asks once a process, at its first compiled
    function; asked here, the moment falls before the search, while nothing is stored yet,
    rather than inside a trial, where a press that vanishes leaves the search running.
    """
    mx.eval(mx.compile(lambda x: mx.exp(x) * 2.0 + 1.0)(mx.zeros(4)))


class CompileFailed(Exception):
    """The first step of a new graph failed while tracing or building its kernels."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"{type(error).__name__}: {error}")

    def explain(self) -> str:
        """Why, in words that a plugin's author can act on where MLX's are cryptic."""
        if "eval an array during function transformations" in str(self):
            return (
                "the optimizer or schedule reads a Float parameter's value in Python "
                "(a comparison, float() or .item()), which mx.compile cannot trace"
            )
        return str(self)


def check_device(device: str | None) -> str:
    """Make ``device`` MLX's default and return its name; None picks the GPU when there is one."""
    if device is None:
        device = "gpu" if mx.is_available(mx.gpu) else "cpu"
    if device == "gpu" and not mx.is_available(mx.gpu):
        raise BadInput(
            "this MLX build has no GPU: on Linux install tuner[cuda] (mlx[cuda13]) for NVIDIA "
            "GPUs; on a Mac with Apple silicon, mlx brings Metal"
        )
    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    return device
