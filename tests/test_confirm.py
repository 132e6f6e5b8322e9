"""Confirmation runs: a search's best configurations trained again with fresh seeds, stored
apart from its trials, and the verdict on the winner's lead."""

import hashlib
import json
from pathlib import Path

import optuna
import pytest
from helpers import tuner
from stored import stored_confirmations, stored_trials

from tuner import open_results
from tuner.compare import judge_confirmed
from tuner.db import ConfirmationRow, open_store
from tuner.report.answer import headline
from tuner.results import Confirmed, Outcome, Run, TrialSummary

SEARCH = ["search", "--task", "synthetic", "--optimizers", "adam,sgd"]
SEARCH += ["--schedules", "constant,cosine", "--study", "s"]


def search(storage, *args):
    return tuner(*SEARCH, "--storage", storage, *args)


def test_a_search_confirms_its_best_configurations_apart_from_its_trials(storage_url):
    result = search(storage_url, "--trials", "8", "--confirm", "2x2")

    assert result.exit_code == 0, result.output
    runs = stored_confirmations(storage_url, "s")
    with open_results(storage_url) as results:
        confirmation = results.confirmation("s")
        picked = results.to_confirm("s", 2)
        counts = results.study("s").counts
    # The two best complete trials of different optimizer and schedule pairs, two seeds each,
    # both seeds the same for each configuration.
    assert {c.trial.number for c in confirmation.configs} == {t.number for t in picked}
    assert len({(t.optimizer, t.schedule) for t in picked}) == 2
    assert sorted(r.trial for r in runs) == sorted(t.number for t in picked for _ in range(2))
    assert len({r.seed for r in runs}) == 2
    # In full and unpruned, with the test set measured.
    assert {(r.steps, r.outcome) for r in runs} == {(100, "complete")}
    assert all(set(r.test_metrics) == {"test_loss", "test_r2"} for r in runs)
    assert len(runs[0].evals) == 4 and len(runs[0].losses) == 100
    # Counted apart from the trials, and unknown to Optuna, whose trials are the sampler's
    # only memory.
    optuna_trials = optuna.load_study(study_name="s", storage=storage_url).trials
    assert counts.total == len(optuna_trials) == len(stored_trials(storage_url, "s"))
    assert "Confirmed: the best configurations trained again" in result.stdout
    assert confirmation.verdict in result.stdout.replace("\n", " ")


def test_confirmation_runs_replay_and_are_not_run_twice(tmp_path):
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    for storage in (first, second):
        # The same seed, as without one each study draws its own.
        assert search(storage, "--trials", "6", "--confirm", "2x2", "--seed", "0").exit_code == 0

    def runs(storage):
        return [
            (r.trial, r.seed, r.value, r.test_metrics) for r in stored_confirmations(storage, "s")
        ]

    assert runs(first) == runs(second)
    again = tuner("confirm", "s", "--top", "2", "--seeds", "2", "--storage", first)
    assert again.exit_code == 0, again.output
    assert runs(first) == runs(second)
    more = tuner("confirm", "s", "--top", "2", "--seeds", "3", "--storage", first)
    assert more.exit_code == 0, more.output
    added = runs(first)[4:]
    assert len(added) == 2 and {seed for _, seed, _, _ in added}.isdisjoint(
        {seed for _, seed, _, _ in runs(second)}
    )


# adam against sgd at a rate too low for sgd: the same winner on every seed. adam against
# adamw without weight decay at a rate too low to learn: only the seeds differ.
CLEAR = ["--optimizers", "adam,sgd", "--space", "lr=0.001", "--space", "sgd.momentum=0.8"]
NONE = ["--optimizers", "adam,adamw", "--space", "lr=0.0001"]


@pytest.mark.parametrize(("args", "clear"), [(CLEAR, True), (NONE, False)])
def test_the_verdict_tells_a_clear_winner_from_none(sqlite_url, args, clear):
    result = tuner(
        "search", "--task", "synthetic", "--storage", sqlite_url, "--study", "v",
        "--trials", "4", "--schedules", "constant", "--space", "warmup=0", "--no-defaults",
        "--confirm", "2x3", "--seed", "0", "--jobs", "1", *args,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    with open_results(sqlite_url) as results:
        confirmation = results.confirmation("v")
    assert confirmation.clear is clear
    assert confirmation.winner.trial.optimizer == "adam" or not clear
    expected = "larger than the seed-to-seed noise" if clear else "within the seed-to-seed noise"
    assert expected in confirmation.verdict


def test_confirm_prints_json_that_says_what_each_run_measured(sqlite_url):
    assert search(sqlite_url, "--trials", "5", "--confirm", "0").exit_code == 0
    assert stored_confirmations(sqlite_url, "s") == []

    result = tuner("confirm", "s", "--top", "1", "--seeds", "2", "--storage", sqlite_url,
                   "--format", "json")  # fmt: skip

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["study"] == "s" and data["metric"] == "val_loss"
    (config,) = data["configs"]
    assert len(config["runs"]) == 2
    assert config["mean"] == pytest.approx(sum(r["value"] for r in config["runs"]) / 2)
    assert "Only" in data["verdict"] and data["clear"] is None


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--confirm", "3y3"], "Invalid value for '--confirm': '3y3': give KxS"),
        (["search", "--confirm", "0x3"], "give KxS"),
        (["confirm", "nope"], "no study 'nope'"),
        (["confirm", "s", "--top", "0"], "Invalid value for '--top'"),
        (["confirm", "s", "--seeds", "x"], "Invalid value for '--seeds'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, args, message):
    db = tmp_path / "tuner.db"
    storage = f"sqlite:///{db}"
    if args[0] == "confirm":
        assert search(storage, "--trials", "3", "--confirm", "0").exit_code == 0
    before = digest(db)

    result = tuner(*args, "--storage", storage)

    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert digest(db) == before


def trial(number, optimizer):
    return TrialSummary(
        number=number, outcome=Outcome.COMPLETE, value=None, optimizer=optimizer,
        schedule="constant", params={}, duration_s=1.0, steps=10, metrics={}, reason=None,
        default=None, finished_at=None, population=None,
    )  # fmt: skip


def runs(*values, outcome=Outcome.COMPLETE):
    return [
        Run(
            seed=i,
            outcome=outcome,
            value=v,
            steps=10,
            duration_s=1.0,
            metrics={},
            test_metrics={"test_loss": v},
            reason=None,
        )
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("a", "b", "direction", "clear", "words"),
    [
        (runs(1.0, 1.1, 0.9), runs(2.0, 2.1, 1.9), "minimize", True, "larger than the"),
        (
            runs(1.0, 1.1, 0.9),
            runs(2.0, 2.1, 1.9),
            "maximize",
            True,
            "sgd+constant (trial 1) leads",
        ),
        (runs(1.0, 2.0, 0.5), runs(1.1, 2.1, 0.4), "minimize", False, "within the seed-to-seed"),
        (runs(1.0, 1.0), runs(2.0, 2.0), "minimize", True, "p = 0"),
        (runs(1.0), runs(2.0, 2.1), "minimize", None, "too few complete runs"),
        (runs(1.0, 1.1), runs(2.0, outcome=Outcome.DIVERGED), "minimize", None, "Only adam"),
    ],
)
def test_the_verdict_tests_the_two_best_means(a, b, direction, clear, words):
    judged = judge_confirmed(
        "s", "val_loss", direction, [Confirmed(trial(0, "adam"), a), Confirmed(trial(1, "sgd"), b)]
    )

    assert judged.clear is clear
    assert words in judged.verdict


UNTESTED = "Confirmed leader, its lead untested"


@pytest.mark.parametrize(
    ("a", "b", "title"),
    [
        (runs(1.0, 1.1, 0.9), runs(2.0, 2.1, 1.9), "Confirmed winner"),
        (runs(1.0, 2.0, 0.5), runs(1.1, 2.1, 0.4), "Confirmed leader, within the noise"),
        (runs(1.0), runs(2.0, 2.1), UNTESTED),
        (runs(1.0, 1.1), runs(2.0, outcome=Outcome.DIVERGED), UNTESTED),
    ],
)
def test_the_report_calls_the_leader_a_winner_only_when_its_lead_beats_the_noise(a, b, title):
    judged = judge_confirmed(
        "s", "val_loss", "minimize", [Confirmed(trial(0, "adam"), a), Confirmed(trial(1, "sgd"), b)]
    )

    assert headline(judged) == title


def test_a_study_without_confirmation_runs_says_so(sqlite_url):
    assert search(sqlite_url, "--trials", "3", "--confirm", "0").exit_code == 0
    with open_results(sqlite_url) as results:
        confirmation = results.confirmation("s")
    assert (confirmation.configs, confirmation.clear) == ([], None)
    assert confirmation.verdict == "No configuration of study s has been confirmed yet."


def test_the_runs_of_a_diverging_configuration_count_apart_from_its_mean():
    config = Confirmed(
        trial(0, "adam"), [*runs(1.0, 3.0), *runs(float("nan"), outcome=Outcome.DIVERGED)]
    )

    assert (config.mean, config.values) == (2.0, [1.0, 3.0])
    assert config.test == {"test_loss": 2.0}


def test_the_readers_know_confirmation_runs_and_export_takes_the_confirmed_winner(sqlite_url):
    assert search(sqlite_url, "--trials", "8", "--confirm", "0").exit_code == 0
    with open_results(sqlite_url) as results:
        best, second = results.to_confirm("s", 2)
    # The search's second-best configuration wins its confirmation runs: export takes it.
    store = open_store(sqlite_url)
    for number, values in ((best.number, (0.5, 0.6)), (second.number, (0.1, 0.2))):
        for seed, value in enumerate(values):
            store.save_confirmation("s", row(number, seed, value))
    store.close()

    export = tuner("export", "s", "--format", "json", "--storage", sqlite_url)
    exported = json.loads(export.stdout)
    shown = json.loads(
        tuner("show", "s", second.number, "--format", "json", "--storage", sqlite_url).stdout
    )
    compared = json.loads(tuner("compare", "s", "--format", "json", "--storage", sqlite_url).stdout)
    table = tuner("best", "s", "--storage", sqlite_url).stdout
    narrowed = tuner("best", "s", "--optimizer", best.optimizer, "--storage", sqlite_url).stdout

    assert exported["source"]["trial"] == second.number
    assert export.stderr.startswith(f"Note: trial {second.number} is the confirmed winner: ")
    confirmed = exported["source"]["confirmed"]
    assert confirmed.pop("test") == {"test_loss": pytest.approx(0.15)}
    assert confirmed == pytest.approx({"mean": 0.15, "std": 0.0707107, "runs": 2})
    assert shown["confirmation"]["mean"] == pytest.approx(0.15)
    assert [c["trial"] for c in compared["confirmation"]["configs"]] == [second.number, best.number]
    assert "Confirmed: the best configurations trained again" in table
    assert f"(trial {second.number}) leads: mean val_loss 0.15" in table.replace("\n", " ")
    # The confirmation is the whole study's: not beside one optimizer's trials.
    assert f"with optimizer {best.optimizer}" in narrowed and "Confirmed" not in narrowed


def row(trial, seed, value):
    return ConfirmationRow(
        trial=trial, seed=seed, steps=100, duration_s=0.1, metrics={"val_loss": value},
        test_metrics={"test_loss": value}, value=value, outcome="complete", losses=[1.0],
        lrs=[0.1], evals=[],
    )  # fmt: skip


def test_a_second_worker_stores_no_confirmation_run_twice(sqlite_url):
    assert search(sqlite_url, "--trials", "3", "--confirm", "0").exit_code == 0
    store = open_store(sqlite_url)
    try:
        assert store.save_confirmation("s", row(0, 7, 0.5)) is True
        assert store.save_confirmation("s", row(0, 7, 0.4)) is False
    finally:
        store.close()
    assert [r.value for r in stored_confirmations(sqlite_url, "s")] == [0.5]


def test_a_confirmation_run_that_raises_is_recorded_as_failed_and_the_rest_go_on(sqlite_url):
    plugin = Path(__file__).parent / "search_plugins" / "sealed_test_set.py"

    result = tuner(
        "search", "--task", "sealed", "--plugin", plugin, "--storage", sqlite_url,
        "--study", "s", "--trials", "3", "--confirm", "2x2",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    runs = stored_confirmations(sqlite_url, "s")
    assert len(runs) == 4
    assert {(r.outcome, r.reason) for r in runs} == {
        ("failed", "RuntimeError: a trial read the test set")
    }
    assert "No confirmation run completed" in result.stdout


def test_confirm_on_a_study_with_no_complete_trial_says_there_is_nothing_to_confirm(sqlite_url):
    plugin = Path(__file__).parent / "search_plugins" / "never_builds.py"
    args = ["--plugin", plugin, "--storage", sqlite_url]
    assert tuner("search", "--task", "broken", "--study", "f", *args).exit_code == 1

    confirmed = tuner("confirm", "f", *args)

    assert confirmed.exit_code == 0, confirmed.output
    assert confirmed.stdout == "No configuration of study f has been confirmed yet.\n"
    assert stored_confirmations(sqlite_url, "f") == []
