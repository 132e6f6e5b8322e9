"""Shell completion, as bash asks the installed console script for it: click's environment
variables in, the stored study names and the registered names out, from the storage the line
so far names."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

TUNER = Path(sys.executable).with_name("tuner")
FAST = ["--task", "synthetic", "--steps", "5", "--eval-every", "5", "--confirm", "0"]


def complete(line, cwd, storage=None, shell="bash"):
    """What ``shell`` offers for the last word of ``line`` (a trailing space: a new word)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env |= {"_TUNER_COMPLETE": f"{shell}_complete", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    if storage:
        env["TUNER_STORAGE"] = storage
    done = subprocess.run(
        [TUNER], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
    # bash_complete answers TYPE,VALUE a line.
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line]


def search(storage, study, cwd, *options):
    subprocess.run(
        [TUNER, "search", *FAST, "--trials", "1", "--study", study, "--storage", storage, *options],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=300,
    )


def two_studies(storage, cwd):
    """``storage``, holding a study of tuner's and one that Optuna's tables alone hold."""
    search(storage, "alpha-study", cwd, "--optimizers", "sgd", "--schedules", "cosine")
    optuna.create_study(study_name="optuna-only", storage=storage)
    return storage


@pytest.fixture
def stored(sqlite_url, tmp_path):
    return two_studies(sqlite_url, tmp_path)


def test_a_study_argument_completes_the_stored_study_names(storage_url, tmp_path):
    stored = two_studies(storage_url, tmp_path)
    assert complete("tuner best ", tmp_path, stored) == ["alpha-study", "optuna-only"]
    assert complete("tuner delete opt", tmp_path, stored) == ["optuna-only"]
    assert complete("tuner search --study al", tmp_path, stored) == ["alpha-study"]
    assert complete("tuner report alpha-study ", tmp_path, stored) == [
        "alpha-study",
        "optuna-only",
    ]


def test_the_storage_is_the_one_the_line_names_over_the_environment(stored, tmp_path):
    elsewhere = f"sqlite:///{tmp_path / 'other.db'}"
    search(elsewhere, "beta-study", tmp_path)

    assert complete(f"tuner trials --storage {elsewhere} ", tmp_path, stored) == ["beta-study"]
    assert complete("tuner show ", tmp_path, elsewhere) == ["beta-study"]


def test_the_filters_complete_what_the_study_used(stored, tmp_path):
    assert complete("tuner best alpha-study --optimizer ", tmp_path, stored) == ["sgd"]
    assert complete("tuner trials alpha-study --schedule ", tmp_path, stored) == ["cosine"]


def test_registered_names_complete_after_a_comma_too(tmp_path):
    assert complete("tuner search --task ", tmp_path) == ["digits", "synthetic", "tinylm"]
    assert complete("tuner search --optimizers adam,s", tmp_path) == [
        "adam,schedule_free_adamw",
        "adam,sgd",
    ]
    assert "adam,cosine" not in complete("tuner search --schedules cosine,", tmp_path)
    assert complete("tuner schedule co", tmp_path) == ["constant", "cosine"]


def test_zsh_and_fish_get_the_same_names(stored, tmp_path):
    # zsh is asked as bash is; fish gives the word being completed, not its index.
    for shell, word in [("zsh", "2"), ("fish", "alp")]:
        env = {**os.environ, "TUNER_STORAGE": stored, "_TUNER_COMPLETE": f"{shell}_complete"}
        env |= {"COMP_WORDS": "tuner best alp", "COMP_CWORD": word}
        out = subprocess.run([TUNER], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert "alpha-study" in out.stdout, shell
        assert "optuna-only" not in out.stdout, shell


def test_a_storage_that_is_not_there_completes_nothing_and_is_not_made(tmp_path):
    missing = tmp_path / "missing.db"
    assert complete("tuner best ", tmp_path, f"sqlite:///{missing}") == []
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    assert complete(f"tuner best --storage {unreachable} ", tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_completing_study_names_from_sqlite_loads_no_optuna_mlx_or_sqlalchemy(stored, tmp_path):
    # In the console script's own process: what it imports is what each TAB waits for.
    probe = (
        "import sys\n"
        "from tuner.cli import cli\n"
        "try:\n"
        "    cli(prog_name='tuner')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('optuna', 'mlx', 'sqlalchemy') if m in sys.modules))\n"
    )
    env = {**os.environ, "TUNER_STORAGE": stored, "_TUNER_COMPLETE": "bash_complete"}
    env |= {"COMP_WORDS": "tuner best ", "COMP_CWORD": "2"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == ["plain,alpha-study", "plain,optuna-only", "[]"]
