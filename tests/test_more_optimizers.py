"""The optimizers MLX lacks: NAdamW and schedule-free AdamW against their update rules written
out in numpy, schedule-free AdamW's trials measured at its averaged weights, and each of them
training the built-in tasks inside the compiled step a search reuses."""

import math
from dataclasses import replace

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from hand_loop import train_by_hand

from tuner.graphs import GraphCache, validation
from tuner.plugins import load_plugins
from tuner.space import Sample
from tuner.train import run_trial
from tuner_builtins import language_model, more_optimizers, tasks

REGISTRY = load_plugins()
NEW = ["nadamw", "schedule_free_adamw"]
STEPS = 5
RNG = np.random.default_rng(0)
WEIGHTS = RNG.standard_normal((3, 4))
GRADIENTS = RNG.standard_normal((STEPS, 3, 4))
# A warmup from 0, then a decay: the rate of each update, as a trial's schedule gives it.
RATES = [0.0, 0.01, 0.02, 0.015, 0.01]


def scheduled(step):
    return mx.array(RATES, dtype=mx.float32)[step]


def mlx_path(optimizer):
    """The weights after each update of ``optimizer`` fed ``GRADIENTS``, and its state."""
    weights, path = {"w": mx.array(WEIGHTS, dtype=mx.float32)}, []
    for gradient in GRADIENTS:
        weights = optimizer.apply_gradients({"w": mx.array(gradient, dtype=mx.float32)}, weights)
        mx.eval(weights, optimizer.state)
        path.append(np.array(weights["w"]))
    return path


def nadamw_by_hand(b1, b2, decay, eps=1e-8):
    """AlgoPerf's NAdamW update, in float64."""
    w, m, v, path = WEIGHTS.copy(), 0.0, 0.0, []
    for t, (g, lr) in enumerate(zip(GRADIENTS, RATES, strict=True), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = (b1 * m + (1 - b1) * g) / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * decay * w - lr * m_hat / (np.sqrt(v_hat) + eps)
        path.append(w)
    return path


def schedule_free_by_hand(b1, b2, decay, eps=1e-8):
    """Algorithm 1 of Defazio et al. 2024, in float64: the y, x and z of each step."""
    x = z = WEIGHTS.copy()
    v, total, path = 0.0, 0.0, []
    for t, (g, lr) in enumerate(zip(GRADIENTS, RATES, strict=True), start=1):
        y = (1 - b1) * z + b1 * x  # the gradient g is taken here
        v = b2 * v + (1 - b2) * g**2
        gamma = lr * math.sqrt(1 - b2**t)
        z = z - gamma * g / (np.sqrt(v) + eps) - gamma * decay * y
        total += gamma**2
        # A first step of size 0 (a warmup from 0) has nothing to average yet.
        c = gamma**2 / total if total > 0 else 0.0
        x = (1 - c) * x + c * z
        path.append(((1 - b1) * z + b1 * x, x, z))
    return path


def test_nadamw_is_algoperfs_update_rule():
    optimizer = REGISTRY.optimizers["nadamw"].build(
        scheduled, one_minus_beta1=mx.array(0.1), beta2=0.999, weight_decay=mx.array(0.5)
    )

    ours = mlx_path(optimizer)

    expected = nadamw_by_hand(b1=1 - np.float32(0.1), b2=0.999, decay=np.float32(0.5))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_nadamw_is_not_adamw():
    settings = {"betas": [0.9, 0.999], "weight_decay": 0.5}
    adamw = optim.AdamW(scheduled, bias_correction=True, **settings)
    nadamw = more_optimizers.NAdamW(scheduled, **settings)

    assert not np.allclose(mlx_path(adamw)[-1], mlx_path(nadamw)[-1], rtol=1e-4)


def test_schedule_free_adamw_is_the_papers_update_rule():
    optimizer = REGISTRY.optimizers["schedule_free_adamw"].build(
        scheduled, beta1=mx.array(0.9), beta2=mx.array(0.99), weight_decay=mx.array(0.1)
    )

    ours = mlx_path(optimizer)

    expected = schedule_free_by_hand(b1=np.float32(0.9), b2=np.float32(0.99), decay=np.float32(0.1))
    trains_at = [y for y, _, _ in expected]
    np.testing.assert_allclose(ours, trains_at, rtol=1e-5, atol=1e-6)
    _, x, z = expected[-1]
    np.testing.assert_allclose(optimizer.state["w"]["x"], x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(optimizer.state["w"]["z"], z, rtol=1e-5, atol=1e-6)
    assert not np.allclose(x, trains_at[-1], rtol=1e-3)


def test_schedule_free_adamw_gives_its_averaged_weights_to_evaluate():
    spec = REGISTRY.optimizers["schedule_free_adamw"]
    optimizer = spec.build(scheduled, beta1=0.9, beta2=0.99, weight_decay=0.1)
    mlx_path(optimizer)

    weights = spec.eval_weights(optimizer.state, {"w": mx.zeros((3, 4))})

    assert weights["w"] is optimizer.state["w"]["x"]


@pytest.fixture(scope="module")
def digits():
    return tasks.build_digits()


def default_sample(name):
    """The optimizer's known-good setting, as a new study tries it first."""
    (default,) = REGISTRY.optimizers[name].defaults
    return Sample(
        name,
        dict(default.params),
        default.schedule,
        dict(default.schedule_params),
        default.lr,
        default.warmup,
    )


def trial(task, name, graphs, steps=50, batch_size=32, **kwargs):
    sample = default_sample(name)
    return run_trial(
        task,
        REGISTRY.optimizers[name],
        REGISTRY.schedules[sample.schedule],
        sample,
        steps=steps,
        batch_size=batch_size,
        eval_every=25,
        seed=0,
        graphs=graphs,
        **kwargs,
    )


@pytest.fixture(scope="module")
def small_tinylm():
    """``tinylm`` with a sixteenth of its validation windows, which on MLX's bundled BLAS cost
    a second an eval."""
    task = language_model.build_tinylm()
    return replace(task, valid=tuple(part[:8] for part in task.valid))


@pytest.mark.parametrize(("task", "batch_size"), [("digits", 32), ("small_tinylm", 4)])
@pytest.mark.parametrize("name", NEW)
def test_trains_each_builtin_task_below_its_starting_loss_compiled(request, task, batch_size, name):
    task = request.getfixturevalue(task)
    graphs = GraphCache()

    result = trial(task, name, graphs, batch_size=batch_size)

    assert result.outcome == "complete" and result.compiled and result.reason is None
    assert [graph.traces for graph in graphs.values()] == [1]
    assert result.losses[-1] < result.losses[0] and result.value < result.losses[0]


def by_hand(task, name, steps=50, batch_size=32):
    """The model and optimizer of ``trial``'s default setting, trained as MLX's examples do."""
    sample = default_sample(name)
    spec, schedule = REGISTRY.optimizers[name], REGISTRY.schedules[sample.schedule]
    model, optimizer, _, _ = train_by_hand(
        task, spec, schedule, sample, steps=steps, batch_size=batch_size, seed=0
    )
    model.eval()
    return model, optimizer


def test_a_schedule_free_trial_is_measured_at_its_averaged_weights(digits):
    result = trial(digits, "schedule_free_adamw", GraphCache())

    model, optimizer = by_hand(digits, "schedule_free_adamw")
    trained_at = validation(model, digits)["val_loss"].item()
    model.update(more_optimizers.averaged_weights(optimizer.state, model.parameters()))
    averaged = validation(model, digits)["val_loss"].item()
    assert result.value == pytest.approx(averaged, rel=1e-5)
    assert result.value != pytest.approx(trained_at, rel=1e-3)
    assert [e["val_loss"] for e in result.evals][-1] == result.value


def test_an_eager_schedule_free_trial_is_measured_as_a_compiled_one(digits):
    compiled = trial(digits, "schedule_free_adamw", GraphCache())
    eager = trial(digits, "schedule_free_adamw", GraphCache(), eager=True)

    assert not eager.compiled
    assert [e["val_loss"] for e in eager.evals] == pytest.approx(
        [e["val_loss"] for e in compiled.evals], rel=1e-4
    )


def test_a_trial_puts_back_the_weights_it_trains_at_after_each_eval(digits):
    """Evaluated at its averaged weights mid-run, a trial trains on from its own: the same
    losses as one that is evaluated only at the end."""
    often = trial(digits, "schedule_free_adamw", GraphCache(), steps=30)
    once = run_trial(
        digits,
        REGISTRY.optimizers["schedule_free_adamw"],
        REGISTRY.schedules["constant"],
        default_sample("schedule_free_adamw"),
        steps=30,
        batch_size=32,
        eval_every=30,
        seed=0,
        graphs=GraphCache(),
    )

    assert often.losses == once.losses
    assert often.value == once.value


def test_a_confirmation_run_tests_at_the_averaged_weights(digits):
    result = trial(digits, "schedule_free_adamw", GraphCache(), test=True)

    model, optimizer = by_hand(digits, "schedule_free_adamw")
    model.update(more_optimizers.averaged_weights(optimizer.state, model.parameters()))
    x, y = digits.test()
    expected = digits.loss(model, x, y).item()
    assert result.test_metrics["test_loss"] == pytest.approx(expected, rel=1e-5)
