"""A trial: what it is given (:class:`Member`), what it did (:class:`TrialResult`), and the
rules every trial follows whatever trains it: its checks, its batches, when it has diverged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import mlx.core as mx
import numpy as np

from tuner.results import Outcome
from tuner.space import Sample
from tuner.specs import ScheduleSpec, Task

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
    duration_s: float
    step_time_s: float | None
    compiled: bool
    reason: str | None
    losses: list[float]
    lrs: list[float]
    evals: list[dict[str, float]]
    test_metrics: dict[str, float] = field(default_factory=dict)
    weights: dict[str, Any] | None = None

    @classmethod
    def unrun(cls, outcome: Outcome, reason: str, duration_s: float) -> TrialResult:
        """A trial that ended before it trained: stopped first, or failed to start."""
        return cls(
            outcome=outcome,
            value=None,
            metrics={},
            steps=0,
            duration_s=duration_s,
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
