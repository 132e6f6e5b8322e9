"""The --space grammar and the conditional search space."""

import math

import optuna
import pytest

from tuner import Choice, Float, Int, Open
from tuner.errors import BadInput
from tuner.space import build_space

OPTIMIZERS = {
    "adamw": {
        "weight_decay": Float(1e-5, 1e-1, log=True, limits=(Open(0.0), math.inf)),
        "b1": Float(0.8, 0.95, limits=(0.0, Open(1.0))),
        "beta2": Choice([0.999], limits=(0.0, Open(1.0))),
    },
    "sgd": {"momentum": Float(0.0, 0.99), "nesterov": Choice([True, False])},
    "muon": {"ns_steps": Int(3, 7)},
}
SCHEDULES = {
    "constant": {},
    "cosine": {"end_factor": Float(0.0, 0.2)},
    "wsd": {"cooldown": Float(0.05, 0.5, limits=(0.0, 1.0))},
}


def space(*overrides):
    return build_space(OPTIMIZERS, SCHEDULES, overrides)


def test_the_grammar_of_the_issue():
    s = space(
        "lr=1e-4..1e-1:log",
        "adamw.weight_decay=1e-6..1e-2:log",
        "sgd.nesterov=true,false",
        "sgd.momentum=0.9",
        "muon.ns_steps=4..6",
        "warmup=0,0.2",
    )

    assert s.shared["lr"] == Float(1e-4, 1e-1, log=True)
    assert s.optimizers["adamw"]["weight_decay"] == Float(1e-6, 1e-2, log=True)
    assert s.optimizers["sgd"]["nesterov"] == Choice([True, False])
    assert s.optimizers["sgd"]["momentum"] == Choice([0.9])
    assert s.optimizers["muon"]["ns_steps"] == Int(4, 6)
    assert s.shared["warmup"] == Choice([0, 0.2])


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "adamm.weight_decay=0.1",
            "'adamm' is not a chosen optimizer or schedule; did you mean 'adamw'?",
        ),
        (
            "adamw.weight_decy=0.1",
            "'adamw' has no parameter 'weight_decy'; did you mean 'weight_decay'?",
        ),
        ("lrr=0.1", "unknown shared parameter 'lrr'; did you mean 'lr'?"),
        ("lr=1e-1..1e-4", "low must be below high, got 0.1..0.0001"),
        ("lr=0.1..0.1", "low must be below high"),
        ("lr=0..1e-1:log", "a log range must start above 0, got 0.0..0.1"),
        ("lr=abc..1", "range 'abc..1' needs two numbers, like 0.0001..1:log"),
        ("adamw.b1=fast", "'fast' is not a finite number"),
        ("lr=1e-4..inf:log", "Float bounds must be finite floats, not inf"),
        ("lr=nan", "nan is not a finite number"),
        ("lr=-1", "a learning rate must be above 0"),
        ("lr=0..1", "a learning rate must be above 0"),
        ("warmup=1", "warmup is a fraction of the steps, at least 0 and below 1"),
        ("warmup=-0.1,0.05", "warmup is a fraction of the steps"),
        ("sgd.nesterov=", "empty value; give a range like true,false or a value"),
        ("sgd.nesterov=,", "empty value"),
        ("sgd.nesterov=0..1", "is a choice of true,false"),
        ("muon.ns_steps=3.5..6", "needs two integers"),
        ("muon.ns_steps=4.5", "4.5 is not an integer"),
        ("lr=1e-4..1e-1:lin", "unknown range flag ':lin'"),
        ("constant.x=1", "'constant' has no parameter 'x'; it has no parameters"),
        ("nothing", "expected NAME=VALUE"),
        ("wsd.cooldown=0.5..1.5", "--space wsd.cooldown: 1.5 is outside 0..1, the values it can"),
        ("wsd.cooldown=-1..0.5", "--space wsd.cooldown: -1 is outside 0..1"),
        ("wsd.cooldown=0.1,2", "--space wsd.cooldown: 2 is outside 0..1"),
        ("adamw.b1=0.9..1", "--space adamw.b1: 1 is outside [0, 1), the values it can take"),
        ("adamw.weight_decay=-1e-3", "-0.001 is outside (0, inf), the values it can take"),
        ("adamw.weight_decay=0..0.1", "0 is outside (0, inf), the values it can take"),
        ("adamw.beta2=2", "--space adamw.beta2: 2 is outside [0, 1), the values it can take"),
    ],
)
def test_bad_overrides_say_what_to_do(expr, message):
    with pytest.raises(BadInput) as raised:
        space(expr)

    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_sampling_is_conditional_on_the_optimizer_and_schedule():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    s = space("sgd.momentum=0.9")
    samples = []
    for _ in range(30):
        trial = study.ask()
        samples.append(s.sample(trial))
        study.tell(trial, 0.0)

    for sample, trial in zip(samples, study.trials, strict=True):
        assert set(sample.optimizer_params) == set(OPTIMIZERS[sample.optimizer])
        assert set(sample.schedule_params) == set(SCHEDULES[sample.schedule])
        own = {k for k in trial.params if "." in k}
        assert own == {f"{sample.optimizer}.{k}" for k in sample.optimizer_params} | {
            f"{sample.schedule}.{k}" for k in sample.schedule_params
        }
        assert 1e-4 <= sample.lr <= 1.0
        if sample.optimizer == "sgd":
            assert sample.optimizer_params["momentum"] == 0.9
    assert {s.optimizer for s in samples} == set(OPTIMIZERS)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Float(1.0, 0.5), "low must be below high"),
        (lambda: Float(0.0, 1.0, log=True), "a log range must start above 0"),
        (lambda: Int(1.5, 3), "Int bounds must be finite ints"),
        (lambda: Choice([]), "a choice needs at least one value"),
        (lambda: Choice([[1]]), "choice values must be bool, int, float or str"),
        (lambda: Float(0.1, 0.5, limits=(0.2, 1.0)), r"limits \(0.2, 1.0\) must be two numbers"),
        (lambda: Float(0.1, 0.5, limits=(0.0, float("nan"))), "limits .* must be two numbers"),
        (lambda: Float(0.5, 1.0, limits=(0.0, Open(1.0))), "limits .* that hold 0.5, 1"),
        (lambda: Choice([0.9, 1.0], limits=(0.0, Open(1.0))), "limits .* that hold 0.9, 1"),
        (lambda: Choice(["a"], limits=(0.0, 1.0)), "only a choice of numbers has limits"),
    ],
)
def test_a_malformed_parameter_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_limits_let_a_range_widen_up_to_them():
    s = space("wsd.cooldown=0..1", "cosine.end_factor=0..0.9")

    assert s.schedules["wsd"]["cooldown"] == Float(0.0, 1.0)
    assert s.schedules["cosine"]["end_factor"] == Float(0.0, 0.9)


def test_midpoints():
    assert Float(1e-4, 1e-2, log=True).midpoint() == pytest.approx(1e-3)
    assert Float(0.0, 0.2).midpoint() == pytest.approx(0.1)
    assert Int(2, 8, log=True).midpoint() == 4
    assert Choice(["a", "b"]).midpoint() == "a"
