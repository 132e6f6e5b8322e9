"""One MLX trial: its seeded batches, the training loop, evals, divergence, pruning and what it
reports.

A trial trains with the graph of its key from a :class:`~tuner.graphs.GraphCache`, compiled by
the first trial of that key and reused by the rest (:mod:`tuner.graphs` says why), or eagerly
when asked to or when its optimizer cannot be compiled. Either way it runs the same loop, so a
trial's losses and outcome do not depend on how its step was built.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from tuner.graphs import CompileFailed, GraphCache, TrialPlan, validation
from tuner.results import Outcome
from tuner.space import Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task

# A loss this many times the first step's has run away; no trial comes back from that in the
# few hundred steps a search gives it.
DIVERGENCE_FACTOR = 100.0


class Stop(Protocol):
    """What ends a trial before its next step once set: a ``threading.Event``, say."""

    def is_set(self) -> bool: ...


@dataclass
class TrialResult:
    """What one trial did.

    ``value`` and ``metrics`` come from the last eval (None and empty before the first). An eval
    whose validation loss is not finite is a divergence and is not kept, so ``evals`` holds
    finite losses only; ``losses`` ends with the value that diverged. ``test_metrics`` holds
    the trained model's ``test_loss`` and each metric as ``test_NAME`` on the task's test set,
    measured only when asked for, once a trial completes: prefixed, so that no key is taken for
    a validation value or an objective. ``weights`` are the model's trained parameters at the
    trial's end, as MLX arrays.
    """

    outcome: Outcome
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
    test_metrics: dict[str, float] = field(default_factory=dict)
    weights: dict[str, Any] | None = None

    @classmethod
    def unrun(cls, outcome: Outcome, reason: str, wall_time_s: float) -> TrialResult:
        """A trial that ended before it trained: stopped first, or failed to start."""
        return cls(
            outcome=outcome,
            value=None,
            metrics={},
            steps=0,
            wall_time_s=wall_time_s,
            step_time_s=None,
            compiled=False,
            reason=reason,
            losses=[],
            lrs=[],
            evals=[],
        )


def check_run(task: Task, steps: int, batch_size: int, eval_every: int, objective: str) -> None:
    """Raise ValueError unless a trial of ``task`` can run with these."""
    if min(steps, batch_size, eval_every) < 1:
        raise ValueError("steps, batch_size and eval_every must be at least 1")
    if objective != "val_loss" and objective not in task.metrics:
        known = ", ".join(["val_loss", *task.metrics])
        raise ValueError(f"unknown objective '{objective}'; this task has: {known}")


def failure(error: Exception) -> str:
    """Why a trial failed, in one line."""
    return f"{type(error).__name__}: {error}".splitlines()[0]


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
    stop: Stop | None = None,
    eager: bool = False,
    test: bool = False,
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
    traced. ``test=True``, for a confirmation run, measures the task's test set once the trial
    completes; a search leaves it False, so that no trial reads the test set.
    """
    started = time.perf_counter()
    check_run(task, steps, batch_size, eval_every, objective)
    plan = TrialPlan.of(optimizer, schedule, sample, steps)
    stop = stop or threading.Event()
    run = _Run(
        task,
        plan,
        batch_size,
        eval_every,
        seed,
        objective,
        on_eval,
        on_step,
        stop,
        started,
        graphs,
        test,
    )
    key = None if eager else plan.key(task, batch_size)
    graph = graphs.get(key)
    if key is not None and (graph is None or graph.fallback is None):
        if graph is None and on_build is not None:
            on_build()
        try:
            return run.train(key)
        except CompileFailed as failure:
            graph = graphs[key]
            if stop.is_set():
                # Ctrl-C reaches the compiler MLX runs too, and cuts the build short: the
                # optimizer is not to blame, and a later trial builds the graph again.
                graphs.discard(key)
                graph = None
            else:
                graphs.fall_back(key, f"compile failed, so it ran eagerly: {failure.explain()}")
        # A failed trace leaves tracers in the arrays it was given: start from new ones.
        run = replace(run, plan=TrialPlan.of(optimizer, schedule, sample, steps))
    return run.train(None, note=graph.fallback if graph else None)


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
    stop: Stop
    started: float
    graphs: GraphCache
    test: bool

    def train(self, key: tuple[Any, ...] | None, note: str | None = None) -> TrialResult:
        """Train compiled with the graph of ``key``, or eagerly when there is none."""
        mx.random.seed(self.seed)
        np.random.seed(self.seed)
        fresh = self.task.model()
        graph = None if key is None else self.graphs.get_or_build(key, self.task, self.plan, fresh)
        if graph is None:
            model, step, opt_state = _eager(self.task, self.plan, fresh)
            state = [model.state, opt_state]
            evaluate = partial(validation, model, self.task)
        else:
            graph.load(self.plan, fresh)
            model, step, state, evaluate = graph.model, graph.step, graph.state, graph.validate
            opt_state = graph.opt_state
        eval_weights = self.plan.optimizer.eval_weights
        at = None if eval_weights is None else partial(eval_weights, opt_state)
        model.train()
        x, y = self.task.train
        order = batch_order(x.shape[0], self.plan.steps, self.batch_size, self.seed)
        log = _Log()
        traces = graph.traces if graph else 0
        try:
            outcome, reason = self._loop(model, step, evaluate, at, state, x, y, order, log)
        except Exception as error:
            # Only a failure while tracing or building kernels is the compiler's to give up;
            # not one of the caller's callbacks (a report that a full disk refused).
            if graph is not None and graph.traces > traces and not log.in_callback:
                raise CompileFailed(error) from error
            raise
        reasons = [r for r in (reason, note) if r]
        last = log.evals[-1] if log.evals else {}
        tested = self.test and outcome == Outcome.COMPLETE and self.task.test is not None
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
            test_metrics=_measure(model, partial(_on_test_set, model, self.task), at)
            if tested
            else {},
            weights=model.parameters(),
        )

    def _loop(
        self,
        model: nn.Module,
        step: Callable[[mx.array, mx.array], tuple[mx.array, mx.array]],
        evaluate: Callable[[], dict[str, mx.array]],
        at: Callable[[Any], Any] | None,
        state: list[Any],
        x: mx.array,
        y: mx.array,
        order: mx.array,
        log: _Log,
    ) -> tuple[Outcome, str | None]:
        steps = self.plan.steps
        for index in range(steps):
            if self.stop.is_set():
                return Outcome.INTERRUPTED, f"interrupted at step {index}"
            tick = time.perf_counter()
            batch = order[index]
            loss, lr = step(x[batch], y[batch])
            mx.eval(loss, lr, state)
            log.step_times.append(time.perf_counter() - tick)
            log.losses.append(loss.item())
            log.lrs.append(lr.item())
            done = index + 1
            log.in_callback = True
            if self.on_step is not None:
                self.on_step(done)
            log.in_callback = False
            diverged = divergence(log.losses, done)
            if diverged:
                return Outcome.DIVERGED, diverged
            if done % self.eval_every == 0 or done == steps:
                metrics = _measure(model, evaluate, at)
                if not math.isfinite(metrics["val_loss"]):
                    return (
                        Outcome.DIVERGED,
                        f"validation loss became {metrics['val_loss']} at step {done}",
                    )
                log.evals.append({"step": done, **metrics})
                log.in_callback = True
                if self.on_eval is not None and self.on_eval(done, metrics[self.objective]):
                    return Outcome.PRUNED, f"pruned at step {done}"
                log.in_callback = False
        return Outcome.COMPLETE, None


@dataclass
class _Log:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    # While the caller's on_step or on_eval runs: what it raises is not the compiler's.
    in_callback: bool = False


def _eager(task: Task, plan: TrialPlan, model: nn.Module) -> tuple[nn.Module, Callable, dict]:
    optimizer = plan.build_optimizer(plan.hp)
    loss_and_grad = nn.value_and_grad(model, task.loss)

    def step(x: mx.array, y: mx.array) -> tuple[mx.array, mx.array]:
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss, optimizer.learning_rate

    return model, step, optimizer.state


def batch_order(n: int, steps: int, batch_size: int, seed: int) -> mx.array:
    """Row indices of every batch, ``(steps, batch_size)``: shuffled epochs, end to end."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return mx.array(order[: steps * batch_size].reshape(steps, batch_size))


def divergence(losses: list[float], step: int) -> str | None:
    loss, first = losses[-1], losses[0]
    if not math.isfinite(loss):
        return f"loss became {loss} at step {step}"
    if first != 0 and loss > DIVERGENCE_FACTOR * abs(first):
        return (
            f"loss {loss:.3g} exceeded {DIVERGENCE_FACTOR:g}× the initial {first:.3g} "
            f"at step {step}"
        )
    return None


def _on_test_set(model: nn.Module, task: Task) -> dict[str, mx.array]:
    """The loss and the metrics of ``model`` on ``task``'s test set, as arrays not yet evaluated."""
    x, y = task.test()
    values = {"test_loss": task.loss(model, x, y)}
    values.update({f"test_{name}": metric.fn(model, x, y) for name, metric in task.metrics.items()})
    return values


def _measure(
    model: nn.Module,
    evaluate: Callable[[], dict[str, mx.array]],
    at: Callable[[Any], Any] | None = None,
) -> dict[str, float]:
    """``evaluate``'s values, measured at the weights ``at(parameters)`` gives where the
    optimizer declares them, and the weights it trains at put back afterwards."""
    trained = model.parameters()
    if at is not None:
        model.update(at(model.trainable_parameters()))
    model.eval()
    try:
        values = evaluate()
        mx.eval(values)
    finally:
        model.update(trained)
        model.train()
    return {name: value.item() for name, value in values.items()}
