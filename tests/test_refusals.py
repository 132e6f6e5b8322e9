"""`tuner search` refuses, before anything is written, what could never train or would cost the
machine: one line on stderr, exit status 2 (1 for a package that is not installed), and the
database as it was, or never made."""

import hashlib
import importlib.util
import subprocess
from pathlib import Path

import pytest
from helpers import TUNER, UNCONFIRMED
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from tuner import open_results
from tuner.samplers import trial_seed

PLUGINS = Path(__file__).parent / "search_plugins"


def search(storage, *args):
    # A process of its own, with a time limit: what used to be accepted may run for hours.
    return subprocess.run(
        [TUNER, "search", "--storage", storage, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--task", "synthetic", "--steps", "10000000"],
            "--steps 10000000 is more than 1000000: a trial keeps the loss and learning rate "
            "of every step, in memory and in the database",
        ),
        (
            ["--task", "synthetic", "--batch-size", "513"],
            "--batch-size 513 is more than the 512 training rows of task 'synthetic': "
            "a batch holds at most all of them",
        ),
        (
            ["--task", "synthetic", "--steps", "200000", "--batch-size", "512"],
            "200000 steps of 512 rows draw 102400000 rows, more than 100000000: a trial holds "
            "the order of all its rows in memory from its first step (16 bytes a row); "
            "ask for fewer --steps or a smaller --batch-size",
        ),
        (
            ["--seed", "-1"],
            "--seed must be from 0 to 4294967295 (2**32 - 1, what Optuna's samplers take), got -1",
        ),
        (
            ["--seed", str(2**32)],
            "--seed must be from 0 to 4294967295 (2**32 - 1, what Optuna's samplers take), "
            "got 4294967296",
        ),
        (
            ["--study", ""],
            "--study is empty or only spaces: give the study a name, or leave --study out for "
            "a new one",
        ),
        (
            ["--study", " \t "],
            "--study is empty or only spaces: give the study a name, or leave --study out for "
            "a new one",
        ),
        (
            ["--study", "s" * 513],
            "--study is 513 characters long: a study's name has at most 512 (Optuna's limit)",
        ),
        (
            ["--task", "synthetic", "--space", "warmup=0,0.99999"],
            "--space warmup=0,0.99999: a warmup of 0.99999 of the 100 steps rounds to 100, "
            "leaving no step after it",
        ),
        (
            ["--schedules", "wsd", "--space", "wsd.cooldown=0.5..1.5"],
            "--space wsd.cooldown: 1.5 is outside 0..1, the values it can take",
        ),
        (
            ["--schedules", "wsd", "--space", "wsd.cooldown=-0.1,0.2"],
            "--space wsd.cooldown: -0.1 is outside 0..1, the values it can take",
        ),
        (
            ["--schedules", "cosine", "--space", "cosine.end_factor=-1..0.1"],
            "--space cosine.end_factor: -1 is outside 0..1, the values it can take",
        ),
        (
            ["--schedules", "exponential", "--space", "exponential.decay_rate=1.01"],
            "--space exponential.decay_rate: 1.01 is outside (0, 1], the values it can take",
        ),
        (
            [*UNCONFIRMED, "--space", "adam.beta1=2"],
            "--space adam.beta1: 2 is outside [0, 1), the values it can take",
        ),
        (
            [*UNCONFIRMED, "--space", "sgd.momentum=-5"],
            "--space sgd.momentum: -5 is outside [0, 1), the values it can take",
        ),
        (
            [*UNCONFIRMED, "--space", "adam.beta2=0.99..1"],
            "--space adam.beta2: 1 is outside [0, 1), the values it can take",
        ),
        (
            ["--task", "synthetic", "--optimizers", "adamw", "--space", "adamw.weight_decay=-1"],
            "--space adamw.weight_decay: -1 is outside [0, inf), the values it can take",
        ),
        (
            ["--task", "synthetic", "--optimizers", "rmsprop", "--space", "rmsprop.eps=0,1e-8"],
            "--space rmsprop.eps: 0 is outside (0, inf), the values it can take",
        ),
        (
            [
                "--task",
                "synthetic",
                "--optimizers",
                "adafactor",
                "--space",
                "adafactor.decay_rate=-0.8..0.5",
            ],
            "--space adafactor.decay_rate: 0.5 is outside -1..0, the values it can take",
        ),
        (
            ["--task", "synthetic", "--optimizers", "nadamw", "--space", "nadamw.beta2=0.99,1"],
            "--space nadamw.beta2: 1 is outside [0, 1), the values it can take",
        ),
        (
            ["--schedules", "cosine,wsd", "--space", "wsd.shape=sqrt,cube"],
            "schedule 'wsd' cannot be built: ValueError: no cooldown shape 'cube'; "
            "the shapes are sqrt, linear, cosine",
        ),
        (
            ["--plugin", PLUGINS / "hollow_optimizer.py", "--optimizers", "adam,hollow"],
            "optimizer 'hollow' cannot be used: its build returned None, "
            "not an mlx.optimizers.Optimizer",
        ),
        (
            ["--plugin", PLUGINS / "nan_schedule.py", "--schedules", "constant,undefined"],
            "schedule 'undefined' gives the learning rate nan at step 0, not a finite number",
        ),
        (
            ["--plugin", PLUGINS / "vector_loss.py", "--task", "per_row"],
            "the loss of task 'per_row' is an array of shape (4,) on 4 validation rows, "
            "not a scalar: reduce it, to its mean say",
        ),
    ],
)
def test_a_search_that_cannot_run_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    db = tmp_path / "tuner.db"

    result = search(f"sqlite:///{db}", "--trials", "2", *args)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"
    assert not db.exists()


def test_a_study_name_too_long_for_postgresql_is_refused_before_it_is_reached(postgres_url):
    result = search(postgres_url, *UNCONFIRMED, "--study", "s" * 600)

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "Error: --study is 600 characters long: a study's name has at most 512 (Optuna's limit)\n"
    )
    engine = create_engine(postgres_url, poolclass=NullPool)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_study_resumed_with_another_seed_is_refused_and_left_as_it_was(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    made = search(storage, *UNCONFIRMED, "--trials", "2", "--study", "s", "--seed", "7")
    assert made.returncode == 0, made.stderr
    before = digest(tmp_path / "tuner.db")

    result = search(storage, *UNCONFIRMED, "--trials", "4", "--study", "s", "--seed", "3")

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "Error: study 's' was created with seed 7, not 3: leave --seed out to continue it, "
        "or give a new --study name\n"
    )
    assert digest(tmp_path / "tuner.db") == before


def test_a_study_resumed_without_a_seed_goes_on_with_its_own(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    assert (
        search(storage, *UNCONFIRMED, "--trials", "2", "--study", "s", "--seed", "7").returncode
        == 0
    )

    resumed = search(storage, *UNCONFIRMED, "--trials", "3", "--study", "s")
    fresh = search(storage, *UNCONFIRMED, "--trials", "1", "--study", "new")

    assert resumed.returncode == 0, resumed.stderr
    assert fresh.returncode == 0, fresh.stderr
    with open_results(storage) as results:
        assert results.trial("s", 2).seed == trial_seed(7, 2)
        assert results.provenance("s").seed == 7
        # Its own, drawn, not the other study's.
        assert results.provenance("new").seed != 7


@pytest.mark.parametrize("value", ["abc", "-1", "4294967296"])
def test_a_tuner_seed_that_is_no_seed_is_refused_in_one_line(tmp_path, monkeypatch, value):
    db = tmp_path / "tuner.db"
    monkeypatch.setenv("TUNER_SEED", value)

    done = subprocess.run(
        [TUNER, "search", "--task", "synthetic", "--trials", "1", "--storage", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"Error: TUNER_SEED='{value}': give a new study's seed, a whole number from 0 to "
        "4294967295\n"
    )
    assert not db.exists()


@pytest.mark.parametrize(("sampler", "package"), [("cmaes", "cmaes"), ("gp", "torch")])
def test_a_sampler_whose_package_is_missing_is_one_line_exit_1_and_writes_nothing(
    tmp_path, sampler, package
):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    db = tmp_path / "tuner.db"

    result = search(f"sqlite:///{db}", "--trials", "2", "--sampler", sampler)

    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"Error: --sampler {sampler} needs the {package} package: pip install {package}\n"
    )
    assert not db.exists()
