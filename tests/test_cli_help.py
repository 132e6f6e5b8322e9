"""`tuner` and `tuner db` alone show their help, as --help does, and no error; an unknown
command is one line and exit status 2. Run as installed, where the program is named tuner."""

import subprocess

import pytest
from helpers import TUNER


def run(*words):
    return subprocess.run([TUNER, *words], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("words", [[], ["db"]])
def test_a_group_alone_shows_its_help_on_stdout_and_exits_0(words):
    alone = run(*words)
    asked = run(*words, "--help")

    assert alone.returncode == 0, alone.stderr
    assert alone.stderr == ""
    assert alone.stdout == asked.stdout
    assert alone.stdout.startswith(f"Usage: tuner {' '.join([*words, ''])}[OPTIONS] COMMAND")


@pytest.mark.parametrize("words", [["nosuch"], ["db", "nosuch"]])
def test_an_unknown_command_is_one_line_and_exit_2(words):
    result = run(*words)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "Error: No such command 'nosuch'.\n"
