"""`tuner schedule` prints what MLX's own schedule functions give, step by step."""

import json
import math

import mlx.core as mx
import mlx.optimizers as optim
import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.errors import BadInput
from tuner.lr import schedule_params, schedule_rates, warmup_steps
from tuner.plugins import load_plugins

LR, STEPS = 0.1, 60


def mlx_reference(name, steps):
    """MLX's function for each built-in schedule, at the settings the test passes."""
    return {
        "constant": lambda s: mx.array(LR),
        "linear": optim.linear_schedule(0.0, LR, steps),
        "cosine": optim.cosine_decay(LR, steps, 0.1 * LR),
        "exponential": lambda s: optim.exponential_decay(LR, 0.99)(mx.minimum(s, steps)),
        "step": lambda s: optim.step_decay(LR, 0.5, math.ceil(steps / 3))(mx.minimum(s, steps - 1)),
    }[name]


SETTINGS = {
    "constant": [],
    "linear": ["start_factor=0", "end_factor=1"],
    "cosine": ["end_factor=0.1"],
    "exponential": ["decay_rate=0.99"],
    "step": ["decay_rate=0.5", "drops=2"],
}


def schedule_json(name, *args):
    sets = [arg for setting in SETTINGS[name] for arg in ("--set", setting)]
    result = CliRunner().invoke(
        cli,
        [
            "schedule",
            name,
            "--lr",
            str(LR),
            "--steps",
            str(STEPS),
            *sets,
            *args,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("warmup", [0, 10])
def test_json_matches_mlx_at_every_step(name, warmup):
    reference = mlx_reference(name, STEPS - warmup)
    if warmup:
        ramp = optim.linear_schedule(0.0, LR, warmup)
        reference = optim.join_schedules([ramp, reference], [warmup])

    points = schedule_json(name, "--warmup", str(warmup))

    assert [p["step"] for p in points] == list(range(STEPS + 1))
    for point in points:
        expected = reference(mx.array(point["step"], mx.uint64)).item()
        assert point["lr"] == pytest.approx(expected, rel=1e-6, abs=1e-12), point


def test_the_table_shows_a_sparkline_and_the_settings():
    result = CliRunner().invoke(cli, ["schedule", "cosine", "--lr", "0.1", "--steps", "100"])

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "cosine end_factor=0.05 lr=0.1 steps=100 warmup=0 steps (0%)"
    assert lines[1][0] == "█" and lines[1][-1] == "▁"
    assert lines[4].split() == ["0", "0.1"]
    assert lines[-1].split() == ["100", "0.005"]


@pytest.mark.parametrize(("warmup", "steps"), [("5%", 3), ("0.05", 3), ("12.5%", 8), ("0.125", 8)])
def test_a_warmup_fraction_is_counted_in_steps_as_a_search_counts_it(warmup, steps):
    assert schedule_json("cosine", "--warmup", warmup) == schedule_json(
        "cosine", "--warmup", str(steps)
    )


@pytest.mark.parametrize(
    ("warmup", "header"),
    [
        ("15", "warmup=15 steps (5%)"),
        ("5%", "warmup=15 steps (5%)"),
        ("0.1", "warmup=30 steps (10%)"),
    ],
)
def test_the_header_gives_the_warmup_in_steps_and_as_a_part_of_the_run(warmup, header):
    args = ["schedule", "linear", "--lr", "0.1", "--steps", "300", "--warmup", warmup]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].endswith(f"lr=0.1 steps=300 {header}")


def test_the_table_shows_about_20_evenly_spaced_steps_the_warmup_and_the_last():
    args = ["schedule", "cosine", "--lr", "0.1", "--steps", "37", "--warmup", "10%"]
    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 0, result.output
    steps = [int(line.split()[0]) for line in result.stdout.splitlines()[4:]]
    assert steps == sorted({round(i * 37 / 20) for i in range(21)} | {4, 37})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cosin"], "unknown schedule 'cosin'; did you mean 'cosine'?"),
        (["cosine", "--set", "end=0.1"], "'cosine' has no parameter 'end'; did you mean"),
        (["cosine", "--set", "end_factor=0..0.1"], "give one value, not a range or a list"),
        (["cosine", "--set", "end_factor"], "expected KEY=VALUE"),
        (["cosine", "--set", "end_factor=x"], "'x' is not a finite number"),
        (["step", "--set", "drops=-1"], "schedule 'step' cannot run with decay_rate="),
        (["constant", "--lr", "nan"], "--lr must be a number above 0, not nan"),
        (["cosine", "--warmup", "100"], "--warmup 100 must be below --steps 100"),
        (["cosine", "--warmup", "0.999"], "--warmup 0.999 (100 steps) must be below --steps 100"),
        (["cosine", "--warmup", "-1"], "Invalid value for '--warmup': '-1' is not a number of"),
        (["cosine", "--warmup", "1.5"], "'1.5' is not a number of steps (10), a percentage"),
        (["cosine", "--warmup", "100%"], "'100%' is not a number of steps"),
        (["cosine", "--warmup", "abc"], "'abc' is not a number of steps"),
        (["cosine", "--warmup", "-5%"], "'-5%' is not a number of steps"),
        (["cosine", "--warmup", "nan"], "'nan' is not a number of steps"),
        (["constant", "--set", "a=1"], "'constant' has no parameters"),
        (["wsd", "--set", "cooldown=1.5"], "--set cooldown: 1.5 is outside 0..1, the values"),
        (["wsd", "--set", "cooldown=-0.2"], "--set cooldown: -0.2 is outside 0..1, the values"),
        (["wsd", "--set", "shape=cube"], "no cooldown shape 'cube'; the shapes are sqrt, linear"),
    ],
)
def test_bad_input_is_one_line_with_exit_2(args, message):
    name, *rest = args
    result = CliRunner().invoke(cli, ["schedule", name, "--lr", "0.1", "--steps", "100", *rest])

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_schedule_rates_gives_the_warmup_then_the_schedule_at_every_step():
    spec = load_plugins().get("schedule", "linear")
    params = schedule_params(spec, ["start_factor=1", "end_factor=0"])

    rates = schedule_rates(spec, 0.1, 10, warmup_steps(0.2, 10), params)

    assert rates == pytest.approx([0.0, 0.05, *(0.1 * (1 - k / 8) for k in range(9))])


def test_schedule_params_sets_the_named_and_takes_the_middle_of_the_others():
    spec = load_plugins().get("schedule", "linear")

    assert schedule_params(spec, ["end_factor=0.5"]) == {
        "start_factor": spec.space["start_factor"].midpoint(),
        "end_factor": 0.5,
    }
    with pytest.raises(BadInput, match="'linear' has no parameter 'end'"):
        schedule_params(spec, ["end=0"])
