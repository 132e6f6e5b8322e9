"""What a search compiles once per graph key and reuses across its trials: one member's training
step and validation, compiled to train a population of members at once or one at a time.

On the CPU ``mx.compile`` builds C++ kernels with every Python float baked in as a constant, and
a search runs hundreds of short trials that differ only in their numbers. So a trial's settings
are split in two (:class:`TrialPlan`): what selects a graph (the task with the parameters its
model factory received, the optimizer with its Int/Choice parameters, the batch size) and what
flows into it as arrays: each ``Float`` of the
optimizer, and the learning rate at every step. The schedule (a plugin's, behind the warmup) is
a function of the step alone, so it is evaluated once before a trial trains and the step looks
its rate up in that table; the schedule, its settings, the warmup and the step count select no
graph. A :class:`GraphCache`, created once per search, holds one :class:`Graph` per key, whose
step is a pure function of the weights, optimizer state, those arrays and a batch. Running the
trials is :mod:`tuner.train`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from tuner.lr import as_float32, rate_table
from tuner.params import Float
from tuner.space import Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task


def graph_settings(optimizer: OptimizerSpec, sample: Sample, task: str = "") -> dict[str, Any]:
    """What selects the graph of a trial of ``optimizer`` and ``sample``, beside the task it
    trains on, named as Optuna names them (``task`` names the task's own): the optimizer and
    each of its settings but the ``Float`` ones it declares, the batch size where searched,
    and the task's parameters. The rest flows into the graph as arrays: the optimizer's
    ``Float`` settings, whatever values ``--space`` gave them, and the learning rate at every
    step. So these are also what the members of a population share, and fix as its family."""
    name = sample.optimizer
    settings: dict[str, Any] = {"optimizer": name}
    for key, value in sample.optimizer_params.items():
        if not isinstance(optimizer.space.get(key), Float):
            settings[f"{name}.{key}"] = value
    if sample.batch_size is not None:
        settings["batch_size"] = sample.batch_size
    settings.update({f"{task}.{key}": value for key, value in sample.task_params.items()})
    return settings


@dataclass(frozen=True)
class TrialPlan:
    """One trial's settings, split into what selects a graph and what flows into it.

    ``hp`` holds the arrays that flow in: the optimizer's ``Float`` settings as scalars, and
    ``rates``, the learning rate at every step from 0 to the last (and after it, the last).
    """

    optimizer: OptimizerSpec
    hp: dict[str, Any]
    static: dict[str, Any]
    # What selects its graph, beside the task and the batch size: see graph_settings.
    settings: dict[str, Any]
    # What the task's model factory receives: each value shapes the model, or is a constant
    # of its graph.
    task_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, optimizer: OptimizerSpec, schedule: ScheduleSpec, sample: Sample, steps: int
    ) -> TrialPlan:
        params = as_float32(optimizer.space, sample.optimizer_params)
        floats = {k: v for k, v in params.items() if isinstance(v, mx.array)}
        static = {k: v for k, v in params.items() if k not in floats}
        warmup = round(sample.warmup * steps)
        rates = rate_table(schedule, sample.lr, steps, warmup, sample.schedule_params)
        return cls(
            optimizer,
            {"optimizer": floats, "rates": rates},
            static,
            graph_settings(optimizer, sample),
            dict(sample.task_params),
        )

    def key(self, task: Task, batch_size: int) -> tuple[Any, ...]:
        """The key of this trial's graph when it trains on ``task`` in batches of
        ``batch_size``: the task itself, the optimizer's code and what selects a graph."""
        settings = tuple(sorted(self.settings.items()))
        return (id(task), self.optimizer.build, batch_size, settings)

    def build_optimizer(self, hp: Mapping[str, Any]) -> Any:
        """The optimizer with ``hp``'s settings (tracers when called inside a trace), its
        learning rate at any step it asks for read from ``hp["rates"]``: an optimizer that
        reads its schedule at other steps than the current one reads it exactly too."""
        rates = hp["rates"]
        last = rates.shape[-1] - 1

        def schedule(step: Any) -> mx.array:
            return mx.take(rates, mx.minimum(step, last).astype(mx.int32))

        return self.optimizer.build(schedule, **hp["optimizer"], **self.static)


def validation(model: nn.Module, task: Task) -> dict[str, mx.array]:
    """The validation loss and the task's metrics of ``model``, as arrays not yet evaluated."""
    x, y = task.valid
    values = {"val_loss": task.loss(model, x, y)}
    values.update({name: metric.fn(model, x, y) for name, metric in task.metrics.items()})
    return values


class Mode(Enum):
    """How a graph's step runs a population, from the fastest to the most forgiving."""

    # One vectorised, compiled step for the whole stack.
    TOGETHER = "together"
    # A compiled step for one member, run for each in turn.
    ALONE = "alone"
    # The same step, neither vectorised nor compiled: any optimizer that MLX runs, runs.
    EAGER = "eager"


@dataclass
class Graph:
    """A graph key's step and validation, in each :class:`Mode`, shared by its trials.

    ``step(params, opt_state, hp, x, y)`` returns a member's loss and learning rate, its new
    weights and optimizer state; ``validate(params, opt_state)`` its validation loss and
    metrics. In :attr:`Mode.TOGETHER` both take and give stacks, arrays with a leading axis of
    members (:mod:`tuner.stacks`); in the other modes, one member's arrays.
    ``traces`` counts the times MLX traced the step: once for each stack size and mode.
    ``broken`` says why a mode cannot run this key's trials, for each one that failed to
    compile; ``eager_validation`` is set once the validation could not be compiled.
    ``model`` is the module they run the task's model in, each loading a member's weights
    first: the first trial's, given before its first step. ``task`` is held so that its ``id``
    in the key cannot be reused while the entry lives.
    """

    task: Task
    step: dict[Mode, Callable[..., Any]]
    validate: dict[Mode, Callable[..., Any]]
    model: nn.Module | None = None
    traces: int = 0
    built: set[tuple[Mode, int]] = field(default_factory=set)
    broken: dict[Mode, str] = field(default_factory=dict)
    eager_validation: bool = False

    def mode(self, size: int) -> Mode:
        """The mode to train ``size`` members in: together where there are several, unless
        a mode has failed this key before."""
        modes = [Mode.ALONE, Mode.EAGER] if size == 1 else list(Mode)
        return next(mode for mode in modes if mode not in self.broken)

    def notes(self, mode: Mode, size: int) -> list[str]:
        """Why ``size`` members train in ``mode`` rather than a faster one, in trials' words."""
        notes = []
        if mode is Mode.EAGER and Mode.ALONE in self.broken:
            notes.append(f"compile failed, so it ran eagerly: {self.broken[Mode.ALONE]}")
        if size > 1 and Mode.TOGETHER in self.broken:
            notes.append(
                f"trained alone, as its population failed to: {self.broken[Mode.TOGETHER]}"
            )
        return notes


def _build(task: Task, plan: TrialPlan) -> Graph:
    eval_weights = plan.optimizer.eval_weights

    def member_step(params: Any, opt_state: Any, hp: Any, x: mx.array, y: mx.array) -> Any:
        # Compiled, this runs only while MLX traces it: the model and optimizer here record
        # one member's arithmetic on tracers.
        model = graph.model
        model.update(params)
        model.train()
        optimizer = plan.build_optimizer(hp)
        optimizer.state = opt_state
        loss, grads = nn.value_and_grad(model, task.loss)(model, x, y)
        optimizer.update(model, grads)
        return loss, optimizer.learning_rate, model.parameters(), optimizer.state

    def member_validate(params: Any, opt_state: Any) -> dict[str, mx.array]:
        model = graph.model
        model.update(params)
        model.eval()
        if eval_weights is not None:
            model.update(eval_weights(opt_state, model.trainable_parameters()))
        return validation(model, task)

    def traced(fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            graph.traces += 1
            return fn(*args)

        return counted

    # A model that draws random numbers while it trains (dropout) draws from MLX's state, which
    # a compiled step must carry in and out to draw anew at each step.
    state = [mx.random.state]
    graph = Graph(
        task=task,
        step={
            Mode.TOGETHER: mx.compile(traced(mx.vmap(member_step)), inputs=state, outputs=state),
            Mode.ALONE: mx.compile(traced(member_step), inputs=state, outputs=state),
            Mode.EAGER: member_step,
        },
        validate={
            Mode.TOGETHER: mx.compile(mx.vmap(member_validate)),
            Mode.ALONE: mx.compile(member_validate),
            Mode.EAGER: member_validate,
        },
    )
    return graph


class GraphCache(Mapping[tuple[Any, ...], Graph]):
    """The graphs compiled for one search, by graph key: the first trial of a key builds its
    graph and the later ones reuse it. A graph holds no trial's numbers, only its arithmetic,
    so trials may share it in any order; a trial given a new cache reuses nothing."""

    def __init__(self) -> None:
        self._graphs: dict[tuple[Any, ...], Graph] = {}

    def __getitem__(self, key: tuple[Any, ...]) -> Graph:
        return self._graphs[key]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._graphs)

    def __len__(self) -> int:
        return len(self._graphs)

    def get_or_build(self, key: tuple[Any, ...], task: Task, plan: TrialPlan) -> Graph:
        """The graph of ``key``, built from ``plan`` when there is none yet."""
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = _build(task, plan)
        return graph

    def discard(self, key: tuple[Any, ...]) -> None:
        """Forget ``key``, so that its next trial builds the graph again."""
        self._graphs.pop(key, None)


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
                "the optimizer reads a Float parameter's value in Python "
                "(a comparison, float() or .item()), which mx.compile cannot trace"
            )
        return str(self)
