"""`tuner.search`, the Python API that `tuner search` wraps: a registered task or one given by
its parts, as a notebook holds them (numpy arrays, plain functions as metrics), checked before
anything is written; its progress bar; and the results read back, as a DataFrame and as the HTML
a notebook shows, drawn in headless Chromium."""

import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pandas as pd
import pytest
from test_report import browser  # noqa: F401

import tuner
from tuner import Metric, open_results
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


def test_optimizers_and_schedules_may_be_one_string_of_names_as_on_the_command_line(sqlite_url):
    results = tuner.search(
        "synthetic", storage=sqlite_url, study="s", trials=3, steps=60, confirm=0,
        optimizers="sgd", schedules=" constant,cosine ",
    )  # fmt: skip

    trials = results.trials()
    assert {t.optimizer for t in trials} == {"sgd"}
    assert {t.schedule for t in trials} <= {"constant", "cosine"}


def test_a_task_missing_a_part_is_refused_before_anything_is_written(tmp_path):
    parts = halves()
    del parts["loss"]

    with pytest.raises(BadInput, match="a task given by its parts needs loss too"):
        tuner.search(storage=f"sqlite:///{tmp_path / 't.db'}", **parts)

    assert not (tmp_path / "t.db").exists()


def test_metrics_without_the_parts_of_a_task_are_refused(tmp_path):
    with pytest.raises(BadInput, match=r"^metrics and test go with a task given by its parts"):
        tuner.search("synthetic", storage=f"sqlite:///{tmp_path / 't.db'}", metrics=[accuracy])

    assert not (tmp_path / "t.db").exists()


def test_the_notebook_example_runs_and_reads_its_results_back(tmp_path):
    # Without pandas, an extra that the README's install leaves out.
    run = "import runpy, sys; sys.modules['pandas'] = None; runpy.run_path(sys.argv[1], {})"
    result = subprocess.run(
        [sys.executable, "-c", run, EXAMPLE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0].split()[0] for line in lines[:3]] == ["trial"] * 3
    assert "for 1000 steps" in result.stdout
    assert (tmp_path / "circle.db").exists()


def numpy_halves():
    """The data of :func:`halves` as a notebook has it: numpy's float64 rows, int64 labels."""
    x = np.random.default_rng(1).normal(size=(400, 4))
    y = (x.sum(axis=1) > 0).astype(np.int64)
    return {**halves(), "train": (x[:300], y[:300]), "valid": (x[300:], y[300:])}


def accuracy(model, x, y):
    return (model(x).argmax(axis=1) == y).mean()


def test_numpy_arrays_are_searched_as_mlx_arrays(sqlite_url):
    results = tuner.search(
        storage=sqlite_url, study="np", trials=2, confirm=0, **FAST, **numpy_halves()
    )

    assert results.summary().counts.complete == 2
    assert all(trial.value < 1.0 for trial in results.trials())


@pytest.mark.parametrize(
    ("train", "said"),
    [
        ((np.array([["a"] * 4] * 300), np.zeros(300)), "train x holds strings, not numbers"),
        (([[1.0, 2.0], [3.0]], [0, 1]), "train x cannot be an array: ValueError: setting an"),
        ((np.zeros((300, 4)), np.zeros(200)), "train has 300 rows of x and 200 of y"),
        (np.zeros((300, 4)), "train is one array: give a pair (x, y)"),
        ((np.zeros((300, 4)), 1), "train y is a single number"),
        ({"x": 1}, "train must be a pair (x, y) of arrays, got a dict"),
    ],
)
def test_data_that_cannot_be_arrays_is_one_line_and_nothing_is_written(tmp_path, train, said):
    with pytest.raises(BadInput) as refused:
        tuner.search(storage=f"sqlite:///{tmp_path / 't.db'}", **{**numpy_halves(), "train": train})

    assert str(refused.value).startswith(said)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(
    "metrics",
    [[accuracy], {"accuracy": accuracy}, [Metric(accuracy)]],
    ids=["list", "mapping", "metric"],
)
def test_plain_functions_are_metrics_named_by_their_function(sqlite_url, metrics):
    results = tuner.search(
        storage=sqlite_url,
        study="m",
        trials=2,
        confirm=0,
        metrics=metrics,
        metric="accuracy",
        **FAST,
        **halves(),
    )

    assert results.summary().direction == "maximize"
    assert all(0 <= trial.metrics["accuracy"] <= 1 for trial in results.trials())


def error(model, x, y):
    return (model(x).argmax(axis=1) != y).mean()


def test_a_metric_to_minimize_is_asked_for(sqlite_url):
    metrics = {"error": Metric(error, "minimize")}

    results = tuner.search(
        storage=sqlite_url,
        study="e",
        trials=2,
        confirm=0,
        metrics=metrics,
        metric="error",
        **FAST,
        **halves(),
    )

    assert results.summary().direction == "minimize"


def per_row(model, x, y):
    return model(x)[:, 0]


def fails(model, x, y):
    raise ValueError("no such column")


@pytest.mark.parametrize(
    ("parts", "said"),
    [
        (
            {"metrics": [fails]},
            "metric 'fails' of task 'custom' fails on 4 validation rows: "
            "ValueError: no such column",
        ),
        (
            {"metrics": {"f": lambda model, x, y: 0.5}},
            "metric 'f' of task 'custom' returns a "
            "float on 4 validation rows, not an mx.array: compute it with mlx",
        ),
        (
            {"metrics": [per_row]},
            "metric 'per_row' of task 'custom' is an array of shape (4,) "
            "on 4 validation rows, not a scalar: reduce it, to its mean say",
        ),
        (
            {"metrics": [lambda model, x, y: 1]},
            "a metric <lambda> has no name of its own: give metrics={'name': fn}",
        ),
        (
            {"metrics": [Metric(accuracy, "max")]},
            "metric 'accuracy' of task 'custom' has direction 'max': give maximize or minimize",
        ),
        (
            {"model": lambda: 1 / 0},
            "the model of task 'custom' cannot be made: ZeroDivisionError: division by zero",
        ),
        (
            {"model": lambda: nn.Linear},
            "the model of task 'custom' is a type, not an "
            "mlx.nn.Module: give a function that returns a new model",
        ),
    ],
)
def test_a_callable_that_cannot_run_is_refused_before_anything_is_written(tmp_path, parts, said):
    with pytest.raises(BadInput) as refused:
        tuner.search(storage=f"sqlite:///{tmp_path / 't.db'}", **{**halves(), **parts})

    assert str(refused.value) == said
    assert not (tmp_path / "t.db").exists()


PLAIN_METRIC = """
import dataclasses
from tuner import TaskSpec, hookimpl
from tuner.plugins import load_plugins

def r2(model, x, y):
    return 1 - ((model(x).squeeze(-1) - y) ** 2).mean() / y.var()

def build():
    return dataclasses.replace(load_plugins().tasks["synthetic"].build(), metrics={"r2": r2})

@hookimpl
def tuner_register_tasks(register):
    register(TaskSpec("plain", build, "a metric that is a plain function"))
"""


def test_the_command_line_refuses_a_registered_metric_that_is_no_metric(tmp_path):
    (tmp_path / "plain.py").write_text(PLAIN_METRIC)
    command = [Path(sys.executable).with_name("tuner"), "search", "--task", "plain"]
    command += ["--plugin", tmp_path / "plain.py", "--storage", f"sqlite:///{tmp_path / 't.db'}"]

    run = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (
        "Error: metric 'r2' of task 'plain' is a function, not a tuner.Metric: give Metric(fn), "
        "or Metric(fn, 'minimize')\n"
    )
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize(("confirm", "runs"), [(0, 0), ("0", 0), ((1, 2), 2), ("1x2", 2)])
def test_confirm_is_0_a_pair_or_kxs(sqlite_url, confirm, runs):
    results = tuner.search(
        storage=sqlite_url, study="c", trials=2, confirm=confirm, **FAST, **halves()
    )

    assert sum(len(config.runs) for config in results.confirmation().configs) == runs


@pytest.mark.parametrize("confirm", [3, (3, 0), (3,), "3y3", True])
def test_a_confirm_that_is_no_count_is_one_line(tmp_path, confirm):
    with pytest.raises(BadInput, match="confirm"):
        tuner.search(storage=f"sqlite:///{tmp_path / 't.db'}", confirm=confirm, **halves())

    assert not (tmp_path / "t.db").exists()


def test_a_progress_bar_counts_the_trials_then_the_confirmation_runs(sqlite_url, capsys):
    tuner.search(storage=sqlite_url, study="bar", trials=3, confirm="1x1", **FAST, **halves())

    shown = capsys.readouterr()
    assert shown.out == ""
    assert "bar: 100%" in shown.err and "3/3" in shown.err and "best val_loss" in shown.err
    assert "confirming: 100%" in shown.err and "1/1" in shown.err


def test_quiet_shows_nothing(sqlite_url, capsys):
    tuner.search(storage=sqlite_url, study="quiet", trials=2, quiet=True, **FAST, **halves())

    assert capsys.readouterr() == ("", "")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('searched') / 't.db'}"
    results = tuner.search(
        storage=url,
        study="read",
        trials=8,
        confirm="2x2",
        metrics={"accuracy": Metric(accuracy)},
        **FAST,
        **halves(),
    )
    return results, url


def test_the_dataframe_has_datetimes_outcomes_and_ranks(searched):
    results, _ = searched

    frame = results.to_dataframe()

    assert frame["number"].tolist() == list(range(8))
    assert isinstance(frame["finished_at"].dtype, pd.DatetimeTZDtype)
    assert frame["outcome"].cat.categories.tolist()[:3] == ["complete", "pruned", "diverged"]
    best = [trial.number for trial in results.best(8)]
    assert frame.sort_values("rank")["number"].tolist() == best
    assert frame["rank"].tolist() == [best.index(n) + 1 for n in range(8)]


def test_the_html_of_a_study_and_of_a_storage_draws_their_tables(searched, browser):  # noqa: F811
    results, url = searched
    page = browser.new_page()

    page.set_content(results._repr_html_())
    head = page.locator("thead th").all_inner_texts()
    rows = [row.split("\t") for row in page.locator("tbody tr").all_inner_texts()]
    said = page.locator("p").all_inner_texts()
    with open_results(url) as stored:
        page.set_content(stored._repr_html_())
    studies = page.locator("tbody tr").all_inner_texts()

    assert head == [
        "rank",
        "trial",
        "optimizer",
        "schedule",
        "lr",
        "val_loss",
        "outcome",
        "accuracy",
    ]
    assert [int(row[1]) for row in rows] == [trial.number for trial in results.best(5)]
    assert said[0].startswith("read: task custom, val_loss (minimized), ")
    assert said[1] == results.confirmation().verdict
    assert [row.split("\t")[0] for row in studies] == ["read"]
