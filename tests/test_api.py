"""`tuner.search`, the Python API that `tuner search` wraps: a registered task or one given by
its parts, the results read back, and the notebook-style example that uses it."""

import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest

import tuner
from tuner.errors import BadInput

EXAMPLE = Path(__file__).parent.parent / "examples" / "search_inline.py"


def halves():
    x = mx.random.normal((400, 4), key=mx.random.key(1))
    y = (x.sum(axis=1) > 0).astype(mx.int32)
    return {
        "model": lambda: nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)),
        "train": (x[:300], y[:300]),
        "valid": (x[300:], y[300:]),
        "loss": lambda model, x, y: nn.losses.cross_entropy(model(x), y, reduction="mean"),
    }


FAST = {"steps": 60, "optimizers": ["adam", "sgd"], "schedules": ["constant"]}


def test_a_task_given_by_its_parts_is_searched_and_read_back(sqlite_url):
    results = tuner.search(storage=sqlite_url, study="parts", trials=4, **FAST, **halves())

    summary = results.summary()
    assert (summary.name, summary.task, summary.counts.finished) == ("parts", "custom", 4)
    best = results.best(1)[0]
    assert best.optimizer in ("adam", "sgd")
    assert len(results.trial(best.number).losses) == best.steps
    # The confirmed winner is exported, which need not be the search's best trial.
    winner = results.confirmation().winner.trial
    source = results.export()["source"]
    assert (source["study"], source["trial"]) == ("parts", winner.number)
    assert type(results.optimizer()).__name__.lower() == winner.optimizer
    frame = results.to_dataframe()
    assert len(frame) == 4
    assert {"number", "optimizer", "value", "params.lr"} <= set(frame.columns)


def test_a_held_out_test_set_given_with_the_parts_is_read_by_confirmation_runs_alone(sqlite_url):
    x = mx.random.normal((100, 4), key=mx.random.key(2))
    test = (x, (x.sum(axis=1) > 0).astype(mx.int32))

    results = tuner.search(
        storage=sqlite_url, study="held", trials=3, confirm="1x2", test=test, **FAST, **halves()
    )

    (config,) = results.confirmation().configs
    assert [set(run.test_metrics) for run in config.runs] == [{"test_loss"}] * 2
    assert all(not trial.metrics.keys() & {"test_loss"} for trial in results.trials())


def test_running_it_again_continues_the_study(sqlite_url):
    tuner.search(storage=sqlite_url, study="again", trials=2, **FAST, **halves())

    results = tuner.search(storage=sqlite_url, study="again", trials=5, **FAST, **halves())

    assert results.summary().counts.finished == 5


def test_a_registered_task_is_named(sqlite_url):
    results = tuner.search("synthetic", storage=sqlite_url, study="named", trials=2, **FAST)

    assert results.summary().task == "synthetic"


def test_a_task_missing_a_part_is_refused_before_anything_is_written(tmp_path):
    parts = halves()
    del parts["loss"]

    with pytest.raises(BadInput, match="a task given by its parts needs loss too"):
        tuner.search(storage=f"sqlite:///{tmp_path / 't.db'}", **parts)

    assert not (tmp_path / "t.db").exists()


def test_the_notebook_example_runs_and_reads_its_results_back(tmp_path):
    result = subprocess.run(
        [sys.executable, EXAMPLE], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0].split()[0] for line in lines[:3]] == ["trial"] * 3
    assert "for 1000 steps" in result.stdout
    assert (tmp_path / "circle.db").exists()
