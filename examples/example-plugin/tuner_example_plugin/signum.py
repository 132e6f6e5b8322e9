"""Signum (Bernstein et al. 2018): step by the sign of a momentum of the gradient.

Written as an ``mlx.optimizers.Optimizer`` subclass, which is all an MLX optimizer needs:
``init_single`` makes one parameter's state and ``apply_single`` updates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim


class Signum(optim.Optimizer):
    """Signum with decoupled weight decay.

    ``momentum`` and ``weight_decay`` may be scalar ``mx.array`` values traced by
    ``mx.compile``, so they are only computed with, never compared in Python.
    """

    def __init__(
        self,
        learning_rate: float | Callable[[mx.array], mx.array],
        momentum: Any = 0.9,
        weight_decay: Any = 0.0,
    ):
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.momentum = momentum
        self.weight_decay = weight_decay

    def init_single(self, parameter: mx.array, state: dict) -> None:
        state["m"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        lr = self.learning_rate.astype(gradient.dtype)
        m = self.momentum * state["m"] + (1 - self.momentum) * gradient
        state["m"] = m
        return (1 - lr * self.weight_decay) * parameter - lr * mx.sign(m)
