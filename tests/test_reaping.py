"""A worker's death costs its one trial: failed once its heartbeat falls silent (or never beat),
recorded with how long it ran, retried, and the study still ends at its count exactly."""

import json
import os
import random
import signal
import subprocess
import time
from datetime import datetime

import optuna
import pytest
from helpers import TUNER
from stored import stored_trials

from tuner.db import optuna_storage

# A trial silent for three heartbeats is dead: three seconds here.
FAST_HEARTBEAT = {**os.environ, "TUNER_HEARTBEAT_S": "1"}
OPTUNA_STATE = {
    "complete": "COMPLETE",
    "pruned": "PRUNED",
    "diverged": "PRUNED",
    "failed": "FAIL",
    "interrupted": "FAIL",
}


def run(*args, **kwargs):
    return subprocess.run([TUNER, *args], capture_output=True, text=True, env=FAST_HEARTBEAT,
                          timeout=300, **kwargs)  # fmt: skip


def make_study(url, name, *options):
    if url.startswith("postgresql"):
        assert run("db", "upgrade", "--storage", url).returncode == 0
    made = run("search", "--storage", url, "--study", name, "--confirm", "0", *options)
    assert made.returncode == 0, made.stderr


def stored_study(url, study):
    try:
        optuna.load_study(study_name=study, storage=url)
    except KeyError:
        return False
    return True


def running(url, study):
    trials = optuna.load_study(study_name=study, storage=url).trials
    return [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


def agree(url, study):
    """Whether every record of tuner's says what Optuna's state says."""
    states = {
        t.number: t.state.name for t in optuna.load_study(study_name=study, storage=url).trials
    }
    return {r.number: OPTUNA_STATE[r.outcome] for r in stored_trials(url, study)} == {
        r.number: states[r.number] for r in stored_trials(url, study)
    }


# The dead worker is played by study.ask(), which Optuna's heartbeat warns is not optimize().
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_reaped_and_recorded(
    storage_url, monkeypatch
):
    make_study(storage_url, "b", "--task", "synthetic", "--optimizers", "adam,sgd", "--trials", "2")
    monkeypatch.setenv("TUNER_HEARTBEAT_S", "1")
    storage = optuna_storage(storage_url)
    dead = optuna.load_study(study_name="b", storage=storage).ask()
    lr = dead.suggest_float("lr", 1e-4, 1.0, log=True)
    storage.engine.dispose()
    time.sleep(3.5)

    worker = run("worker", "b", "--trials", "3", "--storage", storage_url, "--quiet")

    assert worker.returncode == 0, worker.stderr
    trials = optuna.load_study(study_name="b", storage=storage_url).trials
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    assert not running(storage_url, "b")
    record = {r.number: r for r in stored_trials(storage_url, "b")}[dead.number]
    assert (record.outcome, record.reason) == ("failed", "its worker died as the trial began")
    assert record.params == {"lr": lr}
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3
    assert agree(storage_url, "b")


def test_a_killed_trial_is_reaped_by_db_upgrade_with_the_time_it_ran(storage_url):
    if storage_url.startswith("postgresql"):
        assert run("db", "upgrade", "--storage", storage_url).returncode == 0
    # One trial long enough to be killed while it trains.
    search = ["search", "--storage", storage_url, "--study", "k", "--task", "synthetic"]
    search += ["--steps", "200000", "--eval-every", "100000", "--trials", "1"]
    worker = subprocess.Popen([TUNER, *search], env=FAST_HEARTBEAT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not running(storage_url, "k") if stored_study(storage_url, "k") else True:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.1)
    # From the trial's own start, which a loaded machine may see late.
    (trial,) = running(storage_url, "k")
    time.sleep(3)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    ran = (datetime.now() - trial.datetime_start).total_seconds()
    time.sleep(5)

    upgrade = run("db", "upgrade", "--storage", storage_url)
    reaped_after = (datetime.now() - trial.datetime_start).total_seconds()

    assert upgrade.returncode == 0, upgrade.stderr
    assert "Failed 1 trial(s) whose workers had died" in upgrade.stdout
    assert not running(storage_url, "k")
    record = stored_trials(storage_url, "k")[-1]
    assert record.outcome == "failed"
    # Its worker ran on this machine, and is known to have ended.
    assert record.reason.startswith(f"its worker, process {worker.pid} on this machine, ended")
    # The time it ran, to a heartbeat and SQLite's whole seconds; not the time until it was
    # reaped.
    assert ran - 2.5 < record.duration_s < ran + 1.5 < reaped_after - 2
    assert agree(storage_url, "k")
    again = run("db", "upgrade", "--storage", storage_url, "--format", "json")
    assert json.loads(again.stdout)["reaped"] == 0


def test_two_workers_one_killed_and_restarted_five_times_end_the_study_at_its_count(storage_url):
    target = 40
    make_study(storage_url, "d", "--task", "digits", "--trials", "1", "--steps", "1000")
    worker = [TUNER, "worker", "d", "--trials", str(target), "--storage", storage_url, "--quiet"]
    steady = subprocess.Popen(worker, env=FAST_HEARTBEAT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    rng = random.Random(16)
    for _ in range(5):
        doomed = subprocess.Popen(worker, env=FAST_HEARTBEAT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        # Once it trains a trial beside the steady worker's, somewhere in it.
        deadline = time.monotonic() + 60
        while len(running(storage_url, "d")) < 2:
            assert time.monotonic() < deadline and steady.poll() is None
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    last = subprocess.run(worker, env=FAST_HEARTBEAT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    _, err = steady.communicate(timeout=300)

    assert (steady.returncode, last.returncode) == (0, 0), (err, last.stderr)
    trials = optuna.load_study(study_name="d", storage=storage_url).trials
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states
    assert states.count("COMPLETE") + states.count("PRUNED") == target
    assert agree(storage_url, "d")
    # Every trial a kill cut short is failed, and recorded so with the reason.
    recorded = {r.number: r for r in stored_trials(storage_url, "d")}
    for trial in trials:
        if trial.state.name == "FAIL" and trial.number in recorded:
            assert recorded[trial.number].outcome == "failed"
