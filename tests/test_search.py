"""`tuner search` end to end: real MLX trials, a real SQLite file, real Optuna studies."""

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from helpers import FAST, TUNER, tuner

from tuner import open_results
from tuner.api.workers import cores
from tuner.cli import cli
from tuner.plan import SearchConfig, plan_search
from tuner.plugins import load_plugins
from tuner.samplers import trial_seed
from tuner.study import run_search

PLUGINS = Path(__file__).parent / "search_plugins"


def search(storage, *args):
    return tuner("search", "--storage", storage, *FAST, *args)


def finished(storage, study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return optuna.load_study(study_name=study, storage=storage).get_trials(states=states)


def test_a_search_stores_every_trial_and_finds_the_best(sqlite_url):
    result = search(sqlite_url, "--trials", "8", "--study", "s1")

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="s1", storage=sqlite_url)
    assert len(finished(sqlite_url, "s1")) == 8
    with open_results(sqlite_url) as results:
        records = {t.number: results.trial("s1", t.number) for t in results.trials("s1")}
    assert set(records) == {t.number for t in study.trials}
    for trial in study.trials:
        record = records[trial.number]
        assert record.optimizer == trial.params["optimizer"]
        assert record.params == trial.params
        assert record.outcome in ("complete", "pruned", "diverged")
        assert len(record.losses) == record.steps == len(record.lrs)
    best = study.best_trial
    assert records[best.number].value == pytest.approx(best.value)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Top ")
    assert lines[3].split()[:2] == [str(best.number), f"{best.value:.4g}"]
    assert lines[-5].startswith("Study s1 in sqlite:///")
    assert lines[-1].startswith("Continue it: tuner search --study s1 --trials 16 ")


def test_trials_counts_the_whole_study_so_a_rerun_continues_it(sqlite_url):
    assert search(sqlite_url, "--trials", "4", "--study", "s").exit_code == 0
    assert search(sqlite_url, "--trials", "7", "--study", "s").exit_code == 0
    assert len(finished(sqlite_url, "s")) == 7

    again = search(sqlite_url, "--trials", "7", "--study", "s")

    assert again.exit_code == 0
    assert again.stderr == (
        "Study s already holds 7 finished trials: nothing to run. Ask for more with --trials.\n"
    )
    assert len(finished(sqlite_url, "s")) == 7


def run_in_fresh_process(storage, *args):
    subprocess.run(
        [TUNER, "search", "--storage", storage, *FAST, "--quiet", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    study = optuna.load_study(study_name="seeded", storage=storage)
    return [(t.params, t.value, t.state) for t in study.trials]


def test_the_same_seed_gives_the_same_trials_in_a_fresh_process(tmp_path):
    # Past the startup trials of both TPE (10) and the median pruner (5).
    # The trials alone: test_confirm replays the confirmation runs.
    args = ["--jobs", "1", "--confirm", "0", "--trials", "14", "--study", "seeded", "--seed", "7"]
    first = run_in_fresh_process(f"sqlite:///{tmp_path / 'a.db'}", *args)
    second = run_in_fresh_process(f"sqlite:///{tmp_path / 'b.db'}", *args)
    other = run_in_fresh_process(f"sqlite:///{tmp_path / 'c.db'}", *args[:-1], "8")

    assert first == second
    assert [p for p, _, _ in first] != [p for p, _, _ in other]


def test_a_diverging_optimizer_is_pruned_and_recorded(sqlite_url):
    result = search(
        sqlite_url,
        "--trials",
        "3",
        "--study",
        "nan",
        "--optimizers",
        "poison",
        "--plugin",
        PLUGINS / "nan_optimizer.py",
    )

    assert result.exit_code == 0, result.output
    assert "No complete trial yet in study nan (3 diverged)." in result.stdout
    study = optuna.load_study(study_name="nan", storage=sqlite_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 3
    with open_results(sqlite_url) as results:
        recorded = results.trials("nan")
    for record in recorded:
        assert record.outcome == "diverged"
        assert record.reason.startswith("loss became nan at step ")


def test_a_failing_trial_is_marked_and_the_study_goes_on(sqlite_url):
    result = CliRunner().invoke(
        cli,
        [
            "search",
            "--storage",
            sqlite_url,
            "--task",
            "flaky",
            "--trials",
            "5",
            "--study",
            "f",
            "--optimizers",
            "adam",
            "--schedules",
            "constant",
            "--plugin",
            PLUGINS / "flaky_task.py",
        ],
    )

    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="f", storage=sqlite_url)
    states = [t.state.name for t in study.trials]
    assert states[2] == "FAIL"
    assert states.count("FAIL") == 1 and len(finished(sqlite_url, "f")) == 5
    assert "trial 2 failed: RuntimeError: no model today" in result.stderr
    with open_results(sqlite_url) as results:
        record = results.trial("f", 2)
    assert (record.outcome, record.reason) == ("failed", "RuntimeError: no model today")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "digts"], "unknown task 'digts'; did you mean 'digits'?"),
        (["--optimizers", "adamm"], "unknown optimizer 'adamm'; did you mean 'adam'?"),
        (["--schedules", "cosin"], "unknown schedule 'cosin'; did you mean 'cosine'?"),
        (["--trials", "0"], "--trials must be at least 1, got 0"),
        (["--trials", "-3"], "--trials must be at least 1, got -3"),
        (["--trials", "abc"], "Invalid value for '--trials': 'abc' is not a valid integer."),
        (["--space", "lr=1..0.1"], "--space lr: low must be below high, got 1.0..0.1"),
        (["--space", "adam.betaa=0.9"], "'adam' has no parameter 'betaa'; did you mean"),
        (["--metric", "acuracy"], "unknown metric 'acuracy' of task 'digits'; did you mean"),
        (["--optimizers", ","], "--optimizers names none; give at least one"),
        (["--space", "warmup=1"], "warmup is a fraction of the steps"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    db = tmp_path / "tuner.db"

    result = CliRunner().invoke(cli, ["search", "--storage", f"sqlite:///{db}", *args])

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "digits", "--steps", "5"], "task 'synthetic', not 'digits'"),
        (
            ["--space", "lr=1e-3..1e-2:log"],
            "search space (lr 0.0001..1.0:log, not 0.001..0.01:log)",
        ),
        (["--optimizers", "adam"], "a different search space (optimizers adam,sgd, not adam)"),
        (["--space", "sgd.nesterov=true"], "search space (sgd.nesterov false,true, not true)"),
        (["--metric", "r2"], "metric 'val_loss', not 'r2'"),
    ],
)
def test_a_study_resumed_with_other_settings_says_what_differs(sqlite_url, tmp_path, args, message):
    assert search(sqlite_url, "--trials", "2", "--study", "s").exit_code == 0
    before = digest(tmp_path / "tuner.db")

    result = search(sqlite_url, "--trials", "4", "--study", "s", *args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert digest(tmp_path / "tuner.db") == before


def test_asking_for_a_gpu_this_mlx_lacks_names_the_package(sqlite_url, tmp_path):
    import mlx.core as mx

    if mx.is_available(mx.gpu):
        pytest.skip("this MLX build has a GPU")
    result = search(sqlite_url, "--device", "gpu")

    assert result.exit_code == 2
    assert "tuner[cuda]" in result.stderr
    assert not (tmp_path / "tuner.db").exists()


def test_the_installed_console_script_runs_a_search(tmp_path):
    env = {**os.environ, "TUNER_STORAGE": f"sqlite:///{tmp_path / 'cli.db'}"}

    result = subprocess.run(
        [TUNER, "search", *FAST, "--trials", "3", "--study", "e2e"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "Study e2e in sqlite:///" in result.stdout
    plugins = subprocess.run(
        [TUNER, "plugins", "--format", "json"], capture_output=True, text=True, check=True
    )
    assert "synthetic" in {t["name"] for t in json.loads(plugins.stdout)["tasks"]}


def test_a_study_that_optuna_made_alone_is_refused_and_left_alone(sqlite_url):
    theirs = optuna.create_study(study_name="theirs", storage=sqlite_url)
    theirs.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)

    result = search(sqlite_url, "--study", "theirs")

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: study 'theirs' was not made by tuner (it has no record of tuner's): "
        "give another --study name\n"
    )
    assert len(optuna.load_study(study_name="theirs", storage=sqlite_url).trials) == 2


def test_the_stored_command_line_masks_a_password(postgres_url):
    subprocess.run([TUNER, "db", "upgrade", "--storage", postgres_url], check=True)
    url = postgres_url.replace("postgres@", "postgres:s3cret@")

    result = subprocess.run(
        [TUNER, "search", "--storage", url, *FAST, "--trials", "1", "--study", "masked"],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    shown = CliRunner().invoke(cli, ["show", "masked", "0", "--storage", url, "--wide"])
    assert "s3cret" not in shown.stdout + result.stdout + result.stderr
    assert "--storage 'postgresql+psycopg://postgres:***@" in shown.stdout


def test_the_continue_command_it_prints_continues_the_study(sqlite_url):
    first = search(sqlite_url, "--trials", "2", "--study", "c", "--space", "lr=1e-3..1e-1:log")
    command = first.stdout.strip().splitlines()[-1].split("Continue it: ", 1)[1]

    again = CliRunner().invoke(cli, shlex.split(command)[1:])

    assert again.exit_code == 0, again.output
    assert len(finished(sqlite_url, "c")) == 4


def test_the_leaderboard_and_tuner_best_agree_on_the_trials_they_count(sqlite_url):
    searched = search(sqlite_url, "--trials", "8", "--study", "agree", "--timeout", "120")
    best = CliRunner().invoke(cli, ["best", "agree", "--storage", sqlite_url])

    assert best.exit_code == 0, best.output
    board = searched.stdout.split("\n\n")[0]
    assert board == best.stdout.split("\n\n")[0].rstrip("\n")
    assert board.startswith("Top 5 of 8 finished trials by val_loss, lowest first")
    # As typed, not as click hands the number back (120.0).
    assert " --timeout 120 " in searched.stdout.splitlines()[-1]


def printed_seed(result):
    (seed,) = re.findall(r"^Study \S+ in \S+, seed (\d+)\.$", result.stdout, re.MULTILINE)
    return int(seed)


def test_a_new_study_without_a_seed_draws_one_stores_and_prints_it(sqlite_url, monkeypatch):
    monkeypatch.delenv("TUNER_SEED")
    first = search(sqlite_url, "--trials", "4", "--study", "first")
    second = search(sqlite_url, "--trials", "4", "--study", "second")

    seeds = [printed_seed(first), printed_seed(second)]
    with open_results(sqlite_url) as results:
        assert [results.provenance(s).seed for s in ("first", "second")] == seeds
    assert seeds[0] != seeds[1]
    params = [[t.params for t in finished(sqlite_url, s)] for s in ("first", "second")]
    assert params[0] != params[1], "a second search must not repeat the first's trials"
    # Neither was told it repeats another: the note is for a seed given twice.
    assert first.stderr == second.stderr == ""


def test_the_printed_seed_replays_the_study_exactly(sqlite_url, monkeypatch):
    monkeypatch.delenv("TUNER_SEED")
    first = search(sqlite_url, "--trials", "5", "--study", "first", "--jobs", "1")

    seed = str(printed_seed(first))
    replay = search(sqlite_url, "--trials", "5", "--study", "replay", "--seed", seed, "--jobs", "1")

    assert replay.exit_code == 0, replay.output
    with open_results(sqlite_url) as results:
        ran = [[(t.params, t.value) for t in results.trials(s)] for s in ("first", "replay")]
    assert ran[0] == ran[1]
    assert "Note: study first has this seed and these settings" in replay.stderr


def test_the_continue_command_adds_to_the_trials_the_study_holds(sqlite_url):
    assert search(sqlite_url, "--trials", "5", "--study", "held").exit_code == 0

    asked_fewer = search(sqlite_url, "--trials", "3", "--study", "held")

    assert asked_fewer.exit_code == 0, asked_fewer.output
    assert "Study held already holds 5 finished trials: nothing to run." in asked_fewer.stderr
    go_on = asked_fewer.stdout.splitlines()[-1].removeprefix("Continue it: ")
    assert shlex.split(go_on)[1:6] == ["search", "--study", "held", "--trials", "8"]
    again = CliRunner().invoke(cli, shlex.split(go_on)[1:])
    assert again.exit_code == 0, again.output
    assert len(finished(sqlite_url, "held")) == 8


def test_the_recorded_command_is_the_one_typed_whatever_sys_argv_holds(sqlite_url, monkeypatch):
    # A bare `pytest` leaves sys.argv[1:] empty; a command line must not depend on it.
    monkeypatch.setattr(sys, "argv", ["pytest"])

    assert search(sqlite_url, "--trials", "1", "--study", "typed").exit_code == 0

    with open_results(sqlite_url) as results:
        command = results.trial("typed", 0).provenance.command
    assert shlex.split(command) == [
        "tuner",
        "search",
        "--task",
        "synthetic",
        "--trials",
        "1",
        "--study",
        "typed",
        "--storage",
        sqlite_url,
        "--optimizers",
        "adam,sgd",
        "--schedules",
        "constant,cosine",
    ]


EXAMPLE = Path(__file__).parent.parent / "examples" / "single_file_plugin.py"


def test_a_plugin_installed_since_leaves_a_study_as_it_was_made(sqlite_url, monkeypatch):
    first = CliRunner().invoke(
        cli, ["search", "--storage", sqlite_url, "--task", "synthetic", "--trials", "2"]
    )
    assert first.exit_code == 0, first.output
    command = first.stdout.strip().splitlines()[-1].split("Continue it: ", 1)[1]
    name = shlex.split(command)[3]
    with open_results(sqlite_url) as results:
        space = results.settings(name)["space"]
    # As if the example plugin had been installed after the study was made.
    monkeypatch.setenv("TUNER_PLUGINS", str(EXAMPLE))

    again = CliRunner().invoke(cli, shlex.split(command)[1:])
    full = CliRunner().invoke(
        cli, ["search", "--storage", sqlite_url, "--study", name, "--trials", "4"]
    )

    assert again.exit_code == 0, again.output
    assert full.exit_code == 0, full.output
    assert "already holds 4 finished trials" in full.stderr
    with open_results(sqlite_url) as results:
        assert results.settings(name)["space"] == space
    used = {(t.params["optimizer"], t.params["schedule"]) for t in finished(sqlite_url, name)}
    assert not {"adamw_bc", "polynomial"} & {n for pair in used for n in pair}
    asked = search(sqlite_url, "--study", name, "--trials", "6", "--optimizers", "adam,adamw_bc")
    assert asked.exit_code == 2
    assert "a different search space (optimizers" in asked.stderr


def test_a_study_whose_plugin_is_gone_says_which_and_how_to_bring_it_back(sqlite_url):
    args = ["--trials", "1", "--study", "plugged", "--optimizers", "adamw_bc"]
    assert search(sqlite_url, *args, "--plugin", str(EXAMPLE)).exit_code == 0

    result = CliRunner().invoke(
        cli, ["search", "--storage", sqlite_url, "--study", "plugged", "--trials", "2"]
    )

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: study 'plugged' searches optimizer 'adamw_bc', which no loaded plugin registers "
        "now: install its plugin again or pass it with --plugin\n"
    )


@pytest.mark.parametrize(
    "command", [["search", "--study", "f"], ["worker", "f"], ["confirm", "f"]], ids=lambda c: c[0]
)
def test_a_study_whose_task_plugin_is_gone_says_how_to_bring_it_back(sqlite_url, command):
    plugin = PLUGINS / "never_builds.py"
    made = search(sqlite_url, "--task", "broken", "--plugin", plugin, "--study", "f")
    assert made.exit_code == 1, made.output

    result = CliRunner().invoke(cli, [*command, "--storage", sqlite_url])

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: study 'f' trains task 'broken', which no loaded plugin registers now: install "
        "its plugin again or pass it with --plugin\n"
    )


def test_each_command_it_suggests_carries_the_storage_and_runs_alone(tmp_path):
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = search(storage, "--trials", "2", "--study", "far")
    lines = result.stdout.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Look closer: "))
    commands = [line.split(": ", 1)[-1].strip() for line in lines[start:]]

    assert [c.split()[:2] for c in commands] == [
        ["tuner", "best"],
        ["tuner", "show"],
        ["tuner", "compare"],
        ["tuner", "search"],
    ]
    for command in commands[:3]:
        assert f"--storage {storage}" in command
        ran = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert ran.exit_code == 0, (command, ran.output)


def test_a_second_study_with_the_same_seed_and_settings_says_it_repeats_the_first(sqlite_url):
    # A seed given: without one, a new study draws its own.
    first = search(sqlite_url, "--trials", "2", "--seed", "5")
    name = first.stdout.strip().splitlines()[-1].split()[5]

    second = search(sqlite_url, "--trials", "3", "--seed", "5")
    other_seed = search(sqlite_url, "--trials", "2", "--seed", "1")

    assert first.stderr == ""
    assert second.exit_code == 0
    assert second.stderr.startswith(
        f"Note: study {name} has this seed and these settings: this study will repeat its "
        f"trials.\n      Give another --seed for new trials, or add trials to {name}:\n"
        f"      tuner search --study {name} --trials 5 "
    )
    assert other_seed.stderr == ""


def test_piped_it_prints_a_line_a_trial_only_when_verbose(sqlite_url):
    quiet = search(sqlite_url, "--trials", "3", "--study", "piped")
    verbose = search(sqlite_url, "--trials", "6", "--study", "piped", "--verbose")

    assert quiet.stderr == ""
    lines = verbose.stderr.splitlines()
    assert lines[0].startswith("Study piped (continued) in sqlite:///")
    # On Linux the BLAS that MLX calls comes next (see test_blas.py).
    # And how many workers train, with --jobs auto on more than one core.
    trials = [line for line in lines[1:] if not line.startswith(("BLAS: ", "Workers: "))]
    # Then a line for each confirmation run that the first search had not run.
    confirmations = [line for line in trials if " confirmed, seed " in line]
    trials = [line for line in trials if line not in confirmations]
    # Each worker's trials, in the order they ended.
    assert sorted(line.split()[:2] for line in trials) == [["trial", str(n)] for n in (3, 4, 5)]
    assert trials[-1] == verbose.stderr.splitlines()[-len(confirmations) - 1]


def test_a_search_closes_its_connections_when_it_returns(sqlite_url, tmp_path):
    # SQLite folds the write-ahead log into the file when its last connection closes: a search
    # that left one open would change the file later, in whatever command ran next.
    assert search(sqlite_url, "--trials", "2").exit_code == 0

    # Beside the database, only the empty file that workers lock to start trials.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuner.db", "tuner.db-claims"]


def test_timeout_stops_the_trial_in_flight_at_its_next_step(sqlite_url, monkeypatch):
    monkeypatch.delenv("TUNER_JOBS")
    # One trial of 50,000 steps would take far longer than the timeout.
    long = ["--steps", "50000", "--eval-every", "25000", "--confirm", "1x2"]

    result = search(sqlite_url, "--study", "late", "--timeout", "2", *long)

    assert result.exit_code == 0, result.output
    with open_results(sqlite_url) as results:
        trials = results.trials("late")
        counts = results.study("late").counts
    # The trial in flight in each worker (--jobs auto).
    assert 1 <= len(trials) <= cores()
    for trial in trials:
        assert trial.outcome == "interrupted" and 0 < trial.steps < 50000
        assert trial.reason == f"stopped by --timeout at step {trial.steps}"
    assert (counts.complete, counts.failed, counts.interrupted) == (0, 0, len(trials))
    assert result.stdout.splitlines()[-1].endswith("--confirm 1x2")


def test_the_command_that_continues_a_study_leaves_out_what_the_study_keeps(sqlite_url):
    result = search(sqlite_url, "--trials", "2", "--study", "c", "--steps", "30", "--seed", "3",
                    "--space", "lr=1e-3..1e-1:log", "--confirm", "1x2")  # fmt: skip

    continuing = result.stdout.splitlines()[-1].removeprefix("Continue it: ")
    assert continuing == (
        f"tuner search --study c --trials 4 --storage {shlex.quote(sqlite_url)} --confirm 1x2"
    )
    again = CliRunner().invoke(cli, shlex.split(continuing)[1:])
    assert again.exit_code == 0, again.output
    assert len(finished(sqlite_url, "c")) == 4


def drawn(storage, study):
    """Whether the first trial of ``study`` has stored its settings, written all at once."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).trials
    except KeyError:
        return False
    return bool(trials) and "lr" in trials[0].params


def test_a_trial_stopped_before_its_end_is_tried_again_when_the_study_goes_on(sqlite_url):
    # One process, stopped once its first trial has drawn its settings: a timeout could end it
    # before, on a busy machine, and leave nothing to try again. Settings that cannot diverge,
    # so that the trial tried again completes.
    long = ["--study", "again", "--steps", "8000", "--eval-every", "4000", "--confirm", "0"]
    long += ["--jobs", "1", "--task", "synthetic", "--optimizers", "adam"]
    long += ["--schedules", "constant", "--space", "lr=1e-4..1e-2:log"]
    first = subprocess.Popen([TUNER, "search", "--storage", sqlite_url, *long, "--no-defaults"])
    while not drawn(sqlite_url, "again"):
        assert first.poll() is None, "the search ended before its first trial drew its settings"
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130

    result = tuner("search", "--storage", sqlite_url, *long, "--trials", "1")

    assert result.exit_code == 0, result.output
    with open_results(sqlite_url) as results:
        stopped, again = results.trials("again")
    assert (stopped.outcome, again.outcome) == ("interrupted", "complete")
    assert again.params == stopped.params


def test_a_search_that_finds_its_new_study_made_meanwhile_samples_with_the_study_s_seed(
    tmp_path,
):
    # Planned before the study exists, as two searches started at once on a new study plan,
    # each drawing a seed of its own; the other one makes it first.
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    config = SearchConfig(task="synthetic", optimizers=["adam", "sgd"], trials=4, study="race",
                          schedules=["constant", "cosine"], steps=5, seed=8)  # fmt: skip
    late = plan_search(config, load_plugins())
    first = ["--study", "race", "--trials", "2", "--steps", "5", "--seed", "7", "--jobs", "1"]
    assert search(url, *first).exit_code == 0

    run_search(late, url)

    with open_results(url) as results:
        seeds = [results.trial("race", number).seed for number in range(4)]
        assert results.provenance("race").seed == 7
    assert seeds == [trial_seed(7, number) for number in range(4)]
