"""A tuner plugin in one file, loaded with ``--plugin examples/single_file_plugin.py``.

It adds a variant of a built-in optimizer, ``adamw_bc`` (AdamW with the bias correction of the
Adam paper, which MLX leaves off by default), and a ``polynomial`` schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim

from tuner import Float, OptimizerSpec, ScheduleSpec, hookimpl


def adamw_bc(learning_rate: Any, beta1: Any, beta2: Any, weight_decay: Any) -> optim.AdamW:
    optimizer = optim.AdamW(learning_rate, weight_decay=weight_decay, bias_correction=True)
    # Set after construction: AdamW's constructor range-checks betas in Python, and during a
    # search they are traced mx.array values, which a Python comparison cannot read.
    optimizer.betas = [beta1, beta2]
    return optimizer


def polynomial(lr: Any, steps: int, power: Any) -> Callable[[Any], Any]:
    """The peak times (1 - step / steps) ** power, reaching 0 at the end."""

    def schedule(step: Any) -> Any:
        return lr * (1 - mx.minimum(step, steps) / steps) ** power

    return schedule


@hookimpl
def tuner_register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            "adamw_bc",
            build=adamw_bc,
            # Kingma & Ba 2015 and Loshchilov & Hutter 2019.
            space={
                "beta1": Float(0.85, 0.95),
                "beta2": Float(0.95, 0.999),
                "weight_decay": Float(1e-3, 1e-1, log=True),
            },
            description="AdamW with bias-corrected moments (Kingma & Ba 2015)",
            # What `tuner export` prints for this optimizer: each argument's repr is its source.
            code=lambda learning_rate, beta1, beta2, weight_decay: (
                f"optim.AdamW(learning_rate={learning_rate!r}, betas=[{beta1!r}, {beta2!r}], "
                f"weight_decay={weight_decay!r}, bias_correction=True)"
            ),
        )
    )


@hookimpl
def tuner_register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    register(
        ScheduleSpec(
            "polynomial",
            build=polynomial,
            # 1 is a linear decay to zero; DeepLab's "poly" policy uses 0.9 (Chen et al. 2017).
            space={"power": Float(0.5, 2.0)},
            description="a polynomial decay from the peak to zero",
            code=lambda lr, steps, power: (
                f"lambda step: {lr!r} * (1 - mx.minimum(step, {steps!r}) / {steps!r}) ** {power!r}"
            ),
        )
    )
