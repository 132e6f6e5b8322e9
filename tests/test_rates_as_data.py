"""A trial's schedule is computed before it trains and its compiled step reads each step's rate
from that table, so that the schedule, its settings and the warmup select no graph. It trains
as the optimizer built on the schedule itself does, in MLX's own loop: for every built-in
optimizer and schedule, with and without warmup, alone and as a member of a population whose
members all have other schedules, the same losses, rates and final weights over 50 steps."""

import itertools
from pathlib import Path

import mlx.optimizers as optim
import numpy as np
import pytest
from hand_loop import train_by_hand
from mlx.utils import tree_flatten

from tuner import OptimizerSpec
from tuner.graphs import GraphCache
from tuner.plugins import load_plugins
from tuner.space import Sample
from tuner.train import run_trial, train
from tuner.trial import Member
from tuner_builtins import tasks

EXAMPLES = Path(__file__).parent.parent / "examples"
SINGLE_FILE = str(EXAMPLES / "single_file_plugin.py")
REGISTRY = load_plugins()
BUILTIN = [
    name
    for name in REGISTRY.optimizers
    if REGISTRY.plugin_of("optimizer", name).name.startswith("tuner_builtins")
]
SCHEDULES = ["constant", "linear", "cosine", "exponential", "step", "wsd"]
STEPS, BATCH = 50, 16
# float32: the compiled step fuses the arithmetic that MLX's loop runs op by op, and the table
# holds the schedule's rates computed for every step at once rather than at each.
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def task():
    return tasks.build_synthetic()


def middle(spec):
    return {name: param.midpoint() for name, param in spec.space.items()}


def settings(optimizer, schedule, warmup):
    lr = optimizer.defaults[0].lr if optimizer.defaults else 3e-3
    return Sample(optimizer.name, middle(optimizer), schedule.name, middle(schedule), lr, warmup)


def assert_as_by_hand(result, by_hand):
    model, _, losses, lrs = by_hand
    assert result.reason is None and result.compiled and result.steps == STEPS
    np.testing.assert_allclose(result.lrs, lrs, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(result.losses, losses, rtol=RTOL, atol=ATOL)
    ours, theirs = tree_flatten(result.weights), tree_flatten(model.parameters())
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    for (_, a), (_, b) in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=RTOL, atol=ATOL)


def assert_each_as_by_hand(task, optimizer, members, graphs):
    """``members`` trained together, and each alone, as MLX's own loop trains it."""
    run = {"steps": STEPS, "batch_size": BATCH, "eval_every": STEPS, "graphs": graphs}
    together = train(task, optimizer, members, **run)
    for member, member_result in zip(members, together, strict=True):
        lone = run_trial(task, optimizer, member.schedule, member.sample, seed=member.seed, **run)
        by_hand = train_by_hand(
            task, optimizer, member.schedule, member.sample, steps=STEPS, batch_size=BATCH,
            seed=member.seed,
        )  # fmt: skip
        assert_as_by_hand(lone, by_hand)
        assert_as_by_hand(member_result, by_hand)


def test_the_list_above_is_every_builtin_optimizer_and_schedule():
    assert len(BUILTIN) == 12
    assert set(SCHEDULES) == set(REGISTRY.schedules)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_schedule_with_and_without_warmup_trains_as_in_mlxs_own_loop(task, name):
    optimizer = REGISTRY.optimizers[name]
    members = [
        Member(
            REGISTRY.schedules[schedule], settings(optimizer, REGISTRY.schedules[schedule], w), i
        )
        for i, (schedule, w) in enumerate(itertools.product(SCHEDULES, (0.0, 0.1)))
    ]
    graphs = GraphCache()
    assert_each_as_by_hand(task, optimizer, members, graphs)
    # Twelve schedules and warmups, one graph: its step traced for 12 members and for one.
    assert len(graphs) == 1
    (graph,) = graphs.values()
    assert graph.traces == 2


class AheadSGD(optim.SGD):
    """SGD at the mean of its schedule's rate at this step and the next: an optimizer that
    asks its schedule for another step's rate than the one MLX set."""

    def apply_single(self, gradient, parameter, state):
        schedule = self._schedulers["learning_rate"]
        rate = (schedule(self.step - 1) + schedule(self.step)) / 2
        return parameter - rate.astype(gradient.dtype) * gradient


AHEAD = OptimizerSpec("t-ahead", lambda learning_rate: AheadSGD(learning_rate), {})


@pytest.mark.parametrize(
    ("plugin", "optimizer", "schedule"),
    [
        ("tuner_example_plugin", "signum", "inverse_sqrt"),
        (SINGLE_FILE, "adamw_bc", "polynomial"),
        (None, AHEAD, "cosine"),
    ],
)
def test_third_party_optimizers_and_schedules_train_as_in_mlxs_own_loop(
    task, monkeypatch, plugin, optimizer, schedule
):
    monkeypatch.syspath_prepend(str(EXAMPLES / "example-plugin"))
    registry = load_plugins([plugin] if plugin else [])
    optimizer = registry.optimizers[optimizer] if isinstance(optimizer, str) else optimizer
    schedule = registry.schedules[schedule]
    members = [
        Member(schedule, settings(optimizer, schedule, warmup), seed)
        for seed, warmup in enumerate((0.0, 0.1, 0.05))
    ]
    assert_each_as_by_hand(task, optimizer, members, GraphCache())
