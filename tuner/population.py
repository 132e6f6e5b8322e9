"""Trials of one graph key trained together: a population.

Their weights, optimizer states and continuous hyperparameters are stacked on a new leading
axis, and one member's step, ``mx.vmap``'d over that axis and compiled, trains them all at once.
A short trial of a small model leaves the hardware idle between its tiny matrix products; K
members in one step fill it (``benchmarks/population.py`` has the figures).

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
from dataclasses import dataclass, field, replace
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_map

from tuner.graphs import CompileFailed, GraphCache, TrialPlan, validation
from tuner.results import Outcome
from tuner.space import Sample
from tuner.specs import OptimizerSpec, ScheduleSpec, Task
from tuner.train import (
    Stop,
    TrialResult,
    batch_order,
    check_run,
    divergence,
    failure,
    run_trial,
)


@dataclass
class Member:
    """One trial of a population: its settings, its seed, and what it reports at each eval
    (as :func:`~tuner.train.run_trial`'s ``on_eval``; what that raises fails this member only)."""

    sample: Sample
    seed: int
    on_eval: Callable[[int, float], bool] | None = None


@dataclass
class Stacked:
    """The population step and validation of one graph key, compiled once and reused.

    ``traces`` counts the times MLX traced the step, once for each stack size; ``fallback``
    says why the key's members train one at a time, when they do.
    """

    step: Callable[..., Any]
    validate: Callable[..., Any] | None
    validate_alone: Callable[..., Any]
    traces: int = 0
    fallback: str | None = None


class Populations(dict[tuple[Any, ...], Stacked]):
    """The population graphs of one search, by graph key, beside the graphs of its trials
    trained alone (``alone``), which a member uses when its key cannot be vectorised."""

    def __init__(self) -> None:
        super().__init__()
        self.alone = GraphCache()


def run_population(
    task: Task,
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec,
    members: Sequence[Member],
    *,
    steps: int,
    batch_size: int,
    eval_every: int,
    graphs: Populations,
    objective: str = "val_loss",
    on_build: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    stop: Stop | None = None,
) -> list[TrialResult]:
    """Train ``members``, which share a graph key, together; return their results in order.

    The arguments are :func:`~tuner.train.run_trial`'s, ``on_eval`` being each member's own.
    ``on_step(done)`` is called after each step of the population. A lone member trains as
    :func:`~tuner.train.run_trial` trains it; so do the members of a key whose step cannot be
    vectorised or compiled, one after another, each result saying why.
    """
    started = time.perf_counter()
    check_run(task, steps, batch_size, eval_every, objective)
    stop = stop or threading.Event()
    plans = [TrialPlan.of(optimizer, schedule, m.sample, steps) for m in members]
    key = plans[0].key(task, batch_size)
    if any(plan.key(task, batch_size) != key for plan in plans):
        raise ValueError("a population's members must share a graph key")
    stacked = graphs.get(key)
    if len(members) > 1 and (stacked is None or stacked.fallback is None):
        if stacked is None:
            stacked = graphs[key] = _build(task, plans[0])
        if stacked.traces == 0 and on_build is not None:
            on_build()
        train = _Training(task, plans, members, batch_size, eval_every, objective, stop, started)
        try:
            return train.run(stacked, on_step)
        except CompileFailed as error:
            if stop.is_set():
                del graphs[key]
            else:
                stacked.fallback = f"trained alone, as its population failed to: {error.explain()}"
    note = None if stacked is None else stacked.fallback
    results = []
    for member in members:
        result = run_trial(
            task,
            optimizer,
            schedule,
            member.sample,
            steps=steps,
            batch_size=batch_size,
            eval_every=eval_every,
            seed=member.seed,
            graphs=graphs.alone,
            objective=objective,
            on_eval=member.on_eval,
            on_build=on_build,
            on_step=on_step,
            stop=stop,
        )
        results.append(
            replace(result, reason="; ".join(r for r in (result.reason, note) if r) or None)
        )
    return results


def _stack(trees: Sequence[Any]) -> Any:
    return tree_map(lambda *leaves: mx.stack(leaves), trees[0], *trees[1:])


def _build(task: Task, plan: TrialPlan) -> Stacked:
    trainer = task.model()
    evaluator = task.model()
    evaluator.eval()
    loss_and_grad = nn.value_and_grad(trainer, task.loss)
    eval_weights = plan.optimizer.eval_weights

    def member_step(params: Any, opt_state: Any, hp: Any, x: mx.array, y: mx.array) -> Any:
        # Runs only while MLX traces it, once a stack size: the model and optimizer here
        # record one member's arithmetic on tracers, which vmap widens to the stack.
        stacked.traces += 1
        trainer.update(params)
        optimizer = plan.build_optimizer(hp)
        optimizer.state = opt_state
        loss, grads = loss_and_grad(trainer, x, y)
        optimizer.update(trainer, grads)
        return loss, optimizer.learning_rate, trainer.parameters(), optimizer.state

    def member_validate(params: Any, opt_state: Any) -> dict[str, mx.array]:
        evaluator.update(params)
        if eval_weights is not None:
            evaluator.update(eval_weights(opt_state, evaluator.trainable_parameters()))
        return validation(evaluator, task)

    stacked = Stacked(
        step=mx.compile(mx.vmap(member_step)),
        validate=mx.compile(mx.vmap(member_validate)),
        validate_alone=member_validate,
    )
    return stacked


@dataclass
class _Log:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    ended: TrialResult | None = None


@dataclass
class _Training:
    """One population's run: its members' stacked arrays, and which member each slot holds."""

    task: Task
    plans: list[TrialPlan]
    members: Sequence[Member]
    batch_size: int
    eval_every: int
    objective: str
    stop: Stop
    started: float
    step_times: list[float] = field(default_factory=list)

    def run(self, stacked: Stacked, on_step: Callable[[int], None] | None) -> list[TrialResult]:
        models = []
        for member in self.members:
            mx.random.seed(member.seed)
            np.random.seed(member.seed)
            models.append(self.task.model())
        states = []
        for plan, model in zip(self.plans, models, strict=True):
            initial = plan.build_optimizer(plan.hp)
            initial.init(model.trainable_parameters())
            states.append(initial.state)
        x, y = self.task.train
        steps = self.plans[0].steps
        arrays = {
            "params": _stack([model.parameters() for model in models]),
            "opt_state": _stack(states),
            "hp": _stack([plan.hp for plan in self.plans]),
            "order": mx.stack(
                [batch_order(x.shape[0], steps, self.batch_size, m.seed) for m in self.members]
            ),
        }
        # The member each slot of the stack holds; None where a slot copies another's.
        slots: list[int | None] = list(range(len(self.members)))
        logs = [_Log() for _ in self.members]
        for index in range(steps):
            if self.stop.is_set():
                reason = f"interrupted at step {index}"
                self._end_all(logs, Outcome.INTERRUPTED, reason, arrays, slots)
                break
            traces = stacked.traces
            tick = time.perf_counter()
            batch = arrays["order"][:, index]
            try:
                loss, lr, params, opt_state = stacked.step(
                    arrays["params"], arrays["opt_state"], arrays["hp"], x[batch], y[batch]
                )
                mx.eval(loss, lr, params, opt_state)
            except Exception as error:
                if stacked.traces > traces:
                    raise CompileFailed(error) from error
                raise
            arrays["params"], arrays["opt_state"] = params, opt_state
            self.step_times.append((time.perf_counter() - tick) / len(slots))
            done = index + 1
            for slot, (loss_value, lr_value) in enumerate(
                zip(loss.tolist(), lr.tolist(), strict=True)
            ):
                member = slots[slot]
                if member is None:
                    continue
                log = logs[member]
                log.losses.append(loss_value)
                log.lrs.append(lr_value)
                diverged = divergence(log.losses, done)
                if diverged:
                    self._end(log, Outcome.DIVERGED, diverged, _member(arrays, slot))
            if on_step is not None:
                on_step(done)
            if done % self.eval_every == 0 or done == steps:
                self._evaluate(stacked, arrays, slots, logs, done)
            if all(log.ended for log in logs):
                break
            if any(member is not None and logs[member].ended for member in slots):
                slots = _reslot(arrays, slots, logs)
        self._end_all(logs, Outcome.COMPLETE, None, arrays, slots)
        return [log.ended for log in logs]

    def _evaluate(
        self,
        stacked: Stacked,
        arrays: dict[str, Any],
        slots: list[int | None],
        logs: list[_Log],
        done: int,
    ) -> None:
        values = _validate(stacked, arrays["params"], arrays["opt_state"], len(slots))
        for slot, member in enumerate(slots):
            if member is None or logs[member].ended:
                continue
            log = logs[member]
            weights = _member(arrays, slot)
            metrics = {name: column[slot] for name, column in values.items()}
            if not math.isfinite(metrics["val_loss"]):
                reason = f"validation loss became {metrics['val_loss']} at step {done}"
                self._end(log, Outcome.DIVERGED, reason, weights)
                continue
            log.evals.append({"step": done, **metrics})
            on_eval = self.members[member].on_eval
            try:
                pruned = on_eval is not None and on_eval(done, metrics[self.objective])
            except Exception as error:
                self._end(log, Outcome.FAILED, failure(error), weights)
                continue
            if pruned:
                self._end(log, Outcome.PRUNED, f"pruned at step {done}", weights)

    def _end(self, log: _Log, outcome: Outcome, reason: str | None, weights: Any) -> None:
        last = log.evals[-1] if log.evals else {}
        log.ended = TrialResult(
            outcome=outcome,
            value=last.get(self.objective),
            metrics={k: v for k, v in last.items() if k != "step"},
            steps=len(log.losses),
            wall_time_s=time.perf_counter() - self.started,
            step_time_s=statistics.median(self.step_times) if self.step_times else None,
            compiled=True,
            reason=reason,
            losses=log.losses,
            lrs=log.lrs,
            evals=log.evals,
            weights=weights,
        )

    def _end_all(
        self,
        logs: list[_Log],
        outcome: Outcome,
        reason: str | None,
        arrays: dict[str, Any],
        slots: list[int | None],
    ) -> None:
        for slot, member in enumerate(slots):
            if member is not None and logs[member].ended is None:
                self._end(logs[member], outcome, reason, _member(arrays, slot))


def _member(arrays: dict[str, Any], slot: int) -> dict[str, Any]:
    """The weights the stack holds in ``slot``."""
    return tree_map(lambda a: a[slot], arrays["params"])


def _validate(stacked: Stacked, params: Any, opt_state: Any, size: int) -> dict[str, list]:
    """Each slot's validation loss and metrics, vectorised and compiled while the metrics can
    be traced, one slot at a time after."""
    if stacked.validate is not None:
        try:
            values = stacked.validate(params, opt_state)
            mx.eval(values)
            return {name: value.tolist() for name, value in values.items()}
        except Exception:
            stacked.validate = None
    columns: dict[str, list] = {}
    for slot in range(size):
        one = stacked.validate_alone(
            tree_map(lambda a, s=slot: a[s], params), tree_map(lambda a, s=slot: a[s], opt_state)
        )
        mx.eval(one)
        for name, value in one.items():
            columns.setdefault(name, []).append(value.item())
    return columns


def _reslot(arrays: dict[str, Any], slots: list[int | None], logs: list[_Log]) -> list[int | None]:
    """Give the slots of ended members copies of a running one, halving the stack while the
    running members fit in half of it."""
    running = [slot for slot, m in enumerate(slots) if m is not None and not logs[m].ended]
    size = len(slots)
    while size > 1 and -(-size // 2) >= len(running):
        size = -(-size // 2)
    take = running + [running[0]] * (size - len(running))
    if size == len(slots):
        copies = iter(take[len(running) :])
        take = [slot if slot in running else next(copies) for slot in range(size)]
    index = mx.array(take)
    for name in arrays:
        arrays[name] = tree_map(lambda a: a[index], arrays[name])
    kept = set(running)
    seen: set[int] = set()
    moved: list[int | None] = []
    for slot in take:
        moved.append(slots[slot] if slot in kept and slot not in seen else None)
        seen.add(slot)
    return moved
