"""`tuner search --population K` end to end: each member is its own Optuna trial and its own
record, the same as the trial trained alone but for the population it names; K is checked
before anything is written; workers train populations side by side."""

import json
import subprocess
from collections import defaultdict

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from helpers import FAST, TUNER, tuner

from tuner import open_results
from tuner.cli import cli
from tuner.companions import auto_size
from tuner.graphs import GraphCache
from tuner.plugins import load_plugins
from tuner.space import Sample
from tuner.train import run_trial

# Sampled trials alone: no textbook defaults first, no confirmation runs after.
SAMPLED = [*FAST, "--confirm", "0", "--no-defaults"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def search(storage, *args):
    return tuner("search", "--storage", storage, *SAMPLED, *args)


def populations(storage, study):
    with open_results(storage) as results:
        trials = results.trials(study)
    groups = defaultdict(list)
    for trial in trials:
        if trial.population is not None:
            groups[trial.population].append(trial)
    return trials, groups


def test_members_are_trials_of_one_family_each_recorded_as_alone(sqlite_url):
    result = search(
        sqlite_url, "--trials", "12", "--study", "p", "--population", "4", "--pruner", "none"
    )

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="p", storage=sqlite_url)
    assert len(study.get_trials(states=FINISHED)) == 12
    trials, groups = populations(sqlite_url, "p")
    assert len(trials) == 12
    assert groups, "no population trained"
    for first, members in groups.items():
        assert first == min(m.number for m in members)
        assert 2 <= len(members) <= 4
        choices = ("adam.bias_correction", "sgd.nesterov")
        family = {(m.optimizer, *(m.params.get(c) for c in choices)) for m in members}
        assert len(family) == 1
        assert len({m.params["lr"] for m in members}) == len(members)
    # The schedule and the warmup select no graph: members differ in them.
    assert any(len({m.params["warmup"] for m in members}) > 1 for members in groups.values())
    for trial in study.trials:
        with open_results(sqlite_url) as results:
            recorded = results.trial("p", trial.number).population
        assert trial.user_attrs.get("population") == recorded

    # A member's record is the trial's alone: same losses, learning rates, evals and outcome.
    member = next(iter(groups.values()))[0]
    with open_results(sqlite_url) as results:
        detail = results.trial("p", member.number)
    registry = load_plugins()
    sample = Sample.from_params(detail.params)
    lone = run_trial(
        registry.tasks["synthetic"].build(),
        registry.optimizers[sample.optimizer],
        registry.schedules[sample.schedule],
        sample,
        steps=100,
        batch_size=32,
        eval_every=25,
        seed=detail.seed,
        graphs=GraphCache(),
    )
    assert lone.outcome == detail.outcome
    np.testing.assert_allclose(detail.losses, lone.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(detail.lrs, lone.lrs, rtol=1e-5, atol=1e-6)
    assert [e["step"] for e in detail.evals] == [e["step"] for e in lone.evals]
    for stored, alone in zip(detail.evals, lone.evals, strict=True):
        assert stored == {k: pytest.approx(v, rel=1e-5) for k, v in alone.items()}


def test_show_and_export_of_a_member_differ_from_an_alone_trial_only_in_population(sqlite_url):
    assert search(sqlite_url, "--trials", "4", "--study", "p", "--population", "4").exit_code == 0
    assert search(sqlite_url, "--trials", "5", "--study", "p", "--population", "1").exit_code == 0
    trials, groups = populations(sqlite_url, "p")
    (members,) = groups.values()
    lone = next(t for t in trials if t.population is None)

    def shown(number, *options):
        result = CliRunner().invoke(
            cli, ["show", "p", str(number), "--storage", sqlite_url, *options]
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    member, alone = (
        json.loads(shown(members[0].number, "--format", "json")),
        json.loads(shown(lone.number, "--format", "json")),
    )
    assert set(member) == set(alone)
    assert member["population"] == members[0].number
    assert alone["population"] is None
    assert f"population  {members[0].number} " in shown(members[1].number)
    assert not [line for line in shown(lone.number).splitlines() if line.startswith("population")]
    listed = CliRunner().invoke(cli, ["trials", "p", "--storage", sqlite_url, "--format", "json"])
    by_number = {t["number"]: t for t in json.loads(listed.stdout)}
    assert {by_number[m.number]["population"] for m in members} == {members[0].number}

    def exported(number):
        options = ["--trial", str(number), "--storage", sqlite_url, "--format", "json"]
        result = CliRunner().invoke(cli, ["export", "p", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert set(exported(members[1].number)) == set(exported(lone.number))


def test_population_one_trains_one_trial_at_a_time(sqlite_url):
    assert search(sqlite_url, "--trials", "6", "--study", "p", "--population", "1").exit_code == 0
    trials, groups = populations(sqlite_url, "p")
    assert len(trials) == 6
    assert not groups


@pytest.mark.parametrize("given", ["0", "-1", "two", "1.5", ""])
def test_a_bad_population_is_refused_in_one_line_before_anything_is_written(tmp_path, given):
    db = tmp_path / "tuner.db"
    result = subprocess.run(
        [TUNER, "search", "--storage", f"sqlite:///{db}", "--population", given],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--population" in result.stderr
    assert "auto" in result.stderr
    assert not db.exists()


def test_workers_each_train_populations_and_the_count_is_exact(sqlite_url):
    result = subprocess.run(
        [
            TUNER,
            "search",
            "--storage",
            sqlite_url,
            *SAMPLED,
            "--trials",
            "16",
            "--study",
            "w",
            "--jobs",
            "2",
            "--population",
            "4",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="w", storage=sqlite_url)
    states = [t.state for t in study.trials]
    assert (
        states.count(optuna.trial.TrialState.COMPLETE)
        + states.count(optuna.trial.TrialState.PRUNED)
        == 16
    )
    assert optuna.trial.TrialState.RUNNING not in states
    _, groups = populations(sqlite_url, "w")
    assert groups
    assert all(len(members) <= 4 for members in groups.values())


def test_members_are_drawn_apart_not_all_near_the_samplers_one_best_guess(sqlite_url):
    # Past TPE's ten random startup trials, members drawn one after another from the same
    # finished trials would all land near its best guess, trying one setting eight times.
    result = search(
        sqlite_url, "--trials", "48", "--study", "p", "--population", "8", "--seed", "0"
    )
    assert result.exit_code == 0, result.output

    _, groups = populations(sqlite_url, "p")
    spreads = [
        max(m.params["lr"] for m in members) / min(m.params["lr"] for m in members)
        for first, members in groups.items()
        if first >= 16 and len(members) == 8
    ]
    # Drawn near one guess, one population's rates were within a factor of 1.7.
    assert len(spreads) >= 3
    assert min(spreads) > 10, spreads


def test_auto_grows_the_population_with_the_finished_trials_to_the_devices_bound():
    digits = 64 * 128 + 128 + 128 * 10 + 10  # the digits MLP's weights and biases
    sizes = {finished: auto_size(digits, "cpu", finished) for finished in (0, 32, 63, 64, 128)}
    # None of two: they would train barely faster than one after the other.
    assert sizes == {0: 1, 32: 1, 63: 1, 64: 4, 128: 8}
    assert auto_size(digits, "cpu", 10_000) == 16
    assert auto_size(digits, "gpu", 10_000) == 64
    # A model of a million numbers fills a CPU alone.
    assert auto_size(1_000_000, "cpu", 10_000) == 1


def test_auto_trains_a_short_search_one_trial_at_a_time(sqlite_url):
    result = search(sqlite_url, "--trials", "20", "--study", "p")
    assert result.exit_code == 0, result.output
    trials, groups = populations(sqlite_url, "p")
    assert len(trials) == 20
    assert not groups
