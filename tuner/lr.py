"""The learning rate of a trial: a plugin's schedule behind an optional linear warmup."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim

from tuner.errors import BadInput, did_you_mean
from tuner.params import Choice, Float, Param
from tuner.space_grammar import parse_param
from tuner.specs import ScheduleSpec


def make_schedule(
    spec: ScheduleSpec, lr: Any, steps: int, warmup: int = 0, params: Mapping[str, Any] = {}
) -> Callable[[Any], Any]:
    """The schedule of ``spec`` at peak ``lr`` over ``steps``, after ``warmup`` steps from 0.

    With warmup the schedule runs over the remaining ``steps - warmup`` and its step counter
    restarts at the boundary, as ``mlx.optimizers.join_schedules`` does.
    """
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must be at least 0 and below the {steps} steps, got {warmup}")
    if warmup == 0:
        return spec.build(lr, steps, **params)
    ramp = optim.linear_schedule(0.0, lr, warmup)
    return optim.join_schedules([ramp, spec.build(lr, steps - warmup, **params)], [warmup])


def warmup_steps(warmup: int | float, steps: int) -> int:
    """``warmup`` in steps: an int is steps, a float is a part of ``steps``, rounded as a search
    rounds it. Raises ``BadInput`` unless it leaves at least one step to the schedule."""
    counted = warmup if isinstance(warmup, int) else round(warmup * steps)
    if counted >= steps:
        given = warmup if isinstance(warmup, int) else f"{warmup:.4g} ({counted} steps)"
        raise BadInput(f"--warmup {given} must be below --steps {steps}")
    return counted


def schedule_params(spec: ScheduleSpec, settings: Sequence[str]) -> dict[str, Any]:
    """The parameters of ``spec`` set by ``KEY=VALUE`` settings, each other one at the middle
    of its range. Raises ``BadInput`` on a setting that is not one value of the space."""
    params = {key: param.midpoint() for key, param in spec.space.items()}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            raise BadInput(f"--set '{setting}': expected KEY=VALUE")
        if key not in spec.space:
            raise BadInput(f"--set '{setting}': {_unknown_param(spec, key)}")
        param = parse_param(value, spec.space[key], f"--set {key}")
        if not isinstance(param, Choice) or len(param.values) != 1:
            raise BadInput(f"--set '{setting}': give one value, not a range or a list")
        params[key] = param.values[0]
    return params


def schedule_variants(spec: ScheduleSpec, settings: Sequence[str]) -> list[dict[str, Any]]:
    """The parameters of ``spec`` for each variant that ``KEY=VALUE`` settings ask for: a key
    given more than once gives a variant for each of its values, several such keys one for
    each combination, in the order given; see :func:`schedule_params`."""
    given: dict[str, list[str]] = {}
    for setting in settings:
        given.setdefault(setting.partition("=")[0], []).append(setting)
    variants = [schedule_params(spec, chosen) for chosen in itertools.product(*given.values())]
    return [v for i, v in enumerate(variants) if v not in variants[:i]]


def as_float32(space: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the value of each ``Float`` of ``space`` as a float32 array: what a
    trial computes with, so that no setting is computed with in float64 where the trial was
    not (Adam's ``1 - beta1``, say)."""
    return {
        k: mx.array(v, dtype=mx.float32) if isinstance(space.get(k), Float) else v
        for k, v in params.items()
    }


def float32_schedule(
    spec: ScheduleSpec, lr: float, steps: int, warmup: int, params: Mapping[str, Any]
) -> Callable[[Any], Any]:
    """:func:`make_schedule` with the peak and the ``Float`` parameters as float32 arrays, as
    a trial computes its rates and as the code ``tuner export`` writes computes them."""
    peak = mx.array(lr, dtype=mx.float32)
    return make_schedule(spec, peak, steps, warmup, as_float32(spec.space, params))


def rate_table(
    spec: ScheduleSpec, lr: float, steps: int, warmup: int, params: Mapping[str, Any]
) -> mx.array:
    """The learning rate at every step from 0 to ``steps``, as a trial's optimizer sees it, in
    one float32 array: what a trial's compiled step reads its rate from.

    The schedule is :func:`float32_schedule`'s, so that exported code computes the same rates
    to the bit. It is called once with every step, as the optimizer's uint64 step counter, and
    step by step when it cannot take them all at once (it branches on the step in Python).
    """
    schedule = float32_schedule(spec, lr, steps, warmup, params)
    counter = mx.arange(steps + 1, dtype=mx.uint64)
    try:
        rates = mx.broadcast_to(mx.array(schedule(counter), dtype=mx.float32), (steps + 1,))
        mx.eval(rates)
    except ValueError:
        rates = mx.stack([mx.array(schedule(step), dtype=mx.float32) for step in counter])
        mx.eval(rates)
    return rates


def schedule_rates(
    spec: ScheduleSpec, lr: float, steps: int, warmup: int, params: Mapping[str, Any]
) -> list[float]:
    """The learning rate at every step from 0 to ``steps``, as a trial's optimizer sees it.

    Raises ``BadInput`` when ``lr`` is not above 0 or the schedule fails with ``params``.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise BadInput(f"--lr must be a number above 0, not {lr}")
    try:
        rates = rate_table(spec, lr, steps, warmup, params)
    except Exception as error:
        settings = ", ".join(f"{k}={v}" for k, v in params.items()) or "no settings"
        raise BadInput(
            f"schedule '{spec.name}' cannot run with {settings}: {type(error).__name__}: {error}"
        ) from None
    return rates.tolist()


def _unknown_param(spec: ScheduleSpec, key: str) -> str:
    if not spec.space:
        return f"'{spec.name}' has no parameters"
    return f"'{spec.name}' has no parameter '{key}'{did_you_mean(key, spec.space)}"
