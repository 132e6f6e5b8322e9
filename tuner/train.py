"""One MLX trial: a compiled training step, seeded batches, evals, divergence and pruning.

A search runs hundreds of short trials that differ only in their numbers, and on the CPU
``mx.compile`` builds C++ kernels with every Python float baked in as a constant. So the step is
compiled once per *graph key* (the task, the optimizer and schedule with their Int/Choice
parameters, the warmup, steps and batch size) and reused by every trial with that key that is
given the same ``GraphCache``, which a search creates once. The continuous hyperparameters
(``lr`` and each parameter a spec declares ``Float``) reach the step as ``mx.array`` values in
the compiled function's inputs, and a new trial only loads fresh weights, resets the optimizer
state and writes its numbers into those arrays.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner.lr import make_schedule
from tuner.space import Float, Param, Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task

# A loss this many times the first step's has run away; no trial comes back from that in the
# few hundred steps a search gives it.
DIVERGENCE_FACTOR = 100.0


@dataclass
class TrialResult:
    """What one trial did.

    ``value`` and ``metrics`` come from the last eval (None and empty before the first). An eval
    whose validation loss is not finite is a divergence and is not kept, so ``evals`` holds
    finite losses only; ``losses`` ends with the value that diverged.
    """

    outcome: str
    value: float | None
    metrics: dict[str, float]
    steps: int
    wall_time_s: float
    step_time_s: float | None
    compiled: bool
    reason: str | None
    losses: list[float]
    lrs: list[float]
    evals: list[dict[str, float]]


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
                partial(_validation, graph.model, task), inputs=[graph.model.state]
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


class _CompileFailed(Exception):
    """The first step of a new graph failed while tracing or building its kernels."""


def run_trial(
    task: Task,
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec,
    sample: Sample,
    *,
    steps: int,
    batch_size: int,
    eval_every: int,
    seed: int,
    graphs: GraphCache,
    objective: str = "val_loss",
    on_eval: Callable[[int, float], bool] | None = None,
    on_build: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    eager: bool = False,
) -> TrialResult:
    """Train ``task`` for ``steps`` with ``sample``'s settings and return what happened.

    ``objective`` is ``"val_loss"`` or the name of one of the task's metrics. ``on_eval(step,
    value)`` is called at each eval (every ``eval_every`` steps and after the last) with the
    objective's value, and returning True prunes the trial. A trial whose loss runs away ends
    with outcome ``"diverged"``; any other exception propagates. The trial compiles its step into
    ``graphs``, or reuses the graph there of its key. ``on_build()`` is called before the first
    step of a graph that ``graphs`` does not hold yet, while MLX builds its kernels, and
    ``on_step(done)`` after each step. Once ``stop`` is set, the trial ends before its next step
    with outcome ``"interrupted"``. ``eager=True`` skips ``mx.compile``, which otherwise is tried
    once per graph key and given up for that key in ``graphs`` when the optimizer cannot be
    traced.
    """
    started = time.perf_counter()
    if min(steps, batch_size, eval_every) < 1:
        raise ValueError("steps, batch_size and eval_every must be at least 1")
    if objective != "val_loss" and objective not in task.metrics:
        known = ", ".join(["val_loss", *task.metrics])
        raise ValueError(f"unknown objective '{objective}'; this task has: {known}")
    plan = TrialPlan.of(optimizer, schedule, sample, steps)
    stop = stop or threading.Event()
    run = _Run(
        task, plan, batch_size, eval_every, seed, objective, on_eval, on_step, stop, started, graphs
    )
    key = None if eager else plan.key(task, batch_size)
    graph = graphs.get(key)
    if key is not None and (graph is None or graph.fallback is None):
        if graph is None and on_build is not None:
            on_build()
        try:
            return run.train(key)
        except _CompileFailed as failure:
            graph = graphs[key]
            if stop.is_set():
                # Ctrl-C reaches the compiler MLX runs too, and cuts the build short: the
                # optimizer is not to blame, and a later trial builds the graph again.
                graphs.discard(key)
                graph = None
            else:
                graphs.fall_back(key, f"compile failed, so it ran eagerly: {_explain(failure)}")
        # A failed trace leaves tracers in the arrays it was given: start from new ones.
        run = replace(run, plan=TrialPlan.of(optimizer, schedule, sample, steps))
    return run.train(None, note=graph.fallback if graph else None)


def _explain(failure: _CompileFailed) -> str:
    if "eval an array during function transformations" in str(failure):
        return (
            "the optimizer or schedule reads a Float parameter's value in Python "
            "(a comparison, float() or .item()), which mx.compile cannot trace"
        )
    return str(failure)


@dataclass
class _Run:
    """The arguments of one trial."""

    task: Task
    plan: TrialPlan
    batch_size: int
    eval_every: int
    seed: int
    objective: str
    on_eval: Callable[[int, float], bool] | None
    on_step: Callable[[int], None] | None
    stop: threading.Event
    started: float
    graphs: GraphCache

    def train(self, key: tuple[Any, ...] | None, note: str | None = None) -> TrialResult:
        """Train compiled with the graph of ``key``, or eagerly when there is none."""
        mx.random.seed(self.seed)
        np.random.seed(self.seed)
        fresh = self.task.model()
        graph = None if key is None else self.graphs.get_or_build(key, self.task, self.plan, fresh)
        if graph is None:
            model, step, state = _eager(self.task, self.plan, fresh)
            evaluate = partial(_validation, model, self.task)
        else:
            model, step, state = _reuse(graph, self.plan, fresh)
            evaluate = partial(_compiled_validation, graph)
        model.train()
        x, y = self.task.train
        order = _batch_order(x.shape[0], self.plan.steps, self.batch_size, self.seed)
        log = _Log()
        traces = graph.traces if graph else 0
        try:
            outcome, reason = self._loop(model, step, evaluate, state, x, y, order, log)
        except Exception as error:
            # Only a failure while tracing or building kernels is the compiler's to give up.
            if graph is not None and graph.traces > traces:
                raise _CompileFailed(f"{type(error).__name__}: {error}") from error
            raise
        reasons = [r for r in (reason, note) if r]
        last = log.evals[-1] if log.evals else {}
        return TrialResult(
            outcome=outcome,
            value=last.get(self.objective),
            metrics={k: v for k, v in last.items() if k != "step"},
            steps=len(log.losses),
            wall_time_s=time.perf_counter() - self.started,
            step_time_s=statistics.median(log.step_times) if log.step_times else None,
            compiled=graph is not None,
            reason="; ".join(reasons) or None,
            losses=log.losses,
            lrs=log.lrs,
            evals=log.evals,
        )

    def _loop(
        self,
        model: nn.Module,
        step: Callable[[mx.array, mx.array], tuple[mx.array, mx.array]],
        evaluate: Callable[[], dict[str, mx.array]],
        state: list[Any],
        x: mx.array,
        y: mx.array,
        order: mx.array,
        log: _Log,
    ) -> tuple[str, str | None]:
        steps = self.plan.steps
        for index in range(steps):
            if self.stop.is_set():
                return "interrupted", f"interrupted at step {index}"
            tick = time.perf_counter()
            batch = order[index]
            loss, lr = step(x[batch], y[batch])
            mx.eval(loss, lr, state)
            log.step_times.append(time.perf_counter() - tick)
            log.losses.append(loss.item())
            log.lrs.append(lr.item())
            done = index + 1
            if self.on_step is not None:
                self.on_step(done)
            diverged = _divergence(log.losses, done)
            if diverged:
                return "diverged", diverged
            if done % self.eval_every == 0 or done == steps:
                metrics = _measure(model, evaluate)
                if not math.isfinite(metrics["val_loss"]):
                    return (
                        "diverged",
                        f"validation loss became {metrics['val_loss']} at step {done}",
                    )
                log.evals.append({"step": done, **metrics})
                if self.on_eval is not None and self.on_eval(done, metrics[self.objective]):
                    return "pruned", f"pruned at step {done}"
        return "complete", None


@dataclass
class _Log:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)


def _reuse(graph: Graph, plan: TrialPlan, fresh: nn.Module) -> tuple[nn.Module, Callable, list]:
    """Point the cached graph at this trial: fresh weights, fresh optimizer state, its numbers."""
    graph.model.update(fresh.parameters())
    graph.hp.update(plan.hp)
    # The state is built eagerly so that the compiled step always sees one tree structure.
    initial = plan.build_optimizer(plan.hp)
    initial.init(graph.model.trainable_parameters())
    graph.opt_state.clear()
    graph.opt_state.update(initial.state)
    return graph.model, graph.step, graph.state


def _eager(task: Task, plan: TrialPlan, model: nn.Module) -> tuple[nn.Module, Callable, list]:
    optimizer = plan.build_optimizer(plan.hp)
    loss_and_grad = nn.value_and_grad(model, task.loss)

    def step(x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss, optimizer.learning_rate

    return model, step, [model.state, optimizer.state]


def _batch_order(n: int, steps: int, batch_size: int, seed: int) -> mx.array:
    """Row indices of every batch, ``(steps, batch_size)``: shuffled epochs, end to end."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return mx.array(order[: steps * batch_size].reshape(steps, batch_size))


def _divergence(losses: list[float], step: int) -> str | None:
    loss, first = losses[-1], losses[0]
    if not math.isfinite(loss):
        return f"loss became {loss} at step {step}"
    if first != 0 and loss > DIVERGENCE_FACTOR * abs(first):
        return (
            f"loss {loss:.3g} exceeded {DIVERGENCE_FACTOR:g}× the initial {first:.3g} "
            f"at step {step}"
        )
    return None


def _measure(model: nn.Module, evaluate: Callable[[], dict[str, mx.array]]) -> dict[str, float]:
    model.eval()
    values = evaluate()
    mx.eval(values)
    model.train()
    return {name: value.item() for name, value in values.items()}


def _validation(model: nn.Module, task: Task) -> dict[str, mx.array]:
    x, y = task.valid
    values = {"val_loss": task.loss(model, x, y)}
    values.update({name: metric.fn(model, x, y) for name, metric in task.metrics.items()})
    return values


def _compiled_validation(graph: Graph) -> dict[str, mx.array]:
    if graph.evaluate is not None:
        weights = graph.model.parameters()
        try:
            values = graph.evaluate()
            mx.eval(values)
            return values
        except Exception:
            # A metric that cannot be traced is measured eagerly from now on; the failed
            # trace left tracers in the model, so its weights are put back first.
            graph.model.update(weights)
            graph.evaluate = None
    return _validation(graph.model, graph.task)
