"""Every command tuner prints for pasting runs what it says in a shell, whatever the study is
called: a name that a shell would run as a command, or whose quote would end its word, is
quoted."""

import os
import re
import subprocess

import pytest
from helpers import TUNER

TINY = ["--task", "synthetic", "--steps", "5", "--eval-every", "5", "--confirm", "0"]


def pasted(line, cwd):
    """Run ``line`` as a user who pasted it into bash would, with this tuner first on PATH."""
    env = {**os.environ, "PATH": f"{TUNER.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def two_trials(folder, *args, program=TUNER, env=None):
    """A search of two trials in ``folder``, with ``args``, run as ``program`` with ``env``."""
    storage = f"sqlite:///{folder / 'tuner.db'}"
    return subprocess.run(
        [program, "search", *TINY, "--trials", "2", *args, "--storage", storage],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def printed_commands(stdout):
    """The commands to look closer, then the one that continues the study."""
    (go_on,) = re.findall(r"^Continue it: (.*)$", stdout, re.MULTILINE)
    look = re.search(r"^Look closer: (.*?)\n\S", stdout, re.MULTILINE | re.DOTALL)
    return [line.strip() for line in look.group(1).splitlines()] + [go_on]


@pytest.mark.parametrize("name", ["$(touch x)", "it's"])
def test_the_printed_commands_run_on_the_study_and_nothing_else(tmp_path, name):
    searched = two_trials(tmp_path, "--study", name)
    assert searched.returncode == 0, searched.stderr
    *closer, go_on = printed_commands(searched.stdout)

    for line in closer:
        # A name that the shell changed would be a study that is not there: exit status 2.
        shown = pasted(line, tmp_path)
        assert shown.returncode == 0, (line, shown.stderr)
    continued = pasted(go_on, tmp_path)

    assert continued.returncode == 0, (go_on, continued.stderr)
    assert "Top 4 of 4 finished trials" in continued.stdout
    assert sorted(os.listdir(tmp_path)) == ["tuner.db", "tuner.db-claims"]


@pytest.mark.parametrize("jobs", ["auto", "0"])
def test_the_command_that_continues_a_search_gives_jobs_as_typed(tmp_path, jobs):
    searched = two_trials(tmp_path, "--jobs", jobs)
    assert searched.returncode == 0, searched.stderr
    go_on = printed_commands(searched.stdout)[-1]

    continued = pasted(go_on, tmp_path)

    assert f" --jobs {jobs}" in go_on
    assert continued.returncode == 0, (go_on, continued.stderr)
    assert "Top 4 of 4 finished trials" in continued.stdout


def test_where_tuner_is_not_on_path_the_commands_run_it_as_it_was_invoked(tmp_path):
    # As after the quickstart, which runs .venv/bin/tuner without activating the venv.
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}
    invoked = os.path.relpath(TUNER, tmp_path)
    searched = two_trials(tmp_path, "--study", "s", program=invoked, env=bare)
    assert searched.returncode == 0, searched.stderr

    for line in printed_commands(searched.stdout):
        assert line.startswith(f"{invoked} "), line
        ran = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=bare, capture_output=True, text=True
        )
        assert ran.returncode == 0, (line, ran.stderr)


def test_where_tuner_is_on_path_the_commands_say_tuner(tmp_path):
    on_path = {**os.environ, "PATH": f"{TUNER.parent}{os.pathsep}{os.environ['PATH']}"}
    searched = two_trials(tmp_path, "--study", "s", env=on_path)

    assert searched.returncode == 0, searched.stderr
    assert [line.split()[:2] for line in printed_commands(searched.stdout)] == [
        ["tuner", "best"],
        ["tuner", "show"],
        ["tuner", "compare"],
        ["tuner", "search"],
    ]
