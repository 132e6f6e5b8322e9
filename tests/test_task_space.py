"""A search beyond the optimizer: the batch size, and a task's own parameters that its model
factory receives, searched where ``--space`` names them; each value its own graph, a
population's members sharing them, stored, resumed, shown and exported."""

import json
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import TUNER, tuner

from tuner import open_results

PLUGIN = Path(__file__).parent / "search_plugins" / "sized_task.py"
SIZED = ["--task", "sized", "--plugin", str(PLUGIN), "--optimizers", "adam,sgd"]
SIZED += ["--schedules", "constant", "--confirm", "0", "--jobs", "1", "--steps", "20"]
SEARCHED = ["--space", "batch_size=16,32", "--space", "sized.width=8,16"]
# The rows of the task's validation set, and those a search's first check runs the loss on.
NOT_BATCHES = {128, 4}


@pytest.fixture
def seen(tmp_path, monkeypatch):
    path = tmp_path / "seen.txt"
    path.touch()
    monkeypatch.setenv("TUNER_TEST_SEEN", str(path))
    return path


def trained(seen):
    """The (width, batch rows) of each model and batch the loss ran on while training."""
    pairs = {tuple(map(int, line.split())) for line in seen.read_text().splitlines()}
    return {(width, rows) for width, rows in pairs if rows not in NOT_BATCHES}


def trials_of(storage, study):
    with open_results(storage) as results:
        return results.trials(study)


def test_each_trial_trains_the_model_and_batch_size_it_drew(sqlite_url, seen):
    result = tuner(
        "search", "--storage", sqlite_url, "--study", "s", "--trials", 8, *SIZED, *SEARCHED
    )

    assert result.exit_code == 0, result.output
    trials = trials_of(sqlite_url, "s")
    drawn = {(t.params["sized.width"], t.params["batch_size"]) for t in trials}
    assert len(drawn) > 1
    assert trained(seen) == drawn


def test_a_population_shares_the_model_and_batch_size(sqlite_url, seen):
    result = tuner(
        "search", "--storage", sqlite_url, "--study", "p", "--trials", 12, "--population", 4,
        "--pruner", "none", *SIZED, *SEARCHED,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    groups = defaultdict(set)
    for trial in trials_of(sqlite_url, "p"):
        if trial.population is not None:
            groups[trial.population].add((trial.params["sized.width"], trial.params["batch_size"]))
    assert groups, "no population trained"
    assert all(len(shared) == 1 for shared in groups.values()), groups


def test_resumed_shown_and_exported_with_them(sqlite_url, seen):
    assert tuner("search", "--storage", sqlite_url, "--study", "r", "--trials", 4, *SIZED,
                 *SEARCHED).exit_code == 0  # fmt: skip

    resumed = tuner("search", "--storage", sqlite_url, "--study", "r", "--trials", 6,
                    "--plugin", PLUGIN, "--jobs", 1, "--confirm", 0)  # fmt: skip

    assert resumed.exit_code == 0, resumed.output
    trials = trials_of(sqlite_url, "r")
    assert len(trials) == 6
    assert all({"batch_size", "sized.width"} <= set(t.params) for t in trials)
    best = tuner("best", "r", "--storage", sqlite_url, "--wide")
    assert "batch_size=" in best.output and "width=" in best.output, best.output
    number = trials[-1].number
    exported = tuner("export", "r", "--trial", number, "--storage", sqlite_url, "--format", "json",
                     "--plugin", PLUGIN)  # fmt: skip
    assert exported.exit_code == 0, exported.output
    config = json.loads(exported.output)
    assert config["batch_size"] == trials[-1].params["batch_size"]
    assert config["task"] == {
        "name": "sized",
        "params": {"width": trials[-1].params["sized.width"]},
    }
    code = tuner("export", "r", "--trial", number, "--storage", sqlite_url, "--plugin", PLUGIN)
    width = trials[-1].params["sized.width"]
    assert f"task sized (its model given width={width})" in code.output, code.output

    seen.write_text("")
    confirmed = tuner("confirm", "r", "--top", 1, "--seeds", 1, "--storage", sqlite_url,
                      "--plugin", PLUGIN)  # fmt: skip
    assert confirmed.exit_code == 0, confirmed.output
    with open_results(sqlite_url) as results:
        (config,) = results.confirmation("r").configs
    assert trained(seen) == {
        (config.trial.params["sized.width"], config.trial.params["batch_size"])
    }


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("batch_size=0,16", "--space batch_size: 0 is outside [1, inf), the values it can take"),
        ("batch_size=16..32", "--space batch_size is a choice of 32,64,128"),
        ("batch_size=16,24.5", "--space batch_size: 24.5 is not a whole number"),
        ("batch_size=16,600", "--space batch_size=16,600: 600 is more than the 512 training rows"),
        ("batchsize=16", "unknown shared parameter 'batchsize'; did you mean 'batch_size'?"),
        ("sized.widht=8", "'sized' has no parameter 'widht'; did you mean 'width'?"),
        ("sized.width=8,12.5", "--space sized.width: 12.5 is not a whole number"),
        ("sized.width=8,8", "--space sized.width: 8 is given twice; give each value once"),
        (
            "digits.hidden=64",
            "'digits' is not a chosen optimizer or schedule, nor this study's task 'sized'",
        ),
    ],
)
def test_a_bad_value_is_one_line_and_writes_nothing(tmp_path, seen, space, message):
    db = tmp_path / "t.db"
    ran = subprocess.run(
        [TUNER, "search", "--storage", f"sqlite:///{db}", *SIZED, "--space", space],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert ran.returncode == 2, ran.stderr
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert not db.exists()


def test_a_fixed_and_a_searched_batch_size_are_refused(tmp_path, seen):
    db = tmp_path / "t.db"
    result = tuner("search", "--storage", f"sqlite:///{db}", *SIZED, "--batch-size", 16,
                   "--space", "batch_size=16,32")  # fmt: skip

    assert result.exit_code == 2
    assert "give one, a fixed batch size or the ones to search" in result.output
    assert not db.exists()


def test_a_search_file_of_the_study_continues_it(sqlite_url, seen, tmp_path):
    assert tuner("search", "--storage", sqlite_url, "--study", "f", "--trials", 2, *SIZED,
                 *SEARCHED).exit_code == 0  # fmt: skip
    written = tuner("show", "f", "--config", "--storage", sqlite_url)
    assert written.exit_code == 0, written.output
    (tmp_path / "f.toml").write_text(written.output)

    again = tuner("search", "--config", tmp_path / "f.toml", "--trials", 3, "--plugin", PLUGIN,
                  "--jobs", 1, "--confirm", 0)  # fmt: skip

    assert again.exit_code == 0, again.output
    trials = trials_of(sqlite_url, "f")
    assert len(trials) == 3
    assert all({"batch_size", "sized.width"} <= set(t.params) for t in trials)


def test_the_reports_narrowed_search_keeps_what_the_study_searched(sqlite_url, seen, tmp_path):
    from tuner.report.answer import next_commands, ranked_complete
    from tuner.report.read import read_study

    assert tuner("search", "--storage", sqlite_url, "--study", "n", "--trials", 4, *SIZED,
                 *SEARCHED).exit_code == 0  # fmt: skip
    with open_results(sqlite_url) as results:
        data = read_study(results, "n")
    *_, (_, narrowed) = next_commands(data, ranked_complete(data)[0], sqlite_url)

    assert "--batch-size" not in narrowed
    assert "--space batch_size=16,32" in narrowed and "--space sized.width=8,16" in narrowed
    ran = subprocess.run(
        # Its program as this test's tuner runs it, the installed console script.
        [TUNER, *shlex.split(narrowed)[1:], "--trials", "1", "--study", "n2", "--jobs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
