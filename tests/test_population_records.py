"""A trial that trained in a population reads back as one trained alone, but for its
``population``: in `tuner show`, `trials`, `best` and `export`, in every format.

Two databases hold the same study, trial for trial; in one, some of its trials trained in
populations. What the commands print of a trial is compared across the two.
"""

import json
from datetime import UTC, datetime

import optuna
import pytest
from helpers import printed

from tuner import open_results
from tuner.db import WORKER_ATTR, CurveRow, StudyRow, TrialRow, open_store

# Each trial's population: 2 to 5 trained together, and 6 to 21 with 23 and 25 (a second
# worker's trials came between them); the rest trained alone.
POPULATIONS = {n: 2 for n in range(2, 6)} | {n: 6 for n in [*range(6, 22), 23, 25]}
TRIALS = 26


def trial_row(number, population):
    """Trial ``number``, the same in both databases but for ``population``."""
    params = {
        "optimizer": "adam",
        "schedule": "constant",
        "lr": 0.001 * (number + 1),
        "warmup": 0.1,
        "adam.beta1": 0.9,
        "adam.beta2": 0.99,
        "adam.bias_correction": number % 2 == 0,
    }
    return TrialRow(
        number=number,
        optimizer="adam",
        schedule="constant",
        params=params,
        seed=100 + number,
        steps=20,
        duration_s=1.5,
        step_time_s=0.05,
        compiled=True,
        metrics={"val_loss": 1 / (number + 2), "r2": 0.5},
        value=1 / (number + 2),
        outcome="complete",
        curve=CurveRow(
            losses=[2.0 - step / 20 for step in range(20)],
            lrs=[params["lr"]] * 20,
            evals=[{"step": 10, "val_loss": 0.9}, {"step": 20, "val_loss": 1 / (number + 2)}],
        ),
        population=population,
        finished_at=datetime(2026, 12, 1, 10, 0, number, tzinfo=UTC),
    )


def stored(path, populations):
    """A study "s" of ``TRIALS`` complete trials, in the populations ``populations`` says."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    store.save_study(
        StudyRow(
            name="s",
            task="synthetic",
            settings={"metric": "val_loss", "direction": "minimize", "steps": 20},
            plugins={"tuner_builtins.optimizers": "0.1.0", "tuner_builtins.schedules": "0.1.0"},
            versions={"mlx": "0.30.0", "optuna": "4.5.0"},
            device="cpu",
            seed=0,
            command="tuner search --study s",
            created_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        )
    )
    for number in range(TRIALS):
        store.save_trial("s", trial_row(number, populations.get(number)))
    store.close()
    return url


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    return stored(tmp_path_factory.mktemp("alone") / "tuner.db", {})


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    return stored(tmp_path_factory.mktemp("together") / "tuner.db", POPULATIONS)


def test_a_stored_population_reads_back(together):
    with open_results(together) as results:
        assert [t.population for t in results.trials("s")] == [
            POPULATIONS.get(n) for n in range(TRIALS)
        ]
        assert results.trial("s", 3).population == 2
        assert results.trial("s", 0).population is None
        assert results.population("s", 2) == [2, 3, 4, 5]


def test_show_names_the_population_and_its_members_and_nothing_else_differs(alone, together):
    page = printed("show", "s", "3", storage=together).splitlines()
    by_itself = printed("show", "s", "3", storage=alone).splitlines()

    (added,) = [line for line in page if line not in by_itself]
    assert added == "population  2 (4 trials: 2, 3, 4, 5)"
    assert [line for line in page if line != added] == by_itself
    # The line follows the trial's timings.
    assert page[page.index(added) - 1].startswith("time ")


def test_a_long_population_is_written_in_ranges_within_80_columns(together):
    page = printed("show", "s", "23", storage=together).splitlines()

    assert "population  6 (18 trials: 6-21, 23, 25)" in page
    assert all(len(line) <= 80 for line in page if not line.startswith(("loss", "lr")))


def test_a_trial_trained_alone_shows_no_population(alone, together):
    assert "population" not in printed("show", "s", "22", storage=together)
    assert printed("show", "s", "22", storage=together) == printed("show", "s", "22", storage=alone)


def test_show_json_has_the_population_of_every_trial(alone, together):
    for number in (0, 3, 23):
        shown = json.loads(printed("show", "s", str(number), "--format", "json", storage=together))
        by_itself = json.loads(printed("show", "s", str(number), "--format", "json", storage=alone))

        assert by_itself["population"] is None
        assert shown == {**by_itself, "population": POPULATIONS.get(number)}


@pytest.mark.parametrize("command", [["trials", "s"], ["best", "s", "-n", str(TRIALS)]])
def test_the_listings_json_has_the_population_of_every_trial(alone, together, command):
    listed = json.loads(printed(*command, "--format", "json", storage=together))
    by_itself = json.loads(printed(*command, "--format", "json", storage=alone))

    assert len(listed) == TRIALS
    assert [t["population"] for t in by_itself] == [None] * TRIALS
    assert listed == [{**t, "population": POPULATIONS.get(t["number"])} for t in by_itself]


def test_the_csv_has_a_population_column_empty_for_a_trial_trained_alone(alone, together):
    rows = printed("trials", "s", "--format", "csv", storage=together).splitlines()
    by_itself = printed("trials", "s", "--format", "csv", storage=alone).splitlines()

    header = rows[0].split(",")
    assert header == by_itself[0].split(",") and "population" in header
    column = header.index("population")
    cells = [row.split(",") for row in rows[1:]]
    assert [cell[column] for cell in cells] == [str(POPULATIONS.get(n, "")) for n in range(TRIALS)]
    assert [row.split(",") for row in by_itself[1:]] == [
        [*cell[:column], "", *cell[column + 1 :]] for cell in cells
    ]


def test_the_json_export_says_which_population_the_trial_trained_in(alone, together):
    for number, population in ((3, 2), (22, None)):
        args = ["export", "s", "--trial", str(number), "--format", "json"]
        config = json.loads(printed(*args, storage=together))
        by_itself = json.loads(printed(*args, storage=alone))

        assert by_itself["source"]["population"] is None
        expected = {**by_itself, "source": {**by_itself["source"], "population": population}}
        assert config == expected


def test_the_python_export_says_which_population_the_trial_trained_in(alone, together):
    code = printed("export", "s", "--trial", "3", storage=together).splitlines()
    by_itself = printed("export", "s", "--trial", "3", storage=alone).splitlines()

    (added,) = [line for line in code if line not in by_itself]
    assert added == "# It trained together with the other trials of population 2."
    assert [line for line in code if line != added] == by_itself
    assert printed("export", "s", "--trial", "22", storage=together) == printed(
        "export", "s", "--trial", "22", storage=alone
    )


def test_a_running_member_only_optuna_knows_is_counted_in_its_population(tmp_path):
    url = stored(tmp_path / "tuner.db", POPULATIONS)
    study = optuna.create_study(study_name="s", storage=url)
    for _ in range(TRIALS):  # The trials that tuner recorded.
        study.add_trial(optuna.trial.create_trial(value=0.0))
    running = study.ask()
    # Named as tuner names its workers' trials: a trial without a name is another client's.
    running.storage.set_trial_system_attr(running._trial_id, WORKER_ATTR, "elsewhere 1")
    running.set_user_attr("population", 2)

    with open_results(url) as results:
        assert results.population("s", 2) == [2, 3, 4, 5, running.number]
    assert "population  2 (5 trials: 2, 3, 4, 5, 26)" in printed("show", "s", "3", storage=url)
