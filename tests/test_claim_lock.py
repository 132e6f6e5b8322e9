"""The claim lock on PostgreSQL, with real worker processes: a worker that waits for it waits
in the server's queue for the lock, not by asking again and again, and takes it when it is let
go; a worker holds it over its count and its new trials, not over their sampling. A database
of its own, so that the advisory lock of its study is no other test's."""

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from helpers import TUNER
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tuner.db import ClaimLock
from tuner.db.engine import make_engine

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
OPTIONS = ["--quiet", "--population", "1", "--storage"]
HELD_SAMPLING = Path(__file__).parent / "search_plugins" / "held_sampling.py"


@pytest.fixture
def held(own_database):
    """(URL, admin engine, the claim lock of study ``q``, held), ``q`` holding one trial: as
    another worker holds it between its count and its new trial."""
    url, admin = own_database
    search = [TUNER, "search", "--task", "synthetic", "--steps", "1", "--study", "q"]
    subprocess.run([*search, "--trials", "1", "--confirm", "0", *OPTIONS, url], check=True)
    engine = make_engine(url)
    lock = ClaimLock(engine, "q")
    assert lock.acquire(lambda: False)
    try:
        yield url, admin, lock
    finally:
        lock.release()
        engine.dispose()


def test_a_worker_waits_for_the_claim_lock_in_the_servers_queue_and_takes_it_once_let_go(held):
    url, admin, lock = held
    worker = subprocess.Popen(
        [TUNER, "worker", "q", "--trials", "3", *OPTIONS, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not _queued(admin, url):
        assert worker.poll() is None, worker.stderr.read()
        assert time.monotonic() < deadline, "the worker never queued for the claim lock"
        time.sleep(0.1)
    assert len(optuna.load_study(study_name="q", storage=url).trials) == 1
    lock.release()

    _, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0, errors
    trials = optuna.load_study(study_name="q", storage=url).trials
    assert [t.state in FINISHED for t in trials] == [True] * 3


def test_a_worker_queued_for_the_claim_lock_stops_at_ctrl_c_without_a_trial(held):
    url, admin, _ = held
    worker = subprocess.Popen(
        [TUNER, "worker", "q", "--trials", "3", *OPTIONS, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _queued(admin, url):
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    worker.send_signal(signal.SIGINT)
    # Within the server's lock_timeout, when it looks whether it was stopped.
    assert worker.wait(timeout=5) == 130
    assert not _queued(admin, url)
    assert len(optuna.load_study(study_name="q", storage=url).trials) == 1


@pytest.mark.parametrize("population", [1, 4])
def test_another_worker_takes_the_claim_lock_while_a_worker_samples_its_trials(
    own_database, tmp_path, population
):
    url, _ = own_database
    search = [TUNER, "search", "--task", "synthetic", "--steps", "1", "--study", "q"]
    subprocess.run([*search, "--trials", "1", "--confirm", "0", *OPTIONS, url], check=True)
    mark = tmp_path / "sampling"
    options = ["--trials", str(1 + population), "--population", str(population)]
    worker = subprocess.Popen(
        [TUNER, "worker", "q", *options, "--plugin", HELD_SAMPLING, "--quiet", "--storage", url],
        env={**os.environ, "TUNER_TEST_SAMPLING": str(mark)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine = make_engine(url)
    lock = ClaimLock(engine, "q")
    try:
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert worker.poll() is None, worker.stderr.read()
            assert time.monotonic() < deadline, "the worker never sampled a trial"
            time.sleep(0.1)
        # The worker's sampling waits for this test: held over it, the lock would never come.
        give_up = time.monotonic() + 10
        assert lock.acquire(lambda: time.monotonic() > give_up), "held while sampling"
        # Every trial of the population was written as running before the lock was let go.
        trials = optuna.load_study(study_name="q", storage=url).trials
        assert [t.state for t in trials[1:]] == [optuna.trial.TrialState.RUNNING] * population
        lock.release()
    except BaseException:
        worker.kill()
        raise
    finally:
        (tmp_path / "sampling.go").touch()
        lock.release()
        engine.dispose()

    _, errors = worker.communicate(timeout=120)
    assert worker.returncode == 0, errors
    trials = optuna.load_study(study_name="q", storage=url).trials
    assert [t.state in FINISHED for t in trials] == [True] * (1 + population)


def _queued(admin, url) -> bool:
    """Whether a session of ``url``'s database waits for an advisory lock."""
    with admin.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks JOIN pg_database d ON d.oid = database "
                    "WHERE locktype = 'advisory' AND NOT granted AND d.datname = :name"
                ),
                {"name": make_url(url).database},
            )
        )
