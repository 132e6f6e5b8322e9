"""Trials trained together in a population train as they would alone: the same losses, learning
rates, evals and final weights for every built-in optimizer and schedule; a member that
diverges, is pruned or fails leaves the others' numbers as they were; an optimizer that cannot
be vectorised trains its members alone and says why."""

import dataclasses
import math
import threading
from pathlib import Path

import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from tuner import Float, OptimizerSpec
from tuner.graphs import GraphCache, Mode, TrialPlan, graph_settings
from tuner.params import Choice, Int
from tuner.plugins import load_plugins
from tuner.results import Outcome
from tuner.space import Sample
from tuner.train import run_trial, train
from tuner.trial import Member
from tuner_builtins import tasks

EXAMPLE_PLUGIN = Path(__file__).parent.parent / "examples" / "example-plugin"
STEPS = 50
EVERY = 20
# float32: members and lone trials run the same arithmetic, but a batched matrix product may
# add in another order; over 50 steps the measured gap is below 3e-7 relative.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def registry():
    return load_plugins()


@pytest.fixture(scope="module")
def task():
    return tasks.build_synthetic()


def draw(spec_space, rng):
    """A value of each parameter of a space: Floats drawn, the rest (which select the graph)
    at their first value, so that every draw shares one graph."""
    values = {}
    for name, param in spec_space.items():
        if isinstance(param, Float):
            low, high = param.low, param.high
            if param.log:
                values[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                values[name] = float(rng.uniform(low, high))
        elif isinstance(param, Choice):
            values[name] = param.values[0]
        elif isinstance(param, Int):
            values[name] = param.low
    return values


def samples(optimizer, schedule, count, seed=0, lr=(1e-3, 3e-2)):
    rng = np.random.default_rng(seed)
    return [
        Sample(
            optimizer.name,
            draw(optimizer.space, rng),
            schedule.name,
            draw(schedule.space, rng),
            float(rng.uniform(*lr)),
            0.1,
        )
        for _ in range(count)
    ]


def alone(task, optimizer, schedule, sample, seed, on_eval=None):
    return run_trial(
        task,
        optimizer,
        schedule,
        sample,
        steps=STEPS,
        batch_size=16,
        eval_every=EVERY,
        seed=seed,
        graphs=GraphCache(),
        on_eval=on_eval,
    )


def together(task, optimizer, members, graphs=None):
    return train(
        task,
        optimizer,
        members,
        steps=STEPS,
        batch_size=16,
        eval_every=EVERY,
        graphs=graphs if graphs is not None else GraphCache(),
    )


def assert_same(member, lone):
    assert member.outcome == lone.outcome
    assert member.steps == lone.steps
    np.testing.assert_allclose(member.losses, lone.losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(member.lrs, lone.lrs, rtol=RTOL, atol=ATOL)
    assert [e["step"] for e in member.evals] == [e["step"] for e in lone.evals]
    for mine, theirs in zip(member.evals, lone.evals, strict=True):
        np.testing.assert_allclose(
            [mine[k] for k in sorted(mine)], [theirs[k] for k in sorted(theirs)], rtol=RTOL
        )
    assert member.value == pytest.approx(lone.value, rel=RTOL, abs=ATOL)
    mine, theirs = tree_flatten(member.weights), tree_flatten(lone.weights)
    assert [k for k, _ in mine] == [k for k, _ in theirs]
    for (_, a), (_, b) in zip(mine, theirs, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=RTOL, atol=ATOL)


def check_members(task, optimizer, schedule, count=3):
    drawn = samples(optimizer, schedule, count)
    members = [Member(schedule, sample, seed=10 + i) for i, sample in enumerate(drawn)]
    results = together(task, optimizer, members)
    for i, (member, result) in enumerate(zip(members, results, strict=True)):
        assert result.reason is None, result.reason
        assert_same(result, alone(task, optimizer, schedule, member.sample, member.seed))
        assert result.steps == STEPS, i
    return results


@pytest.mark.parametrize(
    "name",
    ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "adamax", "lion", "adafactor",
     "muon", "nadamw", "schedule_free_adamw"],
)  # fmt: skip
def test_each_builtin_optimizer_trains_in_a_population_as_alone(registry, task, name):
    check_members(task, registry.optimizers[name], registry.schedules["cosine"])


def test_the_list_above_is_every_builtin_optimizer(registry):
    builtin = {
        name
        for name in registry.optimizers
        if registry.plugin_of("optimizer", name).name.startswith("tuner_builtins")
    }
    assert builtin == {
        "sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamw", "adamax", "lion", "adafactor",
        "muon", "nadamw", "schedule_free_adamw",
    }  # fmt: skip


@pytest.mark.parametrize("name", ["constant", "linear", "cosine", "exponential", "step", "wsd"])
def test_each_builtin_schedule_trains_in_a_population_as_alone(registry, task, name):
    assert {"constant", "linear", "cosine", "exponential", "step", "wsd"} == set(registry.schedules)
    check_members(task, registry.optimizers["adam"], registry.schedules[name])


def test_a_family_is_what_selects_a_graph(registry, task):
    # A Float the optimizer declares flows into the graph as an array, even where --space gave
    # it values to choose from, so members may differ in it; a Choice selects a graph.
    adamw, constant = registry.optimizers["adamw"], registry.schedules["constant"]
    one, two = samples(adamw, constant, 2)
    other = dataclasses.replace(
        one, optimizer_params={**one.optimizer_params, "bias_correction": True}
    )

    def key(sample):
        return TrialPlan.of(adamw, constant, sample, STEPS).key(task, 32)

    def family(sample):
        return graph_settings(adamw, sample, "synthetic")

    assert one.optimizer_params != two.optimizer_params
    assert family(one) == family(two) and key(one) == key(two)
    assert family(one) != family(other) and key(one) != key(other)


def test_members_differ_from_one_another(registry, task):
    results = check_members(task, registry.optimizers["adam"], registry.schedules["cosine"])
    finals = {round(r.losses[-1], 6) for r in results}
    assert len(finals) == len(results)


def test_a_member_gone_nan_leaves_the_others_as_they_were(registry, task):
    optimizer, schedule = registry.optimizers["adam"], registry.schedules["cosine"]
    drawn = samples(optimizer, schedule, 4)
    poisoned = dataclasses.replace(drawn[1], lr=float("nan"))
    members = [
        Member(schedule, s, seed=10 + i) for i, s in enumerate([drawn[0], poisoned, *drawn[2:]])
    ]
    graphs = GraphCache()
    results = together(task, optimizer, members, graphs)
    assert results[1].outcome is Outcome.DIVERGED
    assert "nan" in results[1].reason
    for i in (0, 2, 3):
        assert_same(results[i], alone(task, optimizer, schedule, members[i].sample, 10 + i))
    # Three running of four: the diverged member's slot holds a copy, in the same shape.
    assert sum(graphs[key].traces for key in graphs) == 1


def test_members_pruned_at_different_rungs_or_failing_leave_the_others_as_they_were(registry, task):
    optimizer, schedule = registry.optimizers["adamw"], registry.schedules["linear"]
    drawn = samples(optimizer, schedule, 5)

    def prune_at(rung):
        return lambda step, value: step >= rung

    def fail_at(rung):
        def on_eval(step, value):
            if step >= rung:
                raise OSError("No space left on device")
            return False

        return on_eval

    hooks = [prune_at(20), fail_at(40), None, prune_at(40), None]
    members = [
        Member(schedule, s, seed=10 + i, on_eval=hook)
        for i, (s, hook) in enumerate(zip(drawn, hooks, strict=True))
    ]
    graphs = GraphCache()
    results = together(task, optimizer, members, graphs)

    assert [r.outcome for r in results] == [
        Outcome.PRUNED, Outcome.FAILED, Outcome.COMPLETE, Outcome.PRUNED, Outcome.COMPLETE
    ]  # fmt: skip
    assert results[0].reason == "pruned at step 20"
    assert results[1].reason == "OSError: No space left on device"
    assert [r.steps for r in results] == [20, 40, STEPS, 40, STEPS]
    for i, member in enumerate(members):
        if results[i].outcome is Outcome.FAILED:
            lone = alone(task, optimizer, schedule, member.sample, member.seed)
            np.testing.assert_allclose(results[i].losses, lone.losses[:40], RTOL, ATOL)
            continue
        on_eval = member.on_eval
        assert_same(
            results[i], alone(task, optimizer, schedule, member.sample, member.seed, on_eval)
        )
    # Four running of five after step 20 keep the shape; two after step 40 fit in two slots
    # (5 → 3 → 2): two shapes in all.
    assert sum(graphs[key].traces for key in graphs) == 2


class Branching(optim.SGD):
    """SGD that reads its momentum in Python: fine eagerly, impossible to trace or vectorise."""

    def __init__(self, learning_rate, momentum):
        super().__init__(learning_rate, momentum=0.9 if float(momentum) > 0.5 else 0.0)


def test_an_optimizer_that_cannot_be_vectorised_trains_its_members_alone_and_says_why(
    registry, task
):
    optimizer = OptimizerSpec("t-branching", Branching, {"momentum": Float(0.0, 0.99)})
    schedule = registry.schedules["constant"]
    drawn = samples(optimizer, schedule, 3)
    members = [Member(schedule, s, seed=10 + i) for i, s in enumerate(drawn)]
    graphs = GraphCache()
    results = together(task, optimizer, members, graphs)

    for member, result in zip(members, results, strict=True):
        assert result.outcome is Outcome.COMPLETE
        assert "; trained alone, as its population failed to: " in result.reason
        assert "reads a Float parameter's value in Python" in result.reason
        lone = alone(task, optimizer, schedule, member.sample, member.seed)
        np.testing.assert_allclose(result.losses, lone.losses, rtol=RTOL, atol=ATOL)
    (key,) = graphs
    assert set(graphs[key].broken) == {Mode.TOGETHER, Mode.ALONE}


def test_the_example_plugins_optimizer_and_schedule_train_in_a_population(task, monkeypatch):
    monkeypatch.setenv("TUNER_LOAD_PLUGINS", "")
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    registry = load_plugins(["tuner_example_plugin"])
    check_members(task, registry.optimizers["signum"], registry.schedules["inverse_sqrt"])


def test_members_must_share_a_graph(registry, task):
    optimizer, schedule = registry.optimizers["adam"], registry.schedules["cosine"]
    first, second = samples(optimizer, schedule, 2)
    other = dataclasses.replace(
        second, optimizer_params={**second.optimizer_params, "bias_correction": True}
    )
    with pytest.raises(ValueError, match="share a graph key"):
        together(task, optimizer, [Member(schedule, first, 1), Member(schedule, other, 2)])


def test_a_set_stop_interrupts_every_member(registry, task):
    optimizer, schedule = registry.optimizers["adam"], registry.schedules["cosine"]
    stop = threading.Event()
    members = [Member(schedule, s, seed=i) for i, s in enumerate(samples(optimizer, schedule, 3))]

    def on_step(done):
        if done == 7:
            stop.set()

    results = train(
        task,
        optimizer,
        members,
        steps=STEPS,
        batch_size=16,
        eval_every=EVERY,
        graphs=GraphCache(),
        on_step=on_step,
        stop=stop,
    )
    assert [r.outcome for r in results] == [Outcome.INTERRUPTED] * 3
    assert [r.reason for r in results] == ["interrupted at step 7"] * 3
    assert [len(r.losses) for r in results] == [7] * 3


def test_the_last_member_running_steps_alone_with_the_step_a_lone_trial_built(registry, task):
    optimizer, schedule = registry.optimizers["adam"], registry.schedules["cosine"]
    drawn = samples(optimizer, schedule, 4)
    graphs = GraphCache()
    first = together(task, optimizer, [Member(schedule, drawn[0], seed=9)], graphs)
    hooks = [lambda step, value: step >= EVERY, None, lambda step, value: step >= EVERY]
    members = [
        Member(schedule, s, seed=10 + i, on_eval=h)
        for i, (s, h) in enumerate(zip(drawn[1:], hooks, strict=True))
    ]

    results = together(task, optimizer, members, graphs)

    assert first[0].outcome is Outcome.COMPLETE
    assert [r.outcome for r in results] == [Outcome.PRUNED, Outcome.COMPLETE, Outcome.PRUNED]
    assert_same(results[1], alone(task, optimizer, schedule, members[1].sample, 11))
    # The lone trial's step, then the stack of three: no stack of one was traced.
    (graph,) = graphs.values()
    assert graph.traces == 2
