"""One ranking: wherever Python picks a best trial (the status line of a search, a report's
answer and its best so far), it ranks as the SQL of ``tuner best`` and ``tuner trials --sort
value`` does, on a stored study with every kind of trial and value."""

import math
import random
from datetime import UTC, datetime

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from tuner import open_results
from tuner.db import WORKER_ATTR, CurveRow, StudyRow, TrialRow, open_store, upgrade
from tuner.report.answer import ranked_complete
from tuner.report.figures import best_so_far
from tuner.report.read import read_study
from tuner.results import FINISHED, Outcome, ranking
from tuner.study import _take_stock
from tuner.watcher import Progress

# Few values, so that trials tie; and every non-finite one.
VALUES = [0.1, 0.2, 0.3, -0.2, math.inf, -math.inf, math.nan, None]
# What each kind of trial may end with: Optuna refuses a complete trial a NaN value, or none,
# and one that failed or was interrupted has no value.
ENDINGS = {
    Outcome.COMPLETE: [0.1, 0.2, 0.3, -0.2, math.inf, -math.inf],
    Outcome.PRUNED: VALUES,
    Outcome.DIVERGED: VALUES,
    Outcome.FAILED: [None],
    Outcome.INTERRUPTED: [None],
}
CHOICE = {"optimizer": CategoricalDistribution(["adam", "sgd"])}


def trials(count):
    """``count`` (outcome, value, recorded) drawn with a fixed seed: the trials a study holds.
    Those without a record of tuner's are known to Optuna alone: a running trial, one that
    failed before its record was written, or one that another worker told Optuna of and was
    killed before it wrote the record."""
    draw = random.Random(0)
    drawn = []
    for _ in range(count):
        outcome = draw.choice([*ENDINGS, Outcome.RUNNING])
        value = draw.choice(ENDINGS.get(outcome, [None]))
        unrecorded = outcome is Outcome.RUNNING or (
            outcome in (Outcome.FAILED, Outcome.COMPLETE) and draw.random() < 0.2
        )
        drawn.append((outcome, value, not unrecorded))
    return drawn


def stored(storage, direction):
    """A study of ``direction`` stored as a search stores one: Optuna's trials, and tuner's
    records of those that ended. Its name."""
    upgrade(storage)
    store = open_store(storage)
    space = {"optimizers": {"adam": {}, "sgd": {}}, "schedules": {"constant": {}}}
    settings = {"metric": "val_loss", "direction": direction, "space": space}
    store.save_study(
        StudyRow(
            name="r",
            task="synthetic",
            settings=settings,
            plugins={},
            versions={},
            device="cpu",
            seed=0,
            command="tuner search",
        )
    )
    study = optuna.create_study(study_name="r", storage=storage, direction=direction)
    for number, (outcome, value, recorded) in enumerate(trials(60)):
        optimizer = "adam" if number % 3 else "sgd"
        complete = outcome is Outcome.COMPLETE
        study.add_trial(
            create_trial(
                state=TrialState[outcome.optuna_state],
                value=value if complete else None,
                params={"optimizer": optimizer},
                distributions=CHOICE,
                system_attrs={WORKER_ATTR: "here 1"},
            )
        )
        if recorded:
            store.save_trial("r", row(number, optimizer, value, outcome))
    store.close()
    return "r"


def row(number, optimizer, value, outcome):
    return TrialRow(
        number=number,
        optimizer=optimizer,
        schedule="constant",
        params={"lr": 0.1, "optimizer": optimizer, "schedule": "constant"},
        seed=number,
        steps=10,
        duration_s=1.0,
        step_time_s=0.1,
        compiled=True,
        metrics={},
        value=value,
        outcome=str(outcome),
        curve=CurveRow(losses=[], lrs=[], evals=[]),
        finished_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def numbers(trials):
    return [t.number for t in trials]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_python_key_ranks_as_the_sql_does(storage_url, direction):
    name = stored(storage_url, direction)

    with open_results(storage_url) as results:
        by_sql = results.trials(name, sort="value")
        by_number = results.trials(name, sort="number")
        best = results.best(name, 100)

    key = ranking(direction)
    assert numbers(by_sql) == numbers(sorted(by_number, key=key))
    assert numbers(best) == numbers(
        sorted((t for t in by_number if t.outcome in FINISHED), key=key)
    )
    # The study holds what the ranking has to order: ties, non-finite values, every outcome.
    values = [t.value for t in by_number if t.value is not None]
    assert len(values) > len(set(values))
    assert any(math.isnan(v) for v in values) and math.inf in values and -math.inf in values
    assert {t.outcome for t in by_number} == set(Outcome)
    assert numbers(by_sql) != numbers(by_number)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_status_line_and_the_report_name_the_best_that_tuner_best_does(sqlite_url, direction):
    name = stored(sqlite_url, direction)
    progress = Progress(total=60)

    _take_stock(optuna.load_study(study_name=name, storage=sqlite_url), progress)
    with open_results(sqlite_url) as results:
        complete = results.trials(name, sort="value", state="complete")
        data = read_study(results, name)

    # A complete trial's infinite value, in either direction, ranks after every finite one.
    assert {math.inf, -math.inf} <= {t.value for t in complete}
    assert progress.best.number == complete[0].number
    assert math.isfinite(progress.best.value)
    finite = [t for t in complete if math.isfinite(t.value)]
    assert numbers(ranked_complete(data)) == numbers(finite)
    assert best_so_far(data)[-1] == finite[0].value
