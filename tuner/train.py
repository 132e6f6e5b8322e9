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
from typing import Any, Protocol

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_map

from tuner.graphs import CompileFailed, Graph, GraphCache, Mode, TrialPlan
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


@dataclass
class Member:
    """One trial of a population: its schedule and settings, its seed, and what it reports at
    each eval: ``on_eval(step, value)`` returning True prunes it, and what it raises fails this
    member only."""

    schedule: ScheduleSpec
    sample: Sample
    seed: int
    on_eval: Callable[[int, float], bool] | None = None


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


def _stack(trees: Sequence[Any]) -> Any:
    return tree_map(lambda *leaves: mx.stack(leaves), trees[0], *trees[1:])


@dataclass
class _Log:
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    ended: TrialResult | None = None


@dataclass
class _Training:
    """One population's run in one mode: its members' stacked arrays, and which member each
    slot of the stack holds."""

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
        models = []
        for member in self.members:
            mx.random.seed(member.seed)
            np.random.seed(member.seed)
            models.append(self.task.model())
        if self.graph.model is None:
            self.graph.model = models[0]
        states = []
        for plan, model in zip(self.plans, models, strict=True):
            # Built eagerly, so that the compiled step always sees one tree structure.
            initial = plan.build_optimizer(plan.hp)
            initial.init(model.trainable_parameters())
            states.append(initial.state)
        x, y = self.task.train
        arrays = {
            "params": _stack([model.parameters() for model in models]),
            "opt_state": _stack(states),
            "hp": _stack([plan.hp for plan in self.plans]),
            "order": mx.stack(
                [batch_order(x.shape[0], steps, batch_size, m.seed) for m in self.members]
            ),
        }
        # The member each slot of the stack holds; None where a slot copies another's.
        slots: list[int | None] = list(range(len(self.members)))
        logs = [_Log() for _ in self.members]
        for index in range(steps):
            if self.stop.is_set():
                reason = f"interrupted at step {index}"
                self._end_all(logs, Outcome.INTERRUPTED, reason, arrays, slots, objective)
                break
            tick = time.perf_counter()
            batch = arrays["order"][:, index]
            loss, lr, params, opt_state = self._step(
                arrays["params"], arrays["opt_state"], arrays["hp"], x[batch], y[batch]
            )
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
                    self._end(log, Outcome.DIVERGED, diverged, arrays, slot, objective)
            if on_step is not None:
                on_step(done)
            if done % eval_every == 0 or done == steps:
                self._evaluate(arrays, slots, logs, done, objective)
            if all(log.ended for log in logs):
                break
            if any(member is not None and logs[member].ended for member in slots):
                slots = _reslot(arrays, slots, logs)
        self._end_all(logs, Outcome.COMPLETE, None, arrays, slots, objective)
        return [log.ended for log in logs]

    def _step(self, *args: Any) -> Any:
        """The graph's step over the stacks ``args``, evaluated; a failure while MLX traces it
        is the compiler's."""
        traces = self.graph.traces
        try:
            out = _over(self.graph.step[self.mode], args, self.mode is Mode.TOGETHER)
            mx.eval(out)
        except Exception as error:
            if self.graph.traces > traces:
                raise CompileFailed(error) from error
            raise
        return out

    def _validate(self, arrays: dict[str, Any]) -> dict[str, list[float]]:
        """Each slot's validation loss and metrics, compiled while the metrics can be traced,
        eagerly after."""
        graph, args = self.graph, (arrays["params"], arrays["opt_state"])
        values = None
        if self.mode is not Mode.EAGER and not graph.eager_validation:
            try:
                values = _over(graph.validate[self.mode], args, self.mode is Mode.TOGETHER)
                mx.eval(values)
            except Exception:
                # A metric that cannot be traced is measured eagerly from now on.
                graph.eager_validation = True
                values = None
        if values is None:
            values = _over(graph.validate[Mode.EAGER], args, False)
            mx.eval(values)
        return {name: value.tolist() for name, value in values.items()}

    def _evaluate(
        self,
        arrays: dict[str, Any],
        slots: list[int | None],
        logs: list[_Log],
        done: int,
        objective: str,
    ) -> None:
        values = self._validate(arrays)
        for slot, member in enumerate(slots):
            if member is None or logs[member].ended:
                continue
            log = logs[member]
            metrics = {name: column[slot] for name, column in values.items()}
            if not math.isfinite(metrics["val_loss"]):
                reason = f"validation loss became {metrics['val_loss']} at step {done}"
                self._end(log, Outcome.DIVERGED, reason, arrays, slot, objective)
                continue
            log.evals.append({"step": done, **metrics})
            on_eval = self.members[member].on_eval
            try:
                pruned = on_eval is not None and on_eval(done, metrics[objective])
            except Exception as error:
                self._end(log, Outcome.FAILED, failure(error), arrays, slot, objective)
                continue
            if pruned:
                self._end(log, Outcome.PRUNED, f"pruned at step {done}", arrays, slot, objective)

    def _end(
        self,
        log: _Log,
        outcome: Outcome,
        reason: str | None,
        arrays: dict[str, Any],
        slot: int,
        objective: str,
    ) -> None:
        last = log.evals[-1] if log.evals else {}
        weights = tree_map(lambda a: a[slot], arrays["params"])
        tested = self.test and outcome is Outcome.COMPLETE and self.task.test is not None
        log.ended = TrialResult(
            outcome=outcome,
            value=last.get(objective),
            metrics={k: v for k, v in last.items() if k != "step"},
            steps=len(log.losses),
            wall_time_s=time.perf_counter() - self.started,
            step_time_s=statistics.median(self.step_times) if self.step_times else None,
            compiled=self.mode is not Mode.EAGER,
            reason=reason,
            losses=log.losses,
            lrs=log.lrs,
            evals=log.evals,
            test_metrics=self._tested(weights, arrays, slot) if tested else {},
            weights=weights,
        )

    def _end_all(
        self,
        logs: list[_Log],
        outcome: Outcome,
        reason: str | None,
        arrays: dict[str, Any],
        slots: list[int | None],
        objective: str,
    ) -> None:
        for slot, member in enumerate(slots):
            if member is not None and logs[member].ended is None:
                self._end(logs[member], outcome, reason, arrays, slot, objective)

    def _tested(self, weights: Any, arrays: dict[str, Any], slot: int) -> dict[str, float]:
        """The loss and metrics on the task's test set of the model trained in ``slot``, at
        the weights its optimizer evaluates at."""
        model = self.graph.model
        model.update(weights)
        model.eval()
        eval_weights = self.plans[0].optimizer.eval_weights
        if eval_weights is not None:
            opt_state = tree_map(lambda a: a[slot], arrays["opt_state"])
            model.update(eval_weights(opt_state, model.trainable_parameters()))
        x, y = self.task.test()
        values = {"test_loss": self.task.loss(model, x, y)}
        metrics = self.task.metrics.items()
        values.update({f"test_{name}": metric.fn(model, x, y) for name, metric in metrics})
        mx.eval(values)
        return {name: value.item() for name, value in values.items()}


def _over(fn: Callable[..., Any], stacks: tuple[Any, ...], together: bool) -> Any:
    """``fn`` over ``stacks``, trees of arrays stacked on their first axis: at once where
    ``together``, else one slot after another."""
    size = tree_flatten(stacks)[0][1].shape[0]
    if together or size == 1:
        return fn(*stacks)
    each = [fn(*tree_map(lambda a, s=s: a[s : s + 1], stacks)) for s in range(size)]
    return tree_map(lambda *leaves: mx.concatenate(leaves), *each)


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
