"""The search file: `tuner search --config FILE` with flags over it, the errors that name a
key and its line, `tuner show STUDY --config` written back and searched again, the same file
and a space mapping given to `tuner.search`, and the example file run by the console script."""

import inspect
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import TUNER

import tuner
from tuner import open_results
from tuner.cli import cli
from tuner.cli.search import search_command
from tuner.errors import BadInput
from tuner.search_file import CLI_ONLY, SCHEMA, Lines, read

EXAMPLE = Path(__file__).parent.parent / "examples" / "search.toml"
FAST = """task = "synthetic"
optimizers = ["adam", "sgd"]
schedules = "constant,cosine"
confirm = 0
jobs = 1
"""


def write(tmp_path, text, name="search.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def search(*args):
    return CliRunner().invoke(cli, ["search", *args])


def space_of(storage, study):
    with open_results(storage) as results:
        return results.settings(study)["space"]


def first_params(storage, study, n):
    with open_results(storage) as results:
        return [results.trial(study, number).params for number in range(n)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (FAST + "trails = 3\n", "search.toml:6: unknown key 'trails'; did you mean 'trials'?"),
        ('trials = "3"\n', 'search.toml:1: trials must be an integer, not a string ("3")'),
        ("trials = 0\n", "search.toml:1: trials must be at least 1, not 0"),
        ("\nseed = -1\n", "search.toml:2: seed must be from 0 to 4294967295, not -1"),
        ("timeout = -5\n", "search.toml:1: timeout must be above 0, not -5"),
        ('sampler = "tpee"\n', "sampler must be one of tpe, random, cmaes, gp, qmc, not 'tpee'"),
        ("defaults = 1\n", "search.toml:1: defaults must be true or false, not an integer (1)"),
        ('confirm = "3y3"\n', 'confirm must be "KxS", the K best with S seeds each ("3x3"), or 0'),
        ("optimizers = []\n", "search.toml:1: optimizers names none; give at least one"),
        (
            "[space]\nlr = '1e-3..1e-1'\n\n[space.adam]\nbeta1 = {low = 0.8, hihg = 0.9}\n",
            "search.toml:5: space.adam.beta1 is a range: it takes low, high and log, not 'hihg'; "
            "did you mean 'high'?",
        ),
        (
            "[space]\nsgd.nesterov = []\n",
            "search.toml:2: space.sgd.nesterov is an empty array: give at least one value",
        ),
        ("space = 3\n", "search.toml:1: space must be a table of parameters, not an integer (3)"),
        ("trials = \n", "search.toml: Invalid value (at line 1, column 10)"),
        # Wrong against the registry, found where --space's and the flags' are.
        (FAST + "[space]\nwarmup = 0\nlr2 = 0.1\n", "search.toml:8: --space 'lr2=0.1': unknown"),
        (
            FAST + '[space]\nadam.beta1 = "0.5..1.5"\n',
            "search.toml:7: --space adam.beta1: 1.5 is outside",
        ),
        (FAST + '[space]\nlr = "0..1"\n', "search.toml:7: --space lr=0..1: a learning rate"),
        (
            FAST.replace('"adam", "sgd"', '"sgd", "adamm"'),
            "search.toml:2: unknown optimizer 'adamm'; did you mean 'adam'?",
        ),
        (FAST + "steps = 2000000\n", "search.toml:6: --steps 2000000 is more than 1000000"),
    ],
)
def test_a_wrong_file_is_one_line_naming_the_key_and_line_exit_2_nothing_written(
    tmp_path, text, message
):
    db = tmp_path / "tuner.db"

    result = search("--config", str(write(tmp_path, text)), "--storage", f"sqlite:///{db}")

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: "), result.stderr
    path = str(tmp_path / "search.toml")
    assert message.replace("search.toml", path, 1) in result.stderr, result.stderr
    assert not db.exists()


def test_lines_are_found_for_each_way_toml_writes_a_key():
    lines = Lines(
        "# a comment = 1\n"
        "trials = 3\n"
        "[space]\n"
        'lr = "1e-4..1e-1:log"\n'
        "adam.beta1 = 0.9\n"
        '"sgd.momentum" = { low = 0.8, high = 0.9 }\n'
        "\n"
        "[ space . 'cosine' ]\n"
        "end_factor = 0.0\n"
    )

    assert lines.find(["trials"]) == 2
    assert lines.find(["space"]) == 3
    assert lines.find(["space", "lr"]) == 4
    assert lines.find(["space", "adam", "beta1"]) == 5
    assert lines.find(["space", "sgd.momentum", "high"]) == 6
    assert lines.find(["space", "cosine"]) == 8
    assert lines.find(["space", "cosine", "end_factor"]) == 9
    assert lines.find(["nowhere"]) is None


def test_flags_override_the_file_and_a_space_flag_the_parameter_it_names(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    text = FAST + 'study = "from-file"\ntrials = 2\n[space]\nlr = "1e-3..1e-1:log"\n'
    text += "sgd.momentum = 0.9\n"
    config = str(write(tmp_path, text))

    result = search(
        "--config", config, "--storage", storage, "--study", "flag", "--space", "lr=0.01..0.02"
    )

    assert result.exit_code == 0, result.output
    with open_results(storage) as results:
        assert results.study_names() == ["flag"]
        assert results.study("flag").counts.finished == 2
        command = results.provenance("flag").command
    assert command.startswith(f"tuner search --config {config} ")
    assert command.endswith(" --space lr=0.01..0.02")
    space = space_of(storage, "flag")
    assert space["lr"] == {"type": "float", "low": 0.01, "high": 0.02, "log": False}
    assert space["optimizers"]["sgd"]["momentum"] == {"type": "choice", "values": [0.9]}
    assert list(space["schedules"]) == ["constant", "cosine"]
    # The commands printed to look closer take no --config: they carry the file's storage.
    assert f"tuner best flag --storage {storage}" in result.stdout


def test_show_config_writes_a_file_that_continues_the_study_or_repeats_it(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    first = search(
        "--storage", storage, "--task", "synthetic", "--optimizers", "adam,sgd", "--trials", "2",
        "--study", "first", "--seed", "3", "--space", "sgd.momentum=0.9", "--no-defaults",
        "--confirm", "0", "--jobs", "1",
    )  # fmt: skip
    assert first.exit_code == 0, first.output

    shown = CliRunner().invoke(cli, ["show", "first", "--config", "--storage", storage])

    assert shown.exit_code == 0, shown.output
    file = write(tmp_path, shown.stdout, "first.toml")
    assert read(file).settings | {"space": None} == {
        "study": "first",
        "storage": storage,
        "task": "synthetic",
        "metric": "val_loss",
        "trials": 2,
        "seed": 3,
        "steps": 100,
        "batch_size": 32,
        "eval_every": 25,
        "sampler": "tpe",
        "pruner": "quartile",
        "defaults": False,
        "optimizers": ["adam", "sgd"],
        "schedules": ["constant", "linear", "cosine", "exponential", "step", "wsd"],
        "space": None,
    }
    assert "momentum = 0.9\n" in shown.stdout
    more = search("--config", str(file), "--trials", "3", "--confirm", "0", "--jobs", "1")
    assert more.exit_code == 0, more.output
    assert more.stderr == ""
    with open_results(storage) as results:
        assert results.study("first").counts.finished == 3
    again = search("--config", str(file), "--study", "again", "--confirm", "0", "--jobs", "1")
    assert again.exit_code == 0, again.output
    assert "has this seed and these settings: this study will repeat its trials" in again.stderr
    assert first_params(storage, "again", 2) == first_params(storage, "first", 2)
    assert space_of(storage, "again") == space_of(storage, "first")


def test_show_config_takes_the_study_alone(tmp_path):
    result = CliRunner().invoke(cli, ["show", "any", "3", "--config"])

    assert result.exit_code == 2
    assert result.stderr == "Error: --config prints a study's search file: give STUDY alone\n"
    missing = CliRunner().invoke(cli, ["show", "any"])
    assert (missing.exit_code, missing.stderr) == (2, "Error: Missing argument 'NUMBER'.\n")


def test_tuner_search_reads_the_file_or_a_mapping_and_takes_a_space_mapping(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    config = write(tmp_path, FAST + 'trials = 2\n[space]\nlr = "1e-3..1e-1:log"\n')

    with pytest.warns(UserWarning, match=r"search.toml:5: jobs is tuner search's alone") as said:
        results = tuner.search(
            config=config,
            storage=storage,
            study="from-file",
            space={"lr": (1e-3, 1e-2, "log"), "sgd": {"momentum": 0.9}},
        )

    # Said of the caller's line, not of tuner's.
    assert {w.filename for w in said if "jobs is" in str(w.message)} == {__file__}
    assert results.summary().counts.finished == 2
    space = space_of(storage, "from-file")
    assert space["lr"] == {"type": "float", "low": 0.001, "high": 0.01, "log": True}
    assert space["optimizers"]["sgd"]["momentum"] == {"type": "choice", "values": [0.9]}
    mapping = {"task": "synthetic", "optimizers": ["adam"], "trials": 1, "confirm": 0}
    mapping["space"] = {"adam": {"beta1": {"low": 0.8, "high": 0.9}}, "warmup": [0.0]}
    tuner.search(config=mapping, storage=storage, study="from-mapping")
    space = space_of(storage, "from-mapping")
    assert list(space["optimizers"]) == ["adam"]
    assert space["optimizers"]["adam"]["beta1"]["low"] == 0.8
    assert space["warmup"] == {"type": "choice", "values": [0.0]}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"config": {"trails": 3}}, "config: unknown key 'trails'; did you mean 'trials'?"),
        ({"config": {"trials": 0}}, "config: trials must be at least 1, not 0"),
        (
            {"space": {"lr": (1e-3, 1e-1, "lin")}},
            'space.lr is a tuple, which stands for a range: (low, high) or (low, high, "log")',
        ),
        ({"config": {"space": {"lr2": 0.1}}}, "--space 'lr2=0.1': unknown shared parameter"),
    ],
)
def test_tuner_search_refuses_a_wrong_config_or_space_naming_the_key(tmp_path, options, message):
    db = tmp_path / "tuner.db"

    with pytest.raises(BadInput) as error:
        tuner.search(task="synthetic", storage=f"sqlite:///{db}", **options)

    assert message in str(error.value)
    assert not db.exists()


def test_the_schema_the_command_and_tuner_search_name_the_same_options():
    command = {param.name for param in search_command.params} - {"config"}
    function = set(inspect.signature(tuner.search).parameters)
    # What a task given by its parts is made of, the file itself, and Python's callbacks.
    parts = {"model", "train", "valid", "loss", "metrics", "test", "config", "callbacks"}

    assert set(SCHEMA) == command
    assert set(SCHEMA) >= CLI_ONLY
    assert set(SCHEMA) - CLI_ONLY == function - parts


def test_the_command_and_tuner_search_have_the_same_defaults(monkeypatch):
    for name in [name for name in os.environ if name.startswith("TUNER_")]:
        monkeypatch.delenv(name)
    command = search_command.make_context("search", []).params
    function = inspect.signature(tuner.search).parameters
    # None is the function's "read TUNER_BLAS", whose default the command shows as auto.
    shared = (set(command) & set(function)) - {"blas"}

    assert {name: command[name] for name in shared} == {
        name: function[name].default for name in shared
    }


def test_the_example_file_names_every_key_and_runs_with_the_installed_tuner(tmp_path):
    # Each key set, or shown commented out.
    commented = re.findall(r"^# (\w+) = ", EXAMPLE.read_text(), re.MULTILINE)
    assert set(read(EXAMPLE).settings) | set(commented) == set(SCHEMA)
    storage = f"sqlite:///{tmp_path / 'tuner.db'}"
    fast = ["--storage", storage, "--trials", "2", "--steps", "50", "--confirm", "0", "--jobs", "1"]

    result = subprocess.run(
        [TUNER, "search", "--config", EXAMPLE, *fast],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "Study digits-three-optimizers in " in result.stdout
    with open_results(storage) as results:
        assert results.settings("digits-three-optimizers")["metric"] == "accuracy"
    space = space_of(storage, "digits-three-optimizers")
    assert space["optimizers"]["adamw"]["weight_decay"]["high"] == 0.1
    assert space["schedules"]["wsd"]["cooldown"] == {
        "type": "float",
        "low": 0.1,
        "high": 0.3,
        "log": False,
    }


def test_show_config_leaves_out_a_storage_url_that_holds_a_password(postgres_url, tmp_path):
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    made = search("--storage", url, "--config", str(write(tmp_path, FAST + "trials = 1\n")))
    assert made.exit_code == 0, made.output
    study = made.stdout.strip().splitlines()[-1].split()[5]

    shown = CliRunner().invoke(cli, ["show", study, "--config", "--storage", url])

    assert shown.exit_code == 0, shown.output
    assert "s3cret" not in shown.stdout
    assert "storage" not in read(write(tmp_path, shown.stdout, "shown.toml")).settings
    assert "# storage is left out, as its URL holds a password: give --storage." in shown.stdout
