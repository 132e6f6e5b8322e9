"""`tuner studies / best / trials / show / compare` on a study made by a real `tuner search`:
tables, JSON that agrees with Optuna, CSV that pandas reads as the JSON, and bad input."""

import io
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers import FAST, TUNER, printed, tuner

NEVER_BUILDS = Path(__file__).parent / "search_plugins" / "never_builds.py"
ONE_SEEDED = ["--jobs", "1", "--seed", "0"]


def search(storage, *args):
    return tuner("search", "--storage", storage, *args)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """One real search of 12 trials, and an empty study beside it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('results') / 'tuner.db'}"
    # One process and a seed: the same trials every run.
    made = search(url, *FAST, "--trials", "12", "--study", "s", "--confirm", "0", *ONE_SEEDED)
    assert made.exit_code == 0
    empty = search(url, *FAST, "--study", "empty", "--timeout", "0.000001")
    assert "No complete trial yet in study empty (no trials)." in empty.stdout
    return url


def as_json(*args, storage):
    return json.loads(printed(*args, storage=storage))


def lines(*args, storage):
    return printed(*args, storage=storage).splitlines()


def test_studies_table_and_json(storage):
    table = lines("studies", storage=storage)
    data = as_json("studies", "--format", "json", storage=storage)

    assert table[0].split()[:5] == ["study", "task", "trials", "metric", "best"]
    assert [row.split()[0] for row in table[2:] if not row.startswith(" ")] == ["s", "empty"]
    assert [s["name"] for s in data] == ["s", "empty"]
    s, empty = data
    best = optuna.load_study(study_name="s", storage=storage).best_trial
    assert (s["task"], s["metric"], s["direction"]) == ("synthetic", "val_loss", "minimize")
    assert s["trials"]["total"] == 12
    assert s["trials"]["complete"] + s["trials"]["pruned"] + s["trials"]["diverged"] == 12
    assert (s["best"]["number"], s["best"]["value"]) == (best.number, best.value)
    assert table[2].split()[4:6] == [f"{best.value:.4g}", best.params["optimizer"]]
    outcomes = [f"{n} {state}" for state, n in s["trials"].items() if n and state != "total"]
    assert table[3] == f"       outcomes: {', '.join(outcomes)}"
    assert empty["trials"]["total"] == 0 and empty["best"] is None


def test_best_json_agrees_with_optuna(storage):
    data = as_json("best", "s", "-n", "12", "--format", "json", storage=storage)
    study = optuna.load_study(study_name="s", storage=storage)

    assert data[0]["number"] == study.best_trial.number
    assert data[0]["value"] == study.best_trial.value
    assert len(data) == 12
    trials = {t.number: t for t in study.trials}
    for entry in data:
        trial = trials[entry["number"]]
        assert set(entry) >= {"number", "value", "state", "optimizer", "schedule", "params"}
        assert set(entry) >= {"duration_s", "steps", "metrics", "outcome"}
        assert entry["state"] == trial.state.name
        assert entry["params"] == trial.params
        assert entry["value"] == pytest.approx(trial.value)
        assert entry["optimizer"] == trial.params["optimizer"]
        # A trial that diverged before its first evaluation has no value and no metrics.
        assert entry["metrics"].get("val_loss") == pytest.approx(entry["value"])


def test_best_table_shows_the_winner_first(storage):
    out = lines("best", "s", "-n", "3", storage=storage)
    best = optuna.load_study(study_name="s", storage=storage).best_trial

    assert out[0].startswith("Top 3 of 12 finished trials by val_loss, lowest first")
    assert out[1].split()[:5] == ["trial", "val_loss", "r2", "optimizer", "schedule"]
    assert out[3].split()[:2] == [str(best.number), f"{best.value:.4g}"]
    rows = [line for line in out[3:] if not line.startswith(" ")]
    assert len(rows) == 3
    assert all(line.startswith("       settings: ") for line in out[4:] if line not in rows)


def test_best_filters_by_optimizer_and_schedule(storage):
    every = as_json("best", "s", "-n", "12", "--format", "json", storage=storage)
    pair = (every[-1]["optimizer"], every[-1]["schedule"])
    args = ["--optimizer", pair[0], "--schedule", pair[1], "-n", "12", "--format", "json"]
    data = as_json("best", "s", *args, storage=storage)
    table = lines("best", "s", "--optimizer", "sgd", "--optimizer", "adam", storage=storage)

    assert data == [t for t in every if (t["optimizer"], t["schedule"]) == pair]
    assert "with optimizer sgd or adam" in table[0]


def test_best_counts_the_finished_trials_that_match_its_filters(storage):
    sgd = as_json("trials", "s", "--optimizer", "sgd", "--format", "json", storage=storage)
    finished = [t for t in sgd if t["outcome"] in ("complete", "pruned", "diverged")]

    title = lines("best", "s", "--optimizer", "sgd", storage=storage)[0]

    assert 0 < len(finished) < 12
    shown = min(5, len(finished))
    assert title.startswith(f"Top {shown} of {len(finished)} finished trials by val_loss with")


@pytest.mark.parametrize("command", [["best", "s", "-n", "12"], ["trials", "s"]])
def test_the_csv_loads_in_pandas_as_the_json(storage, command):
    csv = pd.read_csv(io.StringIO(printed(*command, "--format", "csv", storage=storage)))
    data = pd.json_normalize(as_json(*command, "--format", "json", storage=storage))

    assert list(csv["number"]) == list(data["number"])
    assert set(csv.columns) == set(data.columns)
    assert any(column.startswith("params.adam.") for column in csv.columns)
    for column in data.columns:
        mine, theirs = csv[column].tolist(), data[column].tolist()
        assert [None if pd.isna(v) else v for v in mine] == [
            None if pd.isna(v) else v for v in theirs
        ], column


def test_trials_filters_sorts_and_limits(storage):
    everything = as_json("trials", "s", "--format", "json", storage=storage)
    ranked = as_json("trials", "s", "--sort", "value", "--format", "json", storage=storage)
    best = as_json("best", "s", "-n", "12", "--format", "json", storage=storage)
    fastest = as_json(
        "trials", "s", "--sort", "duration", "--limit", "3", "--format", "json", storage=storage
    )
    pruned = as_json(
        "trials",
        "s",
        "--state",
        "pruned",
        "--optimizer",
        "adam",
        "--format",
        "json",
        storage=storage,
    )

    assert [t["number"] for t in everything] == list(range(12))
    assert [t["number"] for t in ranked] == [t["number"] for t in best]
    durations = sorted(t["duration_s"] for t in everything)[:3]
    assert [t["duration_s"] for t in fastest] == durations
    assert all(t["outcome"] == "pruned" and t["optimizer"] == "adam" for t in pruned)


def test_trials_table(storage):
    out = lines("trials", "s", "--limit", "4", storage=storage)

    assert out[0].split()[:2] == ["trial", "val_loss"]
    assert [row.split()[0] for row in out[2:] if not row.startswith(" ")] == ["0", "1", "2", "3"]


def test_show_a_trial(storage):
    page = printed("show", "s", "2", storage=storage)
    data = as_json("show", "s", "2", "--format", "json", storage=storage)
    trial = optuna.load_study(study_name="s", storage=storage).trials[2]

    assert page.startswith(f"Trial 2 of study s (synthetic): {data['outcome']}, val_loss ")
    for word in ("parameter", "outcome", "reason", "time", "seed", "device", "versions", "plugins"):
        assert f"\n{word} " in page
    assert f"mlx {data['provenance']['versions']['mlx']}" in page
    assert "\nloss  " in page and "\nlr    " in page
    assert "\nstep  val_loss  r2" in page
    assert data["params"] == trial.params
    assert data["state"] == trial.state.name
    assert len(data["curve"]["losses"]) == data["steps"] == len(data["curve"]["lrs"])
    assert [e["step"] for e in data["curve"]["evals"]] == list(range(25, data["steps"] + 1, 25))
    assert data["provenance"]["seed"] == 0 and data["provenance"]["device"] == "cpu"


@pytest.mark.parametrize("by", ["optimizer", "schedule"])
def test_compare(storage, by):
    out = printed("compare", "s", "--by", by, storage=storage)
    data = as_json("compare", "s", "--by", by, "--format", "json", storage=storage)
    best = optuna.load_study(study_name="s", storage=storage).best_trial

    table, verdict = out.split("\n\n")
    header, _, *rows = table.splitlines()
    assert header.split() == [
        by,
        *"trials complete pruned diverged best val_loss median IQR".split(),
        "best",
        "trial",
    ]
    assert " ".join(verdict.split()) == data["verdict"]
    leader = data["groups"][0]
    assert rows[0].split()[0] == leader["name"] == best.params[by] == data["leader"]
    assert leader["best_trial"] == best.number
    assert sum(g["counts"]["total"] for g in data["groups"]) == 12
    assert set(leader) >= {"counts", "best_value", "median", "iqr", "best_trial"}
    assert verdict.startswith(f"{by.capitalize()} {leader['name']} leads")


def test_an_empty_study_says_so(storage):
    assert (
        printed("best", "empty", storage=storage)
        == "No finished trial in study empty (no trials).\n"
    )
    assert as_json("best", "empty", "--format", "json", storage=storage) == []
    assert printed("trials", "empty", storage=storage).startswith("No trial of study empty matches")
    assert "No trial has completed" in printed("compare", "empty", storage=storage)
    csv = pd.read_csv(io.StringIO(printed("best", "empty", "--format", "csv", storage=storage)))
    assert csv.empty and "params.lr" not in csv.columns and "number" in csv.columns


def test_a_study_of_failed_trials_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    args = ["--task", "broken", "--study", "f", "--plugin", NEVER_BUILDS, "--optimizers", "adam"]
    assert search(url, *args).exit_code == 1

    best = printed("best", "f", storage=url)
    listed = as_json("trials", "f", "--format", "json", storage=url)
    compared = printed("compare", "f", storage=url)
    shown = printed("show", "f", "0", storage=url)

    assert best == "No finished trial in study f (5 failed).\n"
    assert [t["outcome"] for t in listed] == ["failed"] * 5
    assert listed[0]["reason"] == "RuntimeError: no model ever"
    assert "No trial has completed with a value yet" in compared
    assert "reason      RuntimeError: no model ever" in shown
    assert "no learning curve recorded" in shown


def dump(url):
    path = Path(url.removeprefix("sqlite:///"))
    if not path.exists():
        return None
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["best", "ss"], "no study 'ss' in sqlite:///"),
        (["best", "ss"], "; did you mean 's'?"),
        (["show", "s", "99"], "study 's' has no trial 99: its trials are numbered 0 to 11"),
        (["show", "s", "x"], "'x' is not a valid integer"),
        (["best", "s", "--format", "xml"], "Invalid value for '--format': 'xml' is not one of"),
        (["trials", "s", "--format", "yaml"], "Invalid value for '--format'"),
        (["best", "s", "-n", "0"], "Invalid value for '-n' / '--top': 0 is not in the range x>=1"),
        (["trials", "s", "--limit", "0"], "Invalid value for '--limit'"),
        (["best", "s", "--optimizer", "adamw"], "never used optimizer 'adamw'; it used adam, sgd"),
        (["trials", "s", "--schedule", "step"], "never used schedule 'step'; it used constant"),
        (["trials", "s", "--state", "done"], "Invalid value for '--state': 'done' is not one of"),
        (["compare", "s", "--by", "lr"], "Invalid value for '--by'"),
        (["compare", "nope"], "no study 'nope' in sqlite:///"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(storage, args, message):
    before = dump(storage)

    result = tuner(*args, storage=storage)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert dump(storage) == before


@pytest.mark.parametrize("command", ["studies", "best", "trials", "show", "compare"])
def test_a_missing_database_is_named_and_not_created(tmp_path, command):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    args = {"studies": [], "show": ["s", "0"]}.get(command, ["s"])

    result = tuner(command, *args, storage=url)

    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no database at {tmp_path / 'none.db'}: run tuner search to make one, "
        "or point --storage (or TUNER_STORAGE) at one that exists\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_installed_console_script_answers_in_json(storage):
    result = subprocess.run(
        [TUNER, "best", "s", "-n", "1", "--format", "json", "--storage", storage],
        capture_output=True,
        text=True,
        check=True,
    )

    best = optuna.load_study(study_name="s", storage=storage).best_trial
    assert json.loads(result.stdout)[0]["number"] == best.number


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(capsys):
    from tuner.cli.results import _echo_records

    _echo_records([{"number": -1, "reason": "=HYPERLINK(1)", "optimizer": "@x"}], "csv")

    header, row = capsys.readouterr().out.splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert cells["reason"] == "'=HYPERLINK(1)" and cells["optimizer"] == "'@x"
    assert cells["number"] == "-1"


def test_studies_and_show_agree_on_a_study_with_a_trial_queued_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    # Cut short by --timeout: the trial is interrupted, and its settings queued to run again.
    cut = search(url, *FAST, "--study", "cut", "--steps", "50000", "--eval-every", "25000",
                 "--timeout", "1", "--confirm", "0", "--jobs", "1")  # fmt: skip
    assert cut.exit_code == 0, cut.output

    listed = json.loads(tuner("studies", "--format", "json", storage=url).stdout)
    shown = tuner("show", "cut", "9", storage=url)

    assert [study["trials"]["total"] for study in listed] == [1]
    assert shown.exit_code == 2
    # Optuna numbers the queued trials too: a count here would not be the one studies shows.
    assert re.fullmatch(
        r"Error: study 'cut' has no trial 9: its trials are numbered 0 to [1-8]\n", shown.stderr
    )
