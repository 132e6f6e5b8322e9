"""Trials that another Optuna client writes into a study of tuner's (a script's
``study.optimize`` or ``study.add_trial`` on the same storage): tuner has no record of them,
and leaves them out of every count and ranking, saying so in one line."""

import json

import optuna
import pytest
from helpers import tuner
from stored import stored_trials

from tuner.query import open_results

ONE_SCHEDULE = ["--task", "synthetic", "--optimizers", "adam,sgd", "--schedules", "constant"]
NOTE = (
    "Note: 3 trials of study s written by another Optuna client are left out: tuner has no "
    "record of them, so it neither counts nor ranks them."
)


def search(url, *args):
    base = ["search", *ONE_SCHEDULE, "--study", "s", "--confirm", "0", "--jobs", "1"]
    return tuner(*base, *args, storage=url)


@pytest.fixture
def mixed(tmp_path):
    """A study of 6 tuner trials, then 3 that a plain Optuna script wrote, each better than
    any of tuner's: 2 by study.optimize, 1 by study.add_trial."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    assert search(url, "--trials", "6").exit_code == 0
    theirs = optuna.load_study(study_name="s", storage=url)
    theirs.optimize(lambda trial: -1000.0 - trial.suggest_float("x", 0, 1), n_trials=2)
    theirs.add_trial(optuna.trial.create_trial(value=-5000.0))
    return url


def test_best_studies_and_compare_leave_out_another_clients_trials_and_say_so(mixed):
    best = tuner("best", "s", storage=mixed)
    studies = tuner("studies", storage=mixed)
    compare = tuner("compare", "s", storage=mixed)
    listed = tuner("trials", "s", storage=mixed)

    assert best.exit_code == 0, best.output
    assert "Top 5 of 6 finished trials" in best.stdout
    table = [line.split() for line in best.stdout.splitlines() if line[:1].isdigit()]
    assert {row[3] for row in table} <= {"adam", "sgd"}
    assert len(table) == 5, best.stdout
    assert "-1000" not in best.stdout and "-5000" not in best.stdout
    assert " ".join(best.stdout.split()).endswith(" ".join(NOTE.split()))
    row = next(line for line in studies.stdout.splitlines() if line.startswith("s "))
    assert "None" not in row and " 6 " in row, studies.stdout
    assert " ".join(NOTE.split()) in " ".join(studies.stdout.split())
    groups = [line.split()[0] for line in compare.stdout.splitlines()[2:4]]
    assert sorted(groups) == ["adam", "sgd"], compare.stdout
    assert " ".join(NOTE.split()) in " ".join(compare.stdout.split())
    assert sum(line[:1].isdigit() for line in listed.stdout.splitlines()) == 6, listed.stdout


def test_the_json_keeps_its_form_and_counts_them_apart(mixed):
    best = tuner("best", "s", "--format", "json", storage=mixed)
    (study,) = json.loads(tuner("studies", "--format", "json", storage=mixed).stdout)

    assert {trial["optimizer"] for trial in json.loads(best.stdout)} <= {"adam", "sgd"}
    assert " ".join(best.stderr.split()) == " ".join(NOTE.split())
    assert study["trials"]["total"] == 6 and study["foreign_trials"] == 3
    assert study["best"]["optimizer"] in ("adam", "sgd")


def test_a_search_continued_counts_tuners_trials_alone_and_records_none_of_theirs(mixed):
    result = search(mixed, "--trials", "8")

    assert result.exit_code == 0, result.output
    with open_results(mixed) as results:
        summary = results.study("s")
        complete = results.complete_trials("s")
    assert summary.counts.finished == 8 and summary.foreign == 3
    assert summary.best.optimizer in ("adam", "sgd")
    assert all(trial.value > -1000 for trial in complete)
    assert len(stored_trials(mixed, "s")) == 8
    assert "Top 5 of 8 finished trials" in result.stdout
    assert " ".join(NOTE.split()) in " ".join(result.stdout.split())
