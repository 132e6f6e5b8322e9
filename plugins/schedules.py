"""The learning-rate schedules built into tuner, registered as an ordinary plugin.

Each is MLX's own schedule function where one exists, with its values given as factors of the
peak rate, so the shared ``lr`` dimension stays the peak whatever the schedule. The peak and the
``Float`` factors may be traced ``mx.array`` values (see ``tuner_register_schedules``), so they
are only computed with. Every schedule holds its last value after ``steps``. Each spec's
``code`` writes the same arithmetic as MLX code for ``tuner export``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim

from tuner import Choice, Float, Int, Open, ScheduleSpec, hookimpl

Schedule = Callable[[Any], Any]


def constant(lr: Any, steps: int) -> Schedule:
    # An array, not the bare peak: optimizers read the rate as an mx.array.
    return lambda step: mx.array(lr, dtype=mx.float32)


def linear(lr: Any, steps: int, start_factor: Any, end_factor: Any) -> Schedule:
    return optim.linear_schedule(start_factor * lr, end_factor * lr, steps)


def cosine(lr: Any, steps: int, end_factor: Any) -> Schedule:
    return optim.cosine_decay(lr, steps, end=end_factor * lr)


def exponential(lr: Any, steps: int, decay_rate: Any) -> Schedule:
    decay = optim.exponential_decay(lr, decay_rate)
    return lambda step: decay(mx.minimum(step, steps))


# How a WSD cooldown brings the rate down, by the part of the cooldown done, from 0 to 1: each
# as MLX code, for ``tuner export``, and as the function a trial runs, which must agree.
COOLDOWNS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "sqrt": ("1 - mx.sqrt({})", lambda done: 1 - mx.sqrt(done)),
    "linear": ("1 - {}", lambda done: 1 - done),
    "cosine": (
        f"0.5 * (1 + mx.cos({math.pi!r} * {{}}))",
        lambda done: 0.5 * (1 + mx.cos(math.pi * done)),
    ),
}


def wsd(lr: Any, steps: int, cooldown: Any, shape: str) -> Schedule:
    if shape not in COOLDOWNS:
        raise ValueError(f"no cooldown shape '{shape}'; the shapes are {', '.join(COOLDOWNS)}")
    # A cooldown shorter than a step lasts one, so that the rate always reaches 0 at `steps`.
    length = mx.maximum(cooldown * steps, 1)
    down = COOLDOWNS[shape][1]
    return lambda step: lr * down(mx.clip(1 - (steps - mx.minimum(step, steps)) / length, 0.0, 1.0))


def _wsd_code(lr: Any, steps: int, cooldown: Any, shape: str) -> str:
    done = (
        f"mx.clip(1 - ({steps!r} - mx.minimum(step, {steps!r})) / "
        f"mx.maximum({cooldown!r} * {steps!r}, 1), 0.0, 1.0)"
    )
    return f"lambda step: {lr!r} * ({COOLDOWNS[shape][0].format(done)})"


def _interval(steps: int, drops: int) -> int:
    # Equal intervals, so that the run sees exactly `drops` drops: the last one comes before
    # step `steps`, where clamping to `steps - 1` holds the value.
    return math.ceil(steps / (drops + 1))


def staircase(lr: Any, steps: int, decay_rate: Any, drops: int) -> Schedule:
    decay = optim.step_decay(lr, decay_rate, _interval(steps, drops))
    return lambda t: decay(mx.minimum(t, steps - 1))


@hookimpl
def tuner_register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    register(
        ScheduleSpec(
            "constant",
            constant,
            {},
            "the peak rate throughout",
            code=lambda lr, steps: f"lambda step: {lr!r}",
        )
    )
    register(
        ScheduleSpec(
            "linear",
            linear,
            # A decay, as in BERT (Devlin et al. 2019); Defazio et al. 2023 find a linear
            # decay to zero beats cosine. A ramp up is warmup's job.
            {
                "start_factor": Float(0.5, 1.0, limits=(0.0, 1.0)),
                "end_factor": Float(0.0, 0.5, limits=(0.0, 1.0)),
            },
            "a straight line from start_factor to end_factor times the peak",
            code=lambda lr, steps, start_factor, end_factor: (
                f"optim.linear_schedule({start_factor!r} * {lr!r}, {end_factor!r} * {lr!r}, "
                f"{steps!r})"
            ),
        )
    )
    register(
        ScheduleSpec(
            "cosine",
            cosine,
            # To zero in SGDR (Loshchilov & Hutter 2017), to a tenth in Chinchilla (Hoffmann
            # et al. 2022).
            {"end_factor": Float(0.0, 0.1, limits=(0.0, 1.0))},
            "a half cosine from the peak down to end_factor times the peak",
            code=lambda lr, steps, end_factor: (
                f"optim.cosine_decay({lr!r}, {steps!r}, end={end_factor!r} * {lr!r})"
            ),
        )
    )
    register(
        ScheduleSpec(
            "exponential",
            exponential,
            # A per-step factor: after 300 steps the rate is 5% (0.99) to 74% (0.999) of the
            # peak. Longer runs want rates nearer 1: override with --space.
            {"decay_rate": Float(0.99, 0.999, limits=(Open(0.0), 1.0))},
            "the peak times decay_rate to the power of the step",
            code=lambda lr, steps, decay_rate: (
                f"lambda step: optim.exponential_decay({lr!r}, {decay_rate!r})"
                f"(mx.minimum(step, {steps!r}))"
            ),
        )
    )
    register(
        ScheduleSpec(
            "step",
            staircase,
            # Divide by 10 two or three times: ResNet (He et al. 2016), Goyal et al. 2017.
            # The number of drops rather than their spacing, so it fits runs of any length.
            {
                "decay_rate": Float(0.1, 0.5, log=True, limits=(Open(0.0), 1.0)),
                "drops": Int(1, 3),
            },
            "the peak times decay_rate after each of `drops` equal intervals of the run",
            code=lambda lr, steps, decay_rate, drops: (
                f"lambda step: optim.step_decay({lr!r}, {decay_rate!r}, "
                f"{_interval(steps, drops)!r})(mx.minimum(step, {steps - 1!r}))"
            ),
        )
    )
    register(
        ScheduleSpec(
            "wsd",
            wsd,
            {
                # Hägele et al. 2024 (arXiv 2405.18392) match cosine with a cooldown of 20 % of
                # the run, and do better with longer ones; short runs want longer still.
                "cooldown": Float(0.05, 0.5, limits=(0.0, 1.0)),
                # Their best shape is 1 - sqrt, ahead of the linear one; cosine for comparison.
                "shape": Choice(("sqrt", "linear", "cosine")),
            },
            "warmup-stable-decay: the peak until the last `cooldown` part of the run, then "
            "down to 0 in a `shape` cooldown (Hägele et al. 2024)",
            code=_wsd_code,
        )
    )
