"""The example plugins load the ways the README says, and what they register trains compiled,
the way a search trains it; the notebook example runs as a script.
"""

import math
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import pytest
from test_builtin_optimizers import LR, Trials, midpoints, split

from tuner.lr import make_schedule
from tuner.plugins import load_plugins

EXAMPLES = Path(__file__).parent.parent / "examples"
SINGLE_FILE = str(EXAMPLES / "single_file_plugin.py")


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch):
    # An installed copy of the example package would clash with the one loaded here.
    monkeypatch.setenv("TUNER_LOAD_PLUGINS", "")


@pytest.fixture
def package(monkeypatch):
    """The registry with the example package loaded by module name, as its entry point does."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "example-plugin"))
    return load_plugins(["tuner_example_plugin"])


def rates(schedule, steps):
    return [schedule(mx.array(t, dtype=mx.uint64)).item() for t in steps]


def trains(registry, optimizer, schedule):
    """Train with both specs at their midpoints, compiled; the losses must fall."""
    optimizer, schedule = registry.optimizers[optimizer], registry.schedules[schedule]
    floats, static = split(optimizer, midpoints(optimizer))
    schedule_floats, schedule_static = split(schedule, midpoints(schedule))

    losses = Trials(optimizer, static, schedule, schedule_static).run(LR, floats, schedule_floats)

    assert all(map(math.isfinite, losses))
    assert losses[-1] < losses[0]


def test_single_file_plugin_loads_and_trains():
    registry = load_plugins([SINGLE_FILE])

    assert registry.errors == []
    assert registry.plugin_of("optimizer", "adamw_bc").name == "single_file_plugin"
    trains(registry, "adamw_bc", "polynomial")


def test_single_file_polynomial_of_power_one_is_a_linear_decay():
    schedule = load_plugins([SINGLE_FILE]).schedules["polynomial"].build(LR, 50, power=1.0)

    expected = rates(optim.linear_schedule(LR, 0.0, 50), range(60))
    assert rates(schedule, range(60)) == pytest.approx(expected, abs=1e-7)


def three_steps(optimizer):
    parameters = {"w": mx.ones((3,))}
    for _ in range(3):
        parameters = optimizer.apply_gradients({"w": mx.array([0.1, -1.0, 10.0])}, parameters)
    return parameters["w"].tolist()


def test_single_file_adamw_bc_is_mlx_adamw_with_bias_correction():
    build = load_plugins([SINGLE_FILE]).optimizers["adamw_bc"].build
    ours = build(LR, beta1=0.9, beta2=0.99, weight_decay=0.1)
    mlx = optim.AdamW(LR, betas=[0.9, 0.99], weight_decay=0.1, bias_correction=True)

    assert three_steps(ours) == pytest.approx(three_steps(mlx))


def test_example_package_loads_and_trains(package):
    assert package.errors == []
    assert "signum" in package.optimizers
    assert package.plugin_of("schedule", "inverse_sqrt").name == "tuner_example_plugin"
    trains(package, "signum", "inverse_sqrt")


def test_signum_steps_by_the_sign_of_its_momentum(package):
    signum = package.optimizers["signum"].build(0.1, momentum=0.5, weight_decay=0.0)
    parameters = {"w": mx.zeros((3,))}

    for gradient in ([1.0, -2.0, 3.0], [-3.0, 1.0, -1.0]):
        parameters = signum.apply_gradients({"w": mx.array(gradient)}, parameters)

    # Momenta: (0.5, -1, 1.5), then (-1.25, 0, 0.25); the middle one is 0, so no step.
    assert parameters["w"].tolist() == pytest.approx([0.0, 0.1, -0.2])


def test_inverse_sqrt_falls_to_a_share_of_the_peak_by_its_timescale(package):
    spec = package.schedules["inverse_sqrt"]
    schedule = make_schedule(spec, LR, 110, warmup=10, params={"timescale": 0.25})

    first, at_timescale, last, after = rates(schedule, [10, 10 + 25, 110, 150])
    assert first == pytest.approx(LR)
    assert at_timescale == pytest.approx(LR / math.sqrt(2), rel=1e-6)
    assert last == after == pytest.approx(LR / math.sqrt(5))


def test_the_notebook_example_searches_numpy_data_shows_a_bar_and_reads_a_dataframe(tmp_path):
    run = subprocess.run(
        [sys.executable, EXAMPLES / "notebook.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )

    assert run.returncode == 0, run.stderr
    assert "flowers: 100%" in run.stderr and "10/10" in run.stderr, run.stderr
    assert "confirming: 100%" in run.stderr and "4/4" in run.stderr, run.stderr
    assert "Warning" not in run.stderr
    header, *rows = run.stdout.splitlines()[:6]
    assert header.split() == [
        "rank", "number", "optimizer", "schedule", "params.lr", "value", "outcome"
    ]  # fmt: skip
    assert [int(row.split()[0]) for row in rows] == [1, 2, 3, 4, 5]
    assert "leads: mean accuracy" in run.stdout
    assert (tmp_path / "flowers.db").exists()
