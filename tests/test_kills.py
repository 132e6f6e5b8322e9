"""A trial's outcome is one fact: a worker killed at any point of a trial's end leaves tuner's
record and Optuna's state agreeing, once the dead worker's trial is reaped."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from helpers import TUNER

from tuner import Outcome, open_results

# A worker that kills itself, as SIGKILL would, at one point of trial 2's end.
WORKER = textwrap.dedent(
    """
    import os, signal, sys
    import optuna.study._optimize as optimize
    from tuner.cli import main
    from tuner.db.store import Store

    point, url = sys.argv[1:3]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def at_trial_2(wrapped, before):
        def wrapper(*args, **kwargs):
            number = kwargs["trial"].number if before == "tell" else args[2].number
            if before is not None and number == 2:
                die()
            result = wrapped(*args, **kwargs)
            if before is None and args[2].number == 2:
                die()
            return result
        return wrapper

    if point == "before Optuna's state":
        optimize._tell_with_warning = at_trial_2(optimize._tell_with_warning, "tell")
    elif point == "before tuner's record":
        Store.save_trial = at_trial_2(Store.save_trial, "record")
    else:
        Store.save_trial = at_trial_2(Store.save_trial, None)
    sys.argv = ["tuner", "search", "--storage", url, "--task", "synthetic", "--trials", "5",
                "--study", "k", "--optimizers", "adam,sgd", "--confirm", "0", "--quiet"]
    main()
    """
)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("point", ["before Optuna's state", "before tuner's record", "after both"])
def test_a_kill_at_any_point_of_a_trials_end_leaves_tuner_and_optuna_agreeing(storage_url, point):
    if storage_url.startswith("postgresql"):
        subprocess.run([TUNER, "db", "upgrade", "--storage", storage_url], check=True)
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, point, storage_url], capture_output=True, text=True
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr

    # The next worker reaps the dead one's trial once its heartbeat is older than the grace;
    # here a storage with a grace of a second does it.
    time.sleep(2)
    strict = optuna.storages.RDBStorage(storage_url, heartbeat_interval=1, grace_period=1)
    study = optuna.load_study(study_name="k", storage=strict)
    optuna.storages.fail_stale_trials(study)
    states = [t.state.name for t in study.trials]
    with open_results(storage_url) as results:
        read = results.trials("k")

    assert len(states) == 3 and "RUNNING" not in states
    assert [t.state for t in read] == states
    assert [t.number for t in read] == [0, 1, 2]
    assert outcomes_agree(study.trials)


def outcomes_agree(trials):
    """Whether the outcome in each trial's user attributes, where it has one, says what its
    state says: Optuna's tools show both."""
    said = {t.number: t.user_attrs["outcome"] for t in trials if "outcome" in t.user_attrs}
    return {n: Outcome(o).optuna_state for n, o in said.items()} == {
        t.number: t.state.name for t in trials if t.number in said
    }


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_told_to_optuna_whose_worker_died_before_its_record_is_filled_in_on_resume(
    sqlite_url,
):
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, "before tuner's record", sqlite_url],
        capture_output=True,
        text=True,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    told = optuna.load_study(study_name="k", storage=sqlite_url).trials[2]

    search = [TUNER, "search", "--storage", sqlite_url, "--study", "k", "--task", "synthetic"]
    resumed = subprocess.run(
        [*search, "--trials", "5", "--optimizers", "adam,sgd", "--confirm", "0", "--quiet"],
        capture_output=True,
        text=True,
    )

    assert resumed.returncode == 0, resumed.stderr
    with open_results(sqlite_url) as results:
        filled = results.trial("k", 2)
    assert filled.outcome.optuna_state == told.state.name
    assert filled.value == told.value
    assert filled.metrics and filled.metrics == {
        key: value
        for key, value in told.user_attrs.items()
        if key not in ("outcome", "reason", "steps", "population", "default")
    }


def ended_trials(database):
    """How many trials have ended in ``database``: none before Optuna has made its tables."""
    if not database.exists():
        return 0
    connection = sqlite3.connect(database)
    try:
        found = connection.execute("SELECT count(*) FROM trials WHERE state != 'RUNNING'")
        return found.fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        connection.close()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_searches_killed_at_random_moments_leave_each_outcome_saying_what_its_state_says(
    tmp_path,
):
    database = tmp_path / "tuner.db"
    url = f"sqlite:///{database}"
    search = [TUNER, "search", "--storage", url, "--study", "r", "--task", "synthetic"]
    search += ["--trials", "100000", "--confirm", "0", "--quiet"]
    rng = random.Random(27)
    for _ in range(20):
        worker = subprocess.Popen(search, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # Killed once it trains, at a moment of its trials' ends or between them.
            ended = ended_trials(database)
            deadline = time.monotonic() + 120
            while ended_trials(database) <= ended:
                assert time.monotonic() < deadline and worker.poll() is None, worker.stderr
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()

    # The last worker's trials are reaped, as each worker reaped those of the one before; one
    # killed before it named its worker once its three heartbeats (of a second here) are past.
    time.sleep(4)
    reaped = subprocess.run(
        [TUNER, "db", "upgrade", "--storage", url],
        capture_output=True,
        env={**os.environ, "TUNER_HEARTBEAT_S": "1"},
    )
    assert reaped.returncode == 0, reaped.stderr
    trials = optuna.load_study(study_name="r", storage=url).trials
    assert len(trials) > 20 and "RUNNING" not in {t.state.name for t in trials}
    assert outcomes_agree(trials)
