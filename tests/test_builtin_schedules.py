"""The built-in schedules are MLX's schedule functions, and they trace with array settings."""

import math

import mlx.core as mx
import mlx.optimizers as optim
import pytest

from tuner import Float, Open
from tuner.lr import make_schedule
from tuner.plugins import BUILTIN, load_plugins

REGISTRY = load_plugins()
BUILTINS = [n for n in REGISTRY.schedules if REGISTRY.plugin_of("schedule", n).source == BUILTIN]
LR = 0.1
STEPS = 100


def wsd_closed_form(lr, steps, cooldown, shape):
    """WSD's rate at step t, in float64: the peak until the cooldown, which lasts
    max(cooldown * steps, 1) steps and ends at 0 at ``steps``, then held there."""
    down = {
        "sqrt": lambda done: 1 - math.sqrt(done),
        "linear": lambda done: 1 - done,
        "cosine": lambda done: (1 + math.cos(math.pi * done)) / 2,
    }[shape]

    def rate(t):
        left = steps - min(t, steps)
        return lr * down(min(max(1 - left / max(cooldown * steps, 1), 0.0), 1.0))

    return rate


# What each built-in should be, written with MLX's functions (WSD, which MLX lacks, in closed
# form): (lr, steps, params) -> schedule.
MLX = {
    "constant": lambda lr, n, p: lambda step: mx.array(lr),
    "linear": lambda lr, n, p: optim.linear_schedule(
        p["start_factor"] * lr, p["end_factor"] * lr, n
    ),
    "cosine": lambda lr, n, p: optim.cosine_decay(lr, n, end=p["end_factor"] * lr),
    "exponential": lambda lr, n, p: optim.exponential_decay(lr, p["decay_rate"]),
    "step": lambda lr, n, p: optim.step_decay(lr, p["decay_rate"], math.ceil(n / (p["drops"] + 1))),
    "wsd": lambda lr, n, p: (
        lambda step: mx.array(wsd_closed_form(lr, n, p["cooldown"], p["shape"])(step.item()))
    ),
}


def midpoints(name):
    return {key: param.midpoint() for key, param in REGISTRY.schedules[name].space.items()}


def values(schedule, steps):
    return [schedule(mx.array(t, dtype=mx.uint64)).item() for t in steps]


def test_every_builtin_schedule_is_checked_here():
    assert set(BUILTINS) == set(MLX)


def test_linear_from_zero_is_mlx_documented_example():
    schedule = make_schedule(
        REGISTRY.schedules["linear"], 0.1, 100, params={"start_factor": 0.0, "end_factor": 1.0}
    )
    optimizer = optim.Adam(learning_rate=schedule)

    assert optimizer.learning_rate.item() == 0.0
    for _ in range(101):
        optimizer.update({}, {})
    assert optimizer.learning_rate.item() == pytest.approx(0.1)


def test_warmup_then_cosine_is_mlx_documented_example():
    schedule = make_schedule(
        REGISTRY.schedules["cosine"], 0.1, steps=210, warmup=10, params={"end_factor": 0.0}
    )
    optimizer = optim.Adam(learning_rate=schedule)

    assert optimizer.learning_rate.item() == 0.0
    for _ in range(12):
        optimizer.update({}, {})
    assert optimizer.learning_rate.item() == pytest.approx(0.0999938, abs=1e-6)


def test_linear_from_one_to_zero_decays_to_zero_and_stays():
    schedule = make_schedule(
        REGISTRY.schedules["linear"], LR, 50, params={"start_factor": 1.0, "end_factor": 0.0}
    )

    expected = [LR * (1 - t / 50) for t in range(51)] + [0.0] * 10
    assert values(schedule, range(61)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("warmup", [0, 10])
@pytest.mark.parametrize("name", BUILTINS)
def test_schedule_is_the_mlx_function_behind_warmup(name, warmup):
    params = midpoints(name)
    expected = MLX[name](LR, STEPS - warmup, params)
    if warmup:
        ramp = optim.linear_schedule(0.0, LR, warmup)
        expected = optim.join_schedules([ramp, expected], [warmup])

    schedule = make_schedule(REGISTRY.schedules[name], LR, STEPS, warmup, params)

    run = range(STEPS)
    assert values(schedule, run) == pytest.approx(values(expected, run), rel=1e-6)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_real_setting_has_limits_at_which_the_rate_stays_between_zero_and_the_peak(name):
    spec = REGISTRY.schedules[name]
    for key, param in spec.space.items():
        if not isinstance(param, Float):
            continue
        assert param.limits is not None, f"{name}.{key} has no limits"
        for edge in (limit for limit in param.limits if not isinstance(limit, Open)):
            schedule = spec.build(LR, STEPS, **{**midpoints(name), key: edge})
            rates = values(schedule, range(STEPS + 1))
            assert all(0.0 <= rate <= LR * (1 + 1e-6) for rate in rates), (key, edge)


@pytest.mark.parametrize("name", BUILTINS)
def test_schedule_holds_its_last_value_after_its_steps(name):
    schedule = REGISTRY.schedules[name].build(LR, STEPS, **midpoints(name))

    last = values(schedule, [STEPS])[0]
    assert values(schedule, range(STEPS, STEPS + 20)) == pytest.approx([last] * 20)


@pytest.mark.parametrize("name", BUILTINS)
def test_schedule_traces_with_array_settings_and_gives_the_same_numbers(name):
    spec = REGISTRY.schedules[name]
    params = midpoints(name)
    floats = [key for key, param in spec.space.items() if isinstance(param, Float)]
    others = {key: value for key, value in params.items() if key not in floats}
    traces = 0

    def rate(step, hp):
        nonlocal traces
        traces += 1
        settings = {**others, **{key: hp[key] for key in floats}}
        return make_schedule(spec, hp["lr"], STEPS, 10, settings)(step)

    compiled = mx.compile(rate)
    for lr, point in [(LR, params), (0.03, {**params, **{k: spec.space[k].low for k in floats}})]:
        hp = {"lr": mx.array(lr), **{key: mx.array(point[key]) for key in floats}}
        traced = [compiled(mx.array(t, dtype=mx.uint64), hp).item() for t in range(STEPS + 5)]
        plain = make_schedule(spec, lr, STEPS, 10, point)
        assert traced == pytest.approx(values(plain, range(STEPS + 5)), rel=1e-5)
    assert traces == 1


@pytest.mark.parametrize("cooldown", [0.2, 0.5, 1.0, 0.0, 0.001])
@pytest.mark.parametrize("shape", ["sqrt", "linear", "cosine"])
def test_wsd_is_its_closed_form_at_every_step(shape, cooldown):
    spec = REGISTRY.schedules["wsd"]
    settings = {"cooldown": cooldown, "shape": shape}

    rates = values(make_schedule(spec, LR, STEPS, params=settings), range(STEPS + 10))

    expected = [wsd_closed_form(LR, STEPS, cooldown, shape)(t) for t in range(STEPS + 10)]
    # Float32 rounding, the peak's ulp wide: 1 - sqrt(done) cancels as done nears 1.
    assert rates == pytest.approx(expected, rel=1e-6, abs=2 * 2**-24 * LR)
    peak = STEPS - max(round(cooldown * STEPS), 1)
    assert rates[: peak + 1] == pytest.approx([LR] * (peak + 1))
    assert rates[STEPS:] == [0.0] * 10


def test_a_sqrt_cooldown_stays_above_linear_until_its_end_and_cosine_starts_slowest():
    def rates(shape):
        settings = {"cooldown": 0.4, "shape": shape}
        return values(
            make_schedule(REGISTRY.schedules["wsd"], LR, STEPS, params=settings), range(61, 100)
        )

    sqrt, linear, cosine = rates("sqrt"), rates("linear"), rates("cosine")

    assert all(s < lin for s, lin in zip(sqrt, linear, strict=True))
    assert cosine[0] > linear[0] and cosine[-1] < linear[-1]
