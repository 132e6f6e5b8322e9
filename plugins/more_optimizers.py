"""Optimizers that ``mlx.optimizers`` lacks, from MLCommons' AlgoPerf benchmark of training
algorithms: NAdamW, its baseline, and schedule-free AdamW, which won its self-tuning track.

Both are ``mlx.optimizers.Optimizer`` subclasses, registered as any plugin's optimizer is, and
written as ``optimizers.py`` asks: every ``Float`` setting may be a traced ``mx.array``, so
they are only computed with. Neither has an ``mlx.optimizers`` class to carry a winning
setting over to, so ``tuner export`` builds them through ``tuner.build_optimizer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
from mlx.utils import tree_map

from tuner import Choice, Default, Float, Open, OptimizerSpec, hookimpl
from tuner_builtins.optimizers import DECAY, FRACTION

EPS = 1e-8


class NAdamW(optim.Optimizer):
    """AlgoPerf's NAdamW: AdamW whose step takes its momentum one step further (Nesterov, as
    Dozat 2016 put it into Adam), bias-corrected, with the weight decay scaled by the rate.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g²``, then
    ``w = w (1 - lr λ) - lr m̂ / (√v̂ + eps)`` with ``m̂ = (b1 m + (1 - b1) g) / (1 - b1^t)``
    and ``v̂ = v / (1 - b2^t)``: the update of AlgoPerf's baseline (Dahl et al. 2023, their
    ``nadamw`` in ``algorithms/paper_baselines``, after Dozat 2016 and Loshchilov & Hutter 2019).
    """

    def __init__(self, learning_rate: Any, betas: list[Any], weight_decay: Any) -> None:
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.betas = betas
        self.weight_decay = weight_decay

    def init_single(self, parameter: mx.array, state: dict) -> None:
        state["m"] = mx.zeros_like(parameter)
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        lr = self.learning_rate.astype(gradient.dtype)
        b1, b2 = self.betas
        m = b1 * state["m"] + (1 - b1) * gradient
        v = b2 * state["v"] + (1 - b2) * mx.square(gradient)
        state["m"], state["v"] = m, v
        ahead = (b1 * m + (1 - b1) * gradient) / (1 - b1**self.step)
        scale = mx.sqrt(v / (1 - b2**self.step)) + EPS
        return parameter * (1 - lr * self.weight_decay) - lr * ahead / scale


class ScheduleFreeAdamW(optim.Optimizer):
    """Schedule-free AdamW, Algorithm 1 of Defazio et al. 2024 (arXiv 2405.15682).

    It keeps two sequences: ``z``, which takes AdamW's steps, and ``x``, the average of the
    ``z`` so far, each weighted by its step size squared. Gradients are taken at a point
    between them, ``y = (1 - b1) z + b1 x``, which is what the model's weights hold while it
    trains; the model is evaluated at ``x``. At step ``t``, with the rate ``lr_t``:
    ``γ = lr_t √(1 - b2^t)``, ``v = b2 v + (1 - b2) g²``,
    ``z = z - γ (g / (√v + eps) + λ y)``, ``c = γ² / Σ γ_i²``, ``x = (1 - c) x + c z``.

    The rate is used as given, so a warmup belongs to the schedule (tuner's ``warmup``), and
    the schedule is meant to be constant after it, though any may be searched.
    """

    def __init__(self, learning_rate: Any, betas: list[Any], weight_decay: Any) -> None:
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.betas = betas
        self.weight_decay = weight_decay
        # The sum of the squared step sizes so far, which weighs each z into the average x.
        self.state["weight_sum"] = mx.array(0.0)

    def init_single(self, parameter: mx.array, state: dict) -> None:
        state["z"] = parameter
        state["x"] = parameter
        state["v"] = mx.zeros_like(parameter)

    def _gamma(self) -> mx.array:
        return self.learning_rate * mx.sqrt(1 - self.betas[1] ** self.step)

    def apply_gradients(self, gradients: dict, parameters: dict) -> dict:
        if not self._initialized:
            # MLX would initialise from the gradients, which serve it for their shapes; z and
            # x start at the weights.
            self.init(tree_map(lambda _, weight: weight, gradients, parameters))
        updated = super().apply_gradients(gradients, parameters)
        # After every weight has read the sum of the steps before this one.
        self.state["weight_sum"] = self.state["weight_sum"] + self._gamma() ** 2
        return updated

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        b1, b2 = self.betas
        gamma = self._gamma()
        total = self.state["weight_sum"] + gamma**2
        # Under a warmup from 0 the first steps have no size, and nothing to average yet.
        c = mx.where(total > 0, gamma**2 / total, 0.0).astype(gradient.dtype)
        gamma = gamma.astype(gradient.dtype)
        v = b2 * state["v"] + (1 - b2) * mx.square(gradient)
        z = state["z"] - gamma * (gradient / (mx.sqrt(v) + EPS) + self.weight_decay * parameter)
        x = (1 - c) * state["x"] + c * z
        state["v"], state["z"], state["x"] = v, z, x
        return (1 - b1) * z + b1 * x


def averaged_weights(state: dict, parameters: dict) -> dict:
    """Schedule-free AdamW's ``x`` of every weight: the weights to evaluate and save."""
    return tree_map(lambda _, own: own["x"], parameters, state)


@hookimpl
def tuner_register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            "nadamw",
            defaults=(
                Default(
                    1.75e-3,
                    {"one_minus_beta1": 0.0673, "beta2": 0.999, "weight_decay": 0.0812},
                    "cosine",
                    {"end_factor": 0.0},
                    warmup=0.05,
                    source="AlgoPerf's NAdamW baseline, with its search space's beta2 and warmup",
                ),
            ),
            build=lambda learning_rate, one_minus_beta1, beta2, weight_decay: NAdamW(
                learning_rate, [1 - one_minus_beta1, beta2], weight_decay
            ),
            # AlgoPerf's NAdamW search space (Dahl et al. 2023; tuning_search_space.json of
            # algorithms/paper_baselines/nadamw in mlcommons/algorithmic-efficiency): 1 - beta1
            # 4e-3..0.1 (log), beta2 0.999, weight decay 5e-3..1 (log). Its rate, 1e-4..1e-2
            # (log), and its 5 % warmup are the shared lr and warmup: `--space
            # lr=1e-4..1e-2:log --space warmup=0.05` gives its whole space.
            space={
                # beta1 stays below 1, as its bias correction divides by 1 - beta1^t.
                "one_minus_beta1": Float(4e-3, 0.1, log=True, limits=(Open(0.0), 1.0)),
                "beta2": Choice((0.999,), limits=FRACTION),
                "weight_decay": Float(5e-3, 1.0, log=True, limits=DECAY),
            },
            description="NAdamW: AdamW with Nesterov momentum, AlgoPerf's baseline "
            "(Dozat 2016; Dahl et al. 2023)",
        )
    )
    register(
        OptimizerSpec(
            "schedule_free_adamw",
            defaults=(
                Default(
                    2.5e-3,
                    {"beta1": 0.9, "beta2": 0.9955, "weight_decay": 0.0812},
                    "constant",
                    warmup=0.05,
                    source="Defazio et al. 2024's AlgoPerf entry, with a 5 % warmup for its 2 %",
                ),
            ),
            build=lambda learning_rate, beta1, beta2, weight_decay: ScheduleFreeAdamW(
                learning_rate, [beta1, beta2], weight_decay
            ),
            space={
                # Defazio et al. 2024 use 0.9, and 0.95 to 0.98 for the longest runs; at 1 the
                # gradient is taken at the average x, their primal averaging.
                "beta1": Float(0.85, 0.98, limits=(0.0, 1.0)),
                # Adam's range (optimizers.BETA2): their AlgoPerf entry used 0.9955. At 1 the
                # step size, lr √(1 - beta2^t), is 0.
                "beta2": Float(0.95, 0.999, limits=FRACTION),
                # Decay at y scaled by the step size, as AdamW's by the rate; their AlgoPerf
                # entry used 0.08.
                "weight_decay": Float(1e-3, 0.3, log=True, limits=DECAY),
            },
            description="Schedule-free AdamW: no decay schedule; evaluated at the average of "
            "its iterates (Defazio et al. 2024)",
            eval_weights=averaged_weights,
        )
    )
