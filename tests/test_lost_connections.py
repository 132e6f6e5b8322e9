"""PostgreSQL connections ended under a running search (``pg_terminate_backend``, as a
failover or an administrator does): each operation is tried again on a new connection, and the
search goes on, leaving no trial running and every record agreeing with Optuna's state. And a
server that closes the first connections of a search, a worker or a confirmation as they start,
as one that restarts does: they wait for it. A database of its own for each test, so that
ending its connections ends no one else's."""

import contextlib
import socket
import socketserver
import subprocess
import threading
import time

import optuna
import pytest
from helpers import TUNER, UNCONFIRMED, tuner
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
        # worker that starts makes many connections, of which only its first is waited for
        # (see the test below and the docs' errors).
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


@contextlib.contextmanager
def restarting(url, closed):
    """``url`` through a proxy to its server that closes the first ``closed`` connections made
    through it at once, as a server that restarts does, and relays the rest; and the count of
    connections made through it so far."""
    target = make_url(url)
    made = []

    class Relay(socketserver.BaseRequestHandler):
        def handle(self):
            made.append(1)
            if len(made) <= closed:
                return
            with socket.create_connection((target.host, target.port or 5432)) as server:
                back = threading.Thread(target=pipe, args=(server, self.request), daemon=True)
                back.start()
                pipe(self.request, server)
                back.join()

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Relay) as proxy:
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        port = proxy.server_address[1]
        yield target.set(host="127.0.0.1", port=port).render_as_string(False), made
        proxy.shutdown()


def pipe(source, sink):
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize(
    "command",
    [
        ["worker", "p", "--trials", "6", "--confirm", "0", "--quiet"],
        ["search", *UNCONFIRMED, "--study", "p", "--trials", "6", "--quiet"],
        ["search", *UNCONFIRMED, "--trials", "2", "--quiet"],
        ["confirm", "p", "--top", "1", "--seeds", "1"],
    ],
    ids=["worker", "search-resumed", "search-new", "confirm"],
)
def test_a_command_started_while_the_server_restarts_waits_for_it(database, command):
    url, _ = database
    assert (
        tuner("search", *UNCONFIRMED, "--study", "p", "--trials", "4", storage=url).exit_code == 0
    )

    with restarting(url, closed=3) as (through, made):
        started = subprocess.run(
            [TUNER, *command, "--storage", through],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert started.returncode == 0, started.stderr
    assert len(made) > 3
    study = optuna.load_study(study_name="p", storage=url)
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
