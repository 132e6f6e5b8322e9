"""A plugin cannot end a search without a recorded failure, nor wedge it: sys.exit() in a
trial fails that trial, and a step that hangs in Python is ended by the watchdog once
--timeout or a signal has stopped the search."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from helpers import TUNER

from tuner.api.workers import cores

UNRULY = Path(__file__).parent / "search_plugins" / "unruly_optimizers.py"
UNRULY_SEARCH = ["--task", "synthetic", "--schedules", "constant"]
UNRULY_SEARCH += ["--steps", "5", "--eval-every", "5"]
UNRULY_SEARCH += ["--confirm", "0", "--plugin", str(UNRULY), "--study", "u"]


ONE_SEEDED = ["--jobs", "1", "--seed", "0"]


def search(url, *args):
    return [TUNER, "search", "--storage", url, *UNRULY_SEARCH, *args]


def outcomes(url):
    listed = subprocess.run(
        [TUNER, "trials", "u", "--storage", url, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {t["number"]: (t["outcome"], t["reason"]) for t in json.loads(listed.stdout)}


def optuna_states(url):
    return [t.state.name for t in optuna.load_study(study_name="u", storage=url).trials]


def test_sys_exit_in_a_plugin_fails_its_trial_and_the_search_goes_on(sqlite_url):
    done = subprocess.run(
        # One process and a seed that draws adam between the quitter's trials: five failures
        # in a row would rightly stop the search.
        search(sqlite_url, "--optimizers", "adam,quitter", "--trials", "6", *ONE_SEEDED),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    recorded = outcomes(sqlite_url)
    quit_ = "a plugin called sys.exit(3) during the trial"
    assert ("failed", quit_) in recorded.values()
    assert sum(outcome in ("complete", "pruned") for outcome, _ in recorded.values()) == 6
    assert "RUNNING" not in optuna_states(sqlite_url)
    assert len(recorded) == len(optuna_states(sqlite_url))


def test_a_search_whose_every_trial_calls_sys_exit_ends_in_one_line(sqlite_url):
    done = subprocess.run(
        search(sqlite_url, "--optimizers", "quitter", "--no-defaults", "--trials", "20"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "Error: stopped after 5 failed trials in a row in study 'u'; the last: a plugin called "
        "sys.exit(3) during the trial"
    )
    assert optuna_states(sqlite_url) == ["FAIL"] * 5


STUCK = "in a step that did not return (a plugin that hangs?): ended by tuner's watchdog"


@pytest.mark.parametrize("optimizer", ["sleeper", "spinner"])
def test_a_step_that_hangs_ends_soon_after_timeout_recorded_as_failed(sqlite_url, optimizer):
    args = ["--optimizers", optimizer, "--no-defaults", "--trials", "5", "--timeout", "1"]
    began = time.monotonic()

    done = subprocess.run(search(sqlite_url, *args), capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 30
    # One trial a worker (--jobs auto), each stuck in its step.
    recorded = outcomes(sqlite_url)
    assert 1 <= len(recorded) <= cores()
    assert set(recorded.values()) == {("failed", f"still running 3 s after --timeout, {STUCK}")}
    assert optuna_states(sqlite_url) == ["FAIL"] * len(recorded)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_search_whose_step_hangs(sqlite_url, signum, tmp_path):
    args = ["--optimizers", "spinner", "--no-defaults", "--trials", "5"]
    hanging = tmp_path / "hanging"
    process = subprocess.Popen(
        search(sqlite_url, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "UNRULY_HANGING": str(hanging)},
    )
    try:
        deadline = time.monotonic() + 60
        while not hanging.exists():
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        process.send_signal(signum)
        signalled = time.monotonic()
        _, err = process.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        process.kill()

    assert process.returncode == 128 + signum, err
    assert took < 10
    assert "Traceback" not in err
    why = "the signal that stopped the search"
    recorded = outcomes(sqlite_url)
    assert 1 <= len(recorded) <= cores()
    assert set(recorded.values()) == {("failed", f"still running 3 s after {why}, {STUCK}")}
    assert optuna_states(sqlite_url) == ["FAIL"] * len(recorded)


def test_a_crash_in_native_code_leaves_its_trial_to_the_next_command_which_fails_it_at_once(
    sqlite_url,
):
    args = ["--optimizers", "crasher", "--no-defaults", "--trials", "5"]
    crashing = subprocess.Popen(search(sqlite_url, *args), stderr=subprocess.DEVNULL)
    assert crashing.wait(timeout=120) == -signal.SIGSEGV
    assert optuna_states(sqlite_url) == ["RUNNING"]

    began = time.monotonic()
    upgraded = subprocess.run(
        [TUNER, "db", "upgrade", "--storage", sqlite_url], capture_output=True, text=True
    )

    # At once, not after the heartbeat's grace: its process is seen gone from this machine.
    assert upgraded.returncode == 0, upgraded.stderr
    assert time.monotonic() - began < 30
    # Failed, and its settings queued again, as any dead worker's trial.
    assert optuna_states(sqlite_url) == ["FAIL", "WAITING"]
    ((outcome, reason),) = outcomes(sqlite_url).values()
    assert outcome == "failed"
    assert reason.startswith(f"its worker, process {crashing.pid} on this machine, ended ")
