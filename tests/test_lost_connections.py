"""PostgreSQL connections ended under a running search (``pg_terminate_backend``, as a
failover or an administrator does): each operation is tried again on a new connection, and the
search goes on, leaving no trial running and every record agreeing with Optuna's state. A
database of its own for each test, so that ending its connections ends no one else's."""

import subprocess
import time

import optuna
import pytest
from helpers import TUNER
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from stored import stored_trials

from tuner.db.workers import WORKER_ATTR
from tuner.results import Outcome


@pytest.fixture
def database(own_database):
    """(URL of a new database, a function that ends every connection to it)."""
    url, admin = own_database

    def terminate() -> int:
        with admin.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": make_url(url).database},
            )

    return url, terminate


def wait_for_workers(url, count, seconds=120):
    """Until ``count`` processes have each started a trial, read from Optuna's tables."""
    engine = create_engine(url)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as connection:
                    running = connection.scalar(
                        text(
                            "SELECT count(DISTINCT value_json) FROM trial_system_attributes "
                            "WHERE key = :key"
                        ),
                        {"key": WORKER_ATTR},
                    )
                if running >= count:
                    return
            except ProgrammingError:  # the search has not made Optuna's tables yet
                pass
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError(f"fewer than {count} processes started a trial in {seconds} s")


def test_twenty_rounds_of_ended_connections_under_two_jobs_lose_nothing(database):
    url, terminate = database
    command = [TUNER, "search", "--task", "synthetic", "--steps", "100", "--study", "p"]
    command += ["--trials", "100000", "--timeout", "25", "--jobs", "2", "--confirm", "0"]
    search = subprocess.Popen(
        [*command, "--quiet", "--storage", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Once both processes train: what they do from then on is what is tried again. A
        # worker still starting reads the study once, untried again (see the docs' errors).
        wait_for_workers(url, 2)
        ended = 0
        for _ in range(20):
            ended += terminate()
            time.sleep(0.5)
        _, stderr = search.communicate(timeout=120)
    finally:
        search.kill()

    assert ended >= 20
    assert search.returncode == 0, stderr
    assert " failed: " not in stderr
    # Those that --timeout stopped are queued again, WAITING: no trials yet.
    study = optuna.load_study(study_name="p", storage=url)
    trials = [t for t in study.trials if t.state.name != "WAITING"]
    assert len(trials) > 20
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    records = {row.number: Outcome(row.outcome).optuna_state for row in stored_trials(url, "p")}
    assert records == {t.number: t.state.name for t in trials}
