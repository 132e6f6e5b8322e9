import dataclasses
import itertools
import json
import math
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

from tuner import Choice, Float, Int, Metric, OptimizerSpec, ScheduleSpec, blas
from tuner.graphs import GraphCache
from tuner.space import Sample
from tuner.train import run_trial
from tuner_builtins import tasks


def adamw(learning_rate, beta1, weight_decay):
    optimizer = optim.AdamW(learning_rate, weight_decay=weight_decay)
    # AdamW range-checks its betas in Python, which a traced value cannot answer.
    optimizer.betas = [beta1, 0.999]
    return optimizer


class ScaleEveryStep(optim.Optimizer):
    """Multiplies every weight by ``factor`` each step: a loss that runs away on demand."""

    def __init__(self, learning_rate, factor):
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.factor = factor

    def init_single(self, parameter, state):
        pass

    def apply_single(self, gradient, parameter, state):
        return parameter * self.factor


class PoisonAt(optim.SGD):
    """Plain SGD whose update number ``at`` turns every weight into NaN."""

    def __init__(self, learning_rate, at):
        super().__init__(learning_rate)
        self.at = at

    def apply_single(self, gradient, parameter, state):
        updated = super().apply_single(gradient, parameter, state)
        return mx.where(self.step >= self.at, mx.nan, updated)


def branching_sgd(learning_rate, momentum):
    # Python branching on a Float parameter: fine eagerly, impossible to trace.
    if momentum > 0.5:
        return optim.SGD(learning_rate, momentum=0.9)
    return optim.SGD(learning_rate)


ADAMW = OptimizerSpec(
    "t-adamw",
    adamw,
    {"beta1": Float(0.8, 0.95), "weight_decay": Float(1e-4, 1e-1, log=True)},
)
SGD = OptimizerSpec(
    "t-sgd",
    lambda learning_rate, nesterov: optim.SGD(learning_rate, momentum=0.9, nesterov=nesterov),
    {"nesterov": Choice((False, True))},
)
SCALE = OptimizerSpec("t-scale", ScaleEveryStep, {"factor": Float(0.0, 1e6)})
POISON = OptimizerSpec("t-poison", PoisonAt, {"at": Int(1, 1000)})
BRANCHING = OptimizerSpec("t-branching", branching_sgd, {"momentum": Float(0.0, 0.99)})
COSINE = ScheduleSpec(
    "t-cosine",
    lambda lr, steps, end_factor: optim.cosine_decay(lr, steps, end=end_factor * lr),
    {"end_factor": Float(0.0, 0.5)},
)


def stepped(lr, steps, drops):
    """Halves the rate ``drops`` times, deciding in Python: no array of steps goes through."""

    def schedule(step):
        return lr * 0.5 ** int(int(step) * (drops + 1) // steps)

    return schedule


STEPPED = ScheduleSpec("t-stepped", stepped, {"drops": Int(1, 3)})
SPECS = {spec.name: spec for spec in (ADAMW, SGD, SCALE, POISON, BRANCHING, COSINE, STEPPED)}


@pytest.fixture(scope="module")
def task():
    return tasks.build_synthetic()


@pytest.fixture
def graphs():
    return GraphCache()


@pytest.fixture
def trial(graphs):
    """``trial_with`` this test's cache: its trials share graphs as a search's do."""
    return partial(trial_with, graphs)


def sample(optimizer=ADAMW, params=None, lr=1e-2, warmup=0.0, end_factor=0.0):
    if params is None:
        params = {"beta1": 0.9, "weight_decay": 1e-2}
    return Sample(optimizer.name, params, COSINE.name, {"end_factor": end_factor}, lr, warmup)


def trial_with(graphs, task, the_sample=None, *, steps=100, eval_every=25, seed=0, **kwargs):
    the_sample = the_sample or sample()
    return run_trial(
        task,
        SPECS[the_sample.optimizer],
        SPECS[the_sample.schedule],
        the_sample,
        steps=steps,
        batch_size=32,
        eval_every=eval_every,
        seed=seed,
        graphs=graphs,
        **kwargs,
    )


def test_trial_completes_with_finite_decreasing_loss(task, trial):
    result = trial(task)
    assert result.outcome == "complete" and result.reason is None and result.compiled
    assert result.steps == len(result.losses) == len(result.lrs) == 100
    assert all(math.isfinite(loss) for loss in result.losses)
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) / 2
    assert [e["step"] for e in result.evals] == [25, 50, 75, 100]
    assert result.metrics == {k: v for k, v in result.evals[-1].items() if k != "step"}
    assert set(result.metrics) == {"val_loss", "r2"}
    assert result.value == result.metrics["val_loss"]
    assert result.duration_s > 0 and 0 < result.step_time_s < result.duration_s


def test_lrs_ramp_up_over_the_warmup_then_follow_the_schedule(task, trial):
    result = trial(task, sample(lr=0.02, warmup=0.1, end_factor=0.5))
    lrs = result.lrs
    assert lrs[0] == 0.0
    assert lrs[10] == pytest.approx(0.02)
    assert all(a < b for a, b in itertools.pairwise(lrs[:11]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] == pytest.approx(0.01, rel=1e-2)


def test_objective_may_be_a_task_metric(task, trial):
    result = trial(task, objective="r2")
    assert result.value == result.metrics["r2"] == result.evals[-1]["r2"]


def test_unknown_objective_and_empty_runs_are_refused(task, trial):
    with pytest.raises(ValueError, match=r"unknown objective 'accuracy'.*val_loss, r2"):
        trial(task, objective="accuracy")
    with pytest.raises(ValueError, match="at least 1"):
        trial(task, eval_every=0)


def test_same_seed_gives_the_same_trial_and_another_seed_another(task, trial):
    first, second = trial(task, seed=3), trial(task, seed=3)
    assert first.losses == second.losses and first.value == second.value
    assert trial(task, seed=4).losses != first.losses


def test_same_seed_gives_the_same_losses_in_a_fresh_process(task, trial):
    # On this process's BLAS: another sums in another order, to other last bits. Which one runs
    # here depends on whether a test module imported tuner before mlx (see tuner.blas).
    running = blas.load()
    same = "bundled" if running is not None and running.name == blas.BUNDLED else "auto"
    script = """
import json, sys
import tuner.blas
tuner.blas.load({blas!r})
sys.path.insert(0, {tests!r})
from test_train import trial_with
from tuner.graphs import GraphCache
from tuner_builtins import tasks
result = trial_with(GraphCache(), tasks.build_synthetic(), seed=5)
print(json.dumps({{"losses": result.losses, "value": result.value}}))
"""
    tests = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", script.format(tests=tests, blas=same)],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = trial(task, seed=5)
    assert theirs == {"losses": ours.losses, "value": ours.value}


def test_trials_differing_in_numbers_reuse_one_compiled_step(task, trial, graphs):
    trial(task, sample(lr=1e-2))
    settings = sample(params={"beta1": 0.85, "weight_decay": 3e-2}, lr=3e-3, end_factor=0.2)
    compiled = trial(task, settings, seed=1)
    assert len(graphs) == 1
    (graph,) = graphs.values()
    assert graph.traces == 1
    eager = trial(task, settings, seed=1, eager=True)
    assert compiled.compiled and not eager.compiled
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=1e-5)
    np.testing.assert_allclose(compiled.lrs, eager.lrs, rtol=1e-6)
    assert compiled.value == pytest.approx(eager.value, rel=1e-5)


def test_choices_select_their_own_graphs_and_the_schedule_warmup_and_steps_do_not(
    task, trial, graphs
):
    for nesterov in (False, True, False):
        trial(task, sample(SGD, {"nesterov": nesterov}, lr=1e-3))
    assert len(graphs) == 2
    trial(task, sample(SGD, {"nesterov": True}, lr=1e-3, warmup=0.1, end_factor=0.4))
    trial(task, Sample(SGD.name, {"nesterov": True}, STEPPED.name, {"drops": 2}, 1e-3, 0.2))
    assert len(graphs) == 2
    assert all(graph.traces == 1 for graph in graphs.values())
    # Another step count gives the table of rates another length: MLX traces the graph's step
    # again for that shape, as it does for any new shape.
    trial(task, sample(SGD, {"nesterov": True}, lr=1e-3), steps=40)
    assert len(graphs) == 2
    assert sorted(graph.traces for graph in graphs.values()) == [1, 2]


def test_a_schedule_that_decides_in_python_trains_compiled_at_its_rates(task, trial):
    settings = Sample(
        ADAMW.name, {"beta1": 0.9, "weight_decay": 1e-2}, STEPPED.name, {"drops": 1}, 1e-2, 0
    )
    result = trial(task, settings)
    assert result.compiled and result.reason is None and result.outcome == "complete"
    assert result.lrs == pytest.approx([1e-2] * 50 + [5e-3] * 50)


def test_a_trial_builds_only_the_graphs_its_cache_lacks(task, trial, graphs):
    builds = []
    first = trial(task, on_build=lambda: builds.append("ours"))
    trial(task, seed=1, on_build=lambda: builds.append("ours"))
    other = GraphCache()
    again = trial_with(other, task, on_build=lambda: builds.append("theirs"))
    assert builds == ["ours", "theirs"]
    (ours,), (theirs,) = graphs.values(), other.values()
    assert ours is not theirs and ours.traces == theirs.traces == 1
    assert again.losses == first.losses


def test_a_build_cut_short_by_ctrl_c_is_dropped_not_given_up(task, graphs):
    stop = threading.Event()

    def interrupted_while_tracing(learning_rate, momentum):
        try:
            return branching_sgd(learning_rate, momentum)
        except ValueError:
            # Ctrl-C sets the event and breaks the build it lands in.
            stop.set()
            raise

    spec = OptimizerSpec("t-interrupted", interrupted_while_tracing, {"momentum": Float(0, 1)})
    result = run_trial(
        task,
        spec,
        COSINE,
        sample(spec, {"momentum": 0.9}),
        steps=10,
        batch_size=32,
        eval_every=5,
        seed=0,
        graphs=graphs,
        stop=stop,
    )
    assert result.outcome == "interrupted" and result.reason == "interrupted at step 0"
    assert not result.compiled and len(graphs) == 0


def test_nan_weights_end_the_trial_as_diverged(task, trial):
    result = trial(task, sample(SCALE, {"factor": math.nan}))
    assert result.outcome == "diverged"
    assert result.reason == "loss became nan at step 2"
    assert result.steps == len(result.losses) == 2
    assert result.value is None and result.evals == []


def test_a_loss_running_away_ends_the_trial_as_diverged(task, trial):
    result = trial(task, sample(SCALE, {"factor": 1000.0}))
    assert result.outcome == "diverged" and result.steps == 2
    assert result.reason.startswith("loss ") and result.reason.endswith(" at step 2")
    assert "exceeded 100× the initial" in result.reason


def test_nan_weights_after_the_last_step_diverge_at_the_final_eval(task, trial):
    result = trial(task, sample(POISON, {"at": 100}))
    assert result.outcome == "diverged"
    assert result.reason == "validation loss became nan at step 100"
    assert all(math.isfinite(loss) for loss in result.losses) and result.steps == 100
    assert [e["step"] for e in result.evals] == [25, 50, 75]
    assert result.value == result.metrics["val_loss"] == result.evals[-1]["val_loss"]


def test_on_eval_returning_true_prunes_the_trial(task, trial):
    seen = []

    def on_eval(step, value):
        seen.append((step, value))
        return step >= 50

    result = trial(task, on_eval=on_eval, objective="r2")
    assert result.outcome == "pruned" and result.reason == "pruned at step 50"
    assert result.steps == len(result.losses) == 50
    assert seen == [(e["step"], e["r2"]) for e in result.evals]
    assert result.value == seen[-1][1]


def test_on_eval_is_called_only_at_eval_points_and_the_last_step(task, trial):
    steps = []
    trial(task, steps=60, eval_every=25, on_eval=lambda step, value: steps.append(step))
    assert steps == [25, 50, 60]


def test_an_untraceable_optimizer_falls_back_to_eager_and_trains(task, trial, graphs):
    settings = sample(BRANCHING, {"momentum": 0.9})
    result = trial(task, settings)
    assert not result.compiled and result.outcome == "complete"
    assert result.reason == (
        "compile failed, so it ran eagerly: the optimizer reads a Float "
        "parameter's value in Python (a comparison, float() or .item()), which mx.compile "
        "cannot trace"
    )
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) / 2
    again = trial(task, settings)
    (graph,) = graphs.values()
    assert graph.traces == 1 and again.reason == result.reason
    assert again.losses == result.losses == trial(task, settings, eager=True).losses


def test_a_metric_that_cannot_be_traced_is_measured_eagerly(task, trial, graphs):
    def sign_of_mean(model, x, y):
        # .item() inside a trace fails: the compiled eval must give way to an eager one.
        return mx.array(1.0 if model(x).mean().item() > 0 else -1.0)

    metrics = {**task.metrics, "sign": Metric(sign_of_mean, "maximize")}
    odd = dataclasses.replace(task, metrics=metrics)
    compiled = trial(odd, objective="sign")
    assert compiled.compiled and compiled.outcome == "complete"
    (graph,) = graphs.values()
    assert graph.eager_validation
    eager = trial(odd, objective="sign", eager=True)
    for ours, theirs in zip(compiled.evals, eager.evals, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)
    assert trial(odd, objective="sign").evals == compiled.evals


def test_errors_other_than_divergence_propagate(task):
    def broken(learning_rate):
        raise RuntimeError("no optimizer today")

    spec = OptimizerSpec("t-broken", broken, {})
    with pytest.raises(RuntimeError, match="no optimizer today"):
        run_trial(
            task,
            spec,
            COSINE,
            Sample("t-broken", {}, COSINE.name, {"end_factor": 0.0}, 1e-2, 0.0),
            steps=10,
            batch_size=32,
            eval_every=5,
            seed=0,
            graphs=GraphCache(),
        )


def test_digits_trial_reaches_high_accuracy():
    digits = tasks.build_digits()
    settings = sample(lr=1e-2)
    result = run_trial(
        digits,
        ADAMW,
        COSINE,
        settings,
        steps=300,
        batch_size=64,
        eval_every=50,
        seed=0,
        graphs=GraphCache(),
        objective="accuracy",
    )
    assert result.outcome == "complete" and result.compiled
    assert result.value > 0.93


def sealed(task):
    """``task`` with a test set that raises when read."""

    def test():
        raise RuntimeError("the test set was read")

    return dataclasses.replace(task, test=test)


def test_a_confirmation_run_measures_the_trained_model_on_the_test_set(task, trial):
    result = trial(task, test=True)
    model = task.model()
    model.update(result.weights)
    model.eval()
    x, y = task.test()
    assert result.test_metrics == {
        "test_loss": task.loss(model, x, y).item(),
        "test_r2": task.metrics["r2"].fn(model, x, y).item(),
    }
    assert not set(result.test_metrics) & set(result.metrics)
    assert result.test_metrics["test_loss"] != result.metrics["val_loss"]
    searched = trial(task)
    assert searched.test_metrics == {} and searched.losses == result.losses


def test_an_eager_confirmation_run_measures_the_test_set_too(task, trial):
    compiled, eager = trial(task, test=True), trial(task, test=True, eager=True)
    assert not eager.compiled
    assert eager.test_metrics == pytest.approx(compiled.test_metrics, rel=1e-5)


def test_a_trial_that_is_not_asked_to_test_never_reads_the_test_set(task, trial):
    result = trial(sealed(task))
    assert result.outcome == "complete" and result.test_metrics == {}
    assert result.losses == trial(task).losses


def test_only_a_completed_trial_reads_the_test_set(task, trial):
    pruned = trial(sealed(task), test=True, on_eval=lambda step, value: True)
    diverged = trial(sealed(task), sample(SCALE, {"factor": math.nan}), test=True)
    assert (pruned.outcome, diverged.outcome) == ("pruned", "diverged")
    assert pruned.test_metrics == diverged.test_metrics == {}
    untested = trial(dataclasses.replace(task, test=None), test=True)
    assert untested.outcome == "complete" and untested.test_metrics == {}
    with pytest.raises(RuntimeError, match="the test set was read"):
        trial(sealed(task), test=True)
