"""Training: a population of trials of one graph key, trained together; a lone trial is a
population of one.

The members' weights, optimizer states and hyperparameters (each one's learning rate at every
step among them) are stacked on a leading axis, and the key's graph (:mod:`tuner.graphs`)
steps the whole stack at once: vectorised and compiled where it can be, one member at a time
compiled where it cannot be vectorised, eagerly where it cannot be compiled, each record saying
why. A short trial of a small model leaves the hardware idle between its tiny matrix products;
K members in one step fill it (``benchmarks/population.py`` has the figures).

Each member keeps what it would have had alone: its seed's initial weights and batches, its own
hyperparameters, losses, evals, pruning and outcome, so its numbers are the same trial's alone to
float32 rounding. Nothing in a step mixes members, so a member's NaN stays its own. A member that
ends (pruned, diverged, failed) stops being computed: its slot takes a copy of a running member,
whose numbers there are ignored, and once half the slots are such copies the stack shrinks to
half, so a population of K compiles at most log2(K) + 1 shapes. A member's ``step_time_s`` is
its share of the population's step: the median step's time over the members computed in it.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
import numpy as np

from tuner.graphs import CompileFailed, Graph, GraphCache, Mode, TrialPlan
from tuner.results import Outcome
from tuner.space import Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task
from tuner.stacks import Apart, Stacked, one_by_one
from tuner.trial import (
    Member,
    Stop,
    TrialResult,
    batch_order,
    check_run,
    divergence,
    failure,
)


def run_trial(
    task: Task,
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec,
    sample: Sample,
    *,
    seed: int,
    on_eval: Callable[[int, float], bool] | None = None,
    **settings: Any,
) -> TrialResult:
    """Train one trial alone, a population of one: :func:`train` with one :class:`Member`."""
    (result,) = train(task, optimizer, [Member(schedule, sample, seed, on_eval)], **settings)
    return result


def train(
    task: Task,
    optimizer: OptimizerSpec,
    members: Sequence[Member],
    *,
    steps: int,
    batch_size: int,
    eval_every: int,
    graphs: GraphCache,
    objective: str = "val_loss",
    on_build: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop: Stop | None = None,
    eager: bool = False,
    test: bool = False,
) -> list[TrialResult]:
    """Train ``members``, trials of ``optimizer`` that share a graph key, together; return
    their results in order.

    ``objective`` is ``"val_loss"`` or the name of one of the task's metrics, which each
    member's ``on_eval`` is given at each eval (every ``eval_every`` steps and after the last).
    A member whose loss runs away ends with outcome ``"diverged"``; one whose ``on_eval``
    raises, or whose schedule cannot be computed, ``"failed"``; any other exception
    propagates. The members train with their key's graph in ``graphs``, built by the first
    trial of the key; ``on_build()`` is called before a step that MLX traces and builds
    kernels for, and ``on_step(done)`` after each step. Once ``stop`` is set, the members end
    before the next step with outcome ``"interrupted"``. ``eager=True`` compiles nothing.
    ``test=True``, for a confirmation run, measures the task's test set once a member
    completes; a search leaves it False, so that no trial reads the test set.
    """
    started = time.perf_counter()
    check_run(task, steps, batch_size, eval_every, objective)
    stop = stop or threading.Event()
    results: list[TrialResult | None] = [None] * len(members)
    plans: dict[int, TrialPlan] = {}
    for index, member in enumerate(members):
        try:
            plans[index] = TrialPlan.of(optimizer, member.schedule, member.sample, steps)
        except Exception as error:
            elapsed = time.perf_counter() - started
            results[index] = TrialResult.unrun(Outcome.FAILED, failure(error), elapsed)
    if not plans:
        return results  # type: ignore[return-value]
    keys = {plan.key(task, batch_size) for plan in plans.values()}
    if len(keys) > 1:
        raise ValueError("a population's members must share a graph key")
    (key,) = keys
    graph = graphs.get_or_build(key, task, next(iter(plans.values())))
    chosen = [members[i] for i in plans]
    while True:
        mode = Mode.EAGER if eager else graph.mode(len(chosen))
        if mode is not Mode.EAGER and (mode, len(chosen)) not in graph.built and on_build:
            on_build()
        run = _Training(task, graph, list(plans.values()), chosen, mode, stop, started, test)
        try:
            trained = run.train(steps, batch_size, eval_every, objective, on_step)
            break
        except CompileFailed as error:
            if stop.is_set():
                # Ctrl-C reaches the compiler MLX runs too, and cuts the build short: the
                # optimizer is not to blame, and a later trial builds the graph again.
                graphs.discard(key)
                eager = True
            else:
                graph.broken[mode] = error.explain()
    graph.built.add((mode, len(chosen)))
    notes = graph.notes(mode, len(chosen))
    for index, result in zip(plans, trained, strict=True):
        result.reason = "; ".join(r for r in (result.reason, *notes) if r) or None
        results[index] = result
    return results  # type: ignore[return-value]


@dataclass
class _Log:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    ended: TrialResult | None = None


@dataclass
class _Training:
    """One population's run in one mode: its members' arrays, and which member each of their
    slots holds."""

    task: Task
    graph: Graph
    plans: list[TrialPlan]
    members: Sequence[Member]
    mode: Mode
    stop: Stop
    started: float
    test: bool
    step_times: list[float] = field(default_factory=list)

    def train(
        self,
        steps: int,
        batch_size: int,
        eval_every: int,
        objective: str,
        on_step: Callable[[int], None] | None,
    ) -> list[TrialResult]:
        x, y = self.task.train
        arrays = []
        for member, plan in zip(self.members, self.plans, strict=True):
            mx.random.seed(member.seed)
            np.random.seed(member.seed)
            model = self.task.model(**plan.task_params)
            if self.graph.model is None:
                self.graph.model = model
            # Built eagerly, so that the compiled step always sees one tree structure.
            initial = plan.build_optimizer(plan.hp)
            initial.init(model.trainable_parameters())
            arrays.append(
                {
                    "params": model.parameters(),
                    "opt_state": initial.state,
                    "hp": plan.hp,
                    "order": batch_order(x.shape[0], steps, batch_size, member.seed),
                }
            )
        together = self.mode is Mode.TOGETHER
        self.stack = Stacked(arrays) if together else Apart(arrays)
        # The member each slot holds; None where a slot of a stack copies another's.
        slots: list[int | None] = list(range(len(self.members)))
        logs = [_Log() for _ in self.members]
        for index in range(steps):
            if self.stop.is_set():
                reason = f"interrupted at step {index}"
                self._end_all(logs, Outcome.INTERRUPTED, reason, slots, objective)
                break
            tick = time.perf_counter()
            losses, lrs = self._step(x, y, index)
            self.step_times.append((time.perf_counter() - tick) / len(slots))
            done = index + 1
            for slot, (loss, lr) in enumerate(zip(losses, lrs, strict=True)):
                member = slots[slot]
                if member is None:
                    continue
                log = logs[member]
                log.losses.append(loss)
                log.lrs.append(lr)
                diverged = divergence(log.losses, done)
                if diverged:
                    self._end(log, Outcome.DIVERGED, diverged, slot, objective)
            if on_step is not None:
                on_step(done)
            if done % eval_every == 0 or done == steps:
                self._evaluate(slots, logs, done, objective)
            if all(log.ended for log in logs):
                break
            running = [member is not None and not logs[member].ended for member in slots]
            if running.count(True) == 1 and self._alone_built():
                # The last member steps alone: one member's compiled step, built already, is
                # faster than a stack of one and builds no kernels for it.
                slot = running.index(True)
                self.stack, slots, self.mode = (
                    Apart([self.stack.member(slot)]),
                    [slots[slot]],
                    Mode.ALONE,
                )
            elif not all(running):
                slots = self.stack.reslot(slots, running)
        self._end_all(logs, Outcome.COMPLETE, None, slots, objective)
        return [log.ended for log in logs]

    def _alone_built(self) -> bool:
        return isinstance(self.stack, Stacked) and (Mode.ALONE, 1) in self.graph.built

    def _step(self, x: mx.array, y: mx.array, index: int) -> tuple[list, list]:
        """The graph's step of every slot, evaluated; a failure while MLX traces it is the
        compiler's."""
        traces = self.graph.traces
        try:
            return self.stack.step(self.graph.step[self.mode], x, y, index)
        except Exception as error:
            if self.graph.traces > traces:
                raise CompileFailed(error) from error
            raise

    def _validate(self) -> dict[str, list[float]]:
        """Each slot's validation loss and metrics, compiled while the metrics can be traced,
        eagerly after."""
        graph = self.graph
        if self.mode is not Mode.EAGER and not graph.eager_validation:
            try:
                return self.stack.validate(graph.validate[self.mode])
            except Exception:
                # A metric that cannot be traced is measured eagerly from now on.
                graph.eager_validation = True
        return one_by_one(self.stack, graph.validate[Mode.EAGER])

    def _evaluate(
        self, slots: list[int | None], logs: list[_Log], done: int, objective: str
    ) -> None:
        values = self._validate()
        for slot, member in enumerate(slots):
            if member is None or logs[member].ended:
                continue
            log = logs[member]
            metrics = {name: column[slot] for name, column in values.items()}
            if not math.isfinite(metrics["val_loss"]):
                reason = f"validation loss became {metrics['val_loss']} at step {done}"
                self._end(log, Outcome.DIVERGED, reason, slot, objective)
                continue
            log.evals.append({"step": done, **metrics})
            on_eval = self.members[member].on_eval
            try:
                pruned = on_eval is not None and on_eval(done, metrics[objective])
            except Exception as error:
                self._end(log, Outcome.FAILED, failure(error), slot, objective)
                continue
            if pruned:
                self._end(log, Outcome.PRUNED, f"pruned at step {done}", slot, objective)

    def _end(
        self, log: _Log, outcome: Outcome, reason: str | None, slot: int, objective: str
    ) -> None:
        last = log.evals[-1] if log.evals else {}
        weights, opt_state = self.stack.slot(slot)
        tested = self.test and outcome is Outcome.COMPLETE and self.task.test is not None
        log.ended = TrialResult(
            outcome=outcome,
            value=last.get(objective),
            metrics={k: v for k, v in last.items() if k != "step"},
            steps=len(log.losses),
            duration_s=time.perf_counter() - self.started,
            step_time_s=statistics.median(self.step_times) if self.step_times else None,
            compiled=self.mode is not Mode.EAGER,
            reason=reason,
            losses=log.losses,
            lrs=log.lrs,
            evals=log.evals,
            test_metrics=self._tested(weights, opt_state) if tested else {},
            weights=weights,
        )

    def _end_all(
        self,
        logs: list[_Log],
        outcome: Outcome,
        reason: str | None,
        slots: list[int | None],
        objective: str,
    ) -> None:
        for slot, member in enumerate(slots):
            if member is not None and logs[member].ended is None:
                self._end(logs[member], outcome, reason, slot, objective)

    def _tested(self, weights: Any, opt_state: Any) -> dict[str, float]:
        """The loss and metrics on the task's test set of a model trained to ``weights``, at
        the weights its optimizer evaluates at."""
        model = self.graph.model
        model.update(weights)
        model.eval()
        eval_weights = self.plans[0].optimizer.eval_weights
        if eval_weights is not None:
            model.update(eval_weights(opt_state, model.trainable_parameters()))
        x, y = self.task.test()
        values = {"test_loss": self.task.loss(model, x, y)}
        metrics = self.task.metrics.items()
        values.update({f"test_{name}": metric.fn(model, x, y) for name, metric in metrics})
        mx.eval(values)
        return {name: value.item() for name, value in values.items()}
