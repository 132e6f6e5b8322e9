"""What the tests share: tuner's command line, run in the test's own process or as the
installed command, and the options of a search short enough for a test."""

import os
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from tuner.cli import cli

Env = dict[str, str | None]

# The installed console script, beside this Python: a test that needs a process of its own
# (a signal, a pipe, a terminal, a time limit) runs it as a user would.
TUNER = Path(sys.executable).with_name("tuner")

# Two optimizers and two schedules on the synthetic task: a real search, in seconds. A tuple,
# so that no test can change what another searches.
FAST = ("--task", "synthetic", "--optimizers", "adam,sgd", "--schedules", "constant,cosine")
# The same without the confirmation runs, which cost a small search as much again: for a test
# that reads none.
UNCONFIRMED = (*FAST, "--confirm", "0")


def without_jobs() -> dict[str, str]:
    """This environment less the TUNER_JOBS that conftest.py sets: a search given no --jobs then
    runs --jobs auto, a worker a core, as a user's does."""
    return {k: v for k, v in os.environ.items() if k != "TUNER_JOBS"}


def tuner(*args: object, storage: str | None = None, env: Env | None = None) -> Result:
    """The command line run in this process with ``args``, on the database at ``storage`` where
    given, as a user without TUNER_DEBUG runs it: an error is one line, with no traceback."""
    given = [*args, "--storage", storage] if storage is not None else args
    return CliRunner().invoke(
        cli, [str(arg) for arg in given], env={"TUNER_DEBUG": None, **(env or {})}
    )


def succeeded(*args: object, storage: str | None = None) -> str:
    """What ``tuner`` with ``args`` printed on stdout; it must succeed."""
    result = tuner(*args, storage=storage)
    assert result.exit_code == 0, result.output
    return result.stdout


def printed(*args: object, storage: str | None = None) -> str:
    """What ``tuner`` with ``args`` printed; it must succeed and say nothing on stderr."""
    result = tuner(*args, storage=storage)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def one_error_line(stderr: str) -> str:
    """What a refused command wrote on stderr: one line, as a user without TUNER_DEBUG sees."""
    assert stderr.startswith("Error: ")
    assert len(stderr.splitlines()) == 1
    return stderr
