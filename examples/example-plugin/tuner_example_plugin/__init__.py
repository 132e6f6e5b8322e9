"""An example tuner plugin: the Signum optimizer and an inverse-square-root schedule.

Installed, it is found through its ``tuner`` entry point; tuner then calls the two hooks below
and searches ``signum`` and ``inverse_sqrt`` alongside the built-ins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx

from tuner import Float, OptimizerSpec, ScheduleSpec, hookimpl
from tuner_example_plugin.signum import Signum


def inverse_sqrt(lr: Any, steps: int, timescale: Any) -> Callable[[Any], Any]:
    """The peak divided by sqrt(1 + step / (timescale * steps)), as in Vaswani et al. 2017."""

    def schedule(step: Any) -> Any:
        return lr * mx.rsqrt(1 + mx.minimum(step, steps) / (timescale * steps))

    return schedule


@hookimpl
def tuner_register_optimizers(register: Callable[[OptimizerSpec], None]) -> None:
    register(
        OptimizerSpec(
            "signum",
            build=Signum,
            # Bernstein et al. 2018 use momentum 0.9. Sign steps are as large as Lion's, so the
            # decay is Lion's too (Chen et al. 2023).
            space={"momentum": Float(0.8, 0.99), "weight_decay": Float(1e-2, 1.0, log=True)},
            description="Signum: the sign of a momentum of the gradient (Bernstein et al. 2018)",
        )
    )


@hookimpl
def tuner_register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    register(
        ScheduleSpec(
            "inverse_sqrt",
            build=inverse_sqrt,
            # The fraction of the run after which the rate is down to 1/sqrt(2) of the peak;
            # by the end it is 1/sqrt(1 + 1/timescale): from 10% to 71% of the peak.
            space={"timescale": Float(0.01, 1.0, log=True)},
            description="the peak over the square root of the step (Vaswani et al. 2017)",
            # Signum has no such code, being no mlx.optimizers class: `tuner export` then
            # prints code that builds it with tuner.build_optimizer.
            code=lambda lr, steps, timescale: (
                f"lambda step: {lr!r} * mx.rsqrt(1 + mx.minimum(step, {steps!r}) / "
                f"({timescale!r} * {steps!r}))"
            ),
        )
    )
