"""tuner's store: records that round-trip, engines that share a database safely between
processes, and storage URLs that are checked before anything is written and never leak a
password."""

import math
import multiprocessing
import os
import pickle
import re
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime

import optuna
import pytest
from helpers import TUNER
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from stored import stored_studies, stored_trials

from tuner import db, open_results
from tuner.db import (
    CurveRow,
    StudyRow,
    TrialRow,
    make_engine,
    mask_url,
    open_store,
    optuna_storage,
    upgrade,
)
from tuner.db.migrations import PG_MIGRATION_LOCK
from tuner.errors import BadInput, TunerError


def study_record(name="s1", **changes):
    fields = {
        "name": name,
        "task": "digits",
        "settings": {"metric": "val_loss", "space": {"lr": {"low": 1e-4, "high": 1e-1}}},
        "plugins": {"tuner-builtins": "0.1.0", "my-plugin": None},
        "versions": {"mlx": "0.32.4", "optuna": "5.0.0", "tuner": "0.1.0"},
        "device": "cpu",
        "seed": 7,
        "command": "tuner search --task digits --trials 60",
        "created_at": datetime(2025, 11, 22, 9, 30, 1, 123456, tzinfo=UTC),
    }
    return StudyRow(**{**fields, **changes})


def trial_record(number=0, steps=300, **changes):
    fields = {
        "number": number,
        "optimizer": "adamw",
        "schedule": "cosine",
        "params": {"lr": 3.0e-3, "adamw": {"betas": [0.9, 0.999]}, "nesterov": False},
        "seed": 2**32 - 1,
        "steps": steps,
        "duration_s": 0.375,
        "step_time_s": 0.00125,
        "compiled": True,
        "metrics": {"val_loss": 0.25, "accuracy": 0.91},
        "value": 0.25,
        "outcome": "complete",
        "reason": None,
        "losses": [2.3 / (1 + i) for i in range(steps)],
        "lrs": [3e-3 * math.cos(i / steps) for i in range(steps)],
        "evals": [{"step": s, "val_loss": 1 / s, "accuracy": 0.9} for s in (100, 200, 300)],
        "finished_at": datetime(2025, 11, 22, 9, 31, 2, 5, tzinfo=UTC),
    }
    fields.update(changes)
    curve = {name: fields.pop(name) for name in ("losses", "lrs", "evals")}
    return TrialRow(**fields, curve=CurveRow(**curve))


@pytest.fixture
def store(storage_url):
    upgrade(storage_url)
    store = open_store(storage_url)
    yield store
    store.close()


def test_a_study_record_round_trips(store, storage_url):
    store.save_study(study_record())

    assert stored_studies(storage_url) == {"s1": study_record()}


def test_a_resumed_study_keeps_its_first_record(store, storage_url):
    store.save_study(study_record())
    store.save_study(study_record(task="other", seed=8, command="tuner search again"))

    assert stored_studies(storage_url) == {"s1": study_record()}


def test_a_trial_record_round_trips_curve_included(store, storage_url):
    store.save_study(study_record())

    store.save_trial("s1", trial_record())

    assert stored_trials(storage_url) == [trial_record()]
    with open_results(storage_url) as results:
        shown = results.trial("s1", 0)
    written = trial_record()
    assert (shown.value, shown.duration_s, shown.seed, shown.params) == (
        written.value,
        written.duration_s,
        written.seed,
        written.params,
    )
    assert (shown.losses, shown.lrs, shown.evals) == (
        written.curve.losses,
        written.curve.lrs,
        written.curve.evals,
    )
    assert shown.provenance.command == study_record().command


def test_a_diverged_trial_keeps_its_nan_and_infinite_numbers(store, storage_url):
    store.save_study(study_record())
    nan, inf = math.nan, math.inf
    diverged = {
        "steps": 3,
        "outcome": "diverged",
        "reason": "loss became nan at step 2",
        "metrics": {"val_loss": nan, "accuracy": -inf},
        "losses": [2.0, inf, nan],
        "lrs": [0.1, 0.1, -inf],
        "evals": [{"step": 2, "val_loss": nan}],
    }
    values = [None, nan, inf, -inf, 0.5]
    for number, value in enumerate(values):
        store.save_trial("s1", trial_record(number, value=value, **diverged))

    read = stored_trials(storage_url)
    with open_results(storage_url) as results:
        shown = [results.trial("s1", number) for number in range(len(values))]
    assert repr(read) == repr([trial_record(n, value=v, **diverged) for n, v in enumerate(values)])
    assert [t.value_type for t in read] == [None, "nan", "inf_pos", "inf_neg", "finite"]
    assert repr([t.value for t in shown]) == repr(values)
    assert (shown[0].outcome, shown[0].reason) == ("diverged", "loss became nan at step 2")


def test_each_trial_belongs_to_its_own_study(store, storage_url):
    store.save_study(study_record())
    store.save_study(study_record("s2"))
    for number in (2, 0, 1):
        store.save_trial("s1", trial_record(number, steps=5))
    store.save_trial("s2", trial_record(0))

    assert stored_trials(storage_url) == [trial_record(n, steps=5) for n in (0, 1, 2)]
    assert stored_trials(storage_url, "s2") == [trial_record(0)]


def test_a_trial_is_recorded_once(store, storage_url):
    store.save_study(study_record())
    store.save_trial("s1", trial_record())

    with pytest.raises(TunerError, match="trial 0 of study 's1' is already recorded"):
        store.save_trial("s1", trial_record(steps=4))

    assert stored_trials(storage_url) == [trial_record()]


def test_a_trial_needs_its_study_record(store):
    with pytest.raises(TunerError, match="study 's1' has no record"):
        store.save_trial("s1", trial_record())


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome"):
        trial_record(outcome="crashed")


def test_a_trial_whose_curve_cannot_be_written_leaves_nothing_behind(store, storage_url):
    store.save_study(study_record())

    with pytest.raises(TunerError, match="could not convert string to float"):
        store.save_trial("s1", trial_record(losses=["not a number"]))

    assert stored_trials(storage_url) == []


def test_a_trial_is_one_transaction_begun_immediate_and_a_read_begins_deferred(sqlite_url):
    store = open_store(sqlite_url)
    store.save_study(study_record())
    seen = []

    def statement(conn, cursor, statement, *rest):
        seen.append(" ".join(statement.split()[:3]))

    def commit(conn):
        seen.append("COMMIT")

    results = open_results(sqlite_url)
    # Every engine's statements, the store's and the reader's.
    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        store.save_trial("s1", trial_record())
        results.trial("s1", 0)
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)
        results.close()

    # PRAGMA table_info reads the schema: whether Optuna's tables hold the study.
    writes = [s for s in seen if not s.startswith(("SELECT", "PRAGMA"))]
    assert writes == [
        "BEGIN IMMEDIATE",
        "INSERT INTO tuner_trials",
        "INSERT INTO tuner_curves",
        "COMMIT",
        "BEGIN DEFERRED",
        "COMMIT",
    ]


def pragmas(engine):
    with engine.connect() as connection:
        return {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }


def test_every_sqlite_engine_gets_the_same_settings_optunas_too(sqlite_url):
    wanted = {"journal_mode": "wal", "busy_timeout": 60_000, "foreign_keys": 1, "synchronous": 1}
    storage = optuna_storage(sqlite_url)
    # An RDBStorage sent to a worker process rebuilds its engine from its engine_kwargs.
    sent = pickle.loads(pickle.dumps(storage))

    assert pragmas(make_engine(sqlite_url)) == wanted
    assert pragmas(storage.engine) == wanted
    assert pragmas(sent.engine) == wanted
    with sent.engine.connect() as connection:
        assert connection.connection.dbapi_connection.isolation_level == "IMMEDIATE"


def test_postgres_pools_stay_small_for_many_workers(postgres_url):
    upgrade(postgres_url)
    engine = optuna_storage(postgres_url).engine

    assert (engine.pool.size(), engine.pool._max_overflow) == (1, 4)
    assert engine.url.drivername == "postgresql+psycopg"


def write_trials(url, first, count, ready):
    ready.wait()
    # Four processes open a file that does not exist yet: it is created and migrated once.
    store = open_store(url)
    store.save_study(study_record())
    for number in range(first, first + count):
        store.save_trial("s1", trial_record(number, steps=300))
    store.close()


def read_trials(url, ready, done, counts):
    ready.wait()
    while not done.is_set():
        try:
            with open_results(url) as results:
                counts.append(len(results.trials("s1")) if results.study_names() else 0)
        except TunerError as error:
            # Before the first writer has made the file, there is nothing to read yet.
            if str(error).startswith("no database at "):
                counts.append(0)
                continue
            counts.append(str(error))
            return


def test_a_reader_and_four_writer_processes_share_one_sqlite_file(sqlite_url):
    spawn = multiprocessing.get_context("spawn")
    ready, done = spawn.Barrier(6), spawn.Event()
    counts = spawn.Manager().list()
    writers = [
        spawn.Process(target=write_trials, args=(sqlite_url, 50 * w, 50, ready)) for w in range(4)
    ]
    reader = spawn.Process(target=read_trials, args=(sqlite_url, ready, done, counts))
    for process in [*writers, reader]:
        process.start()

    ready.wait()
    began = time.monotonic()
    for writer in writers:
        writer.join(120)
    elapsed = time.monotonic() - began
    done.set()
    reader.join(60)

    assert [p.exitcode for p in [*writers, reader]] == [0] * 5
    trials = stored_trials(sqlite_url)
    assert [t.number for t in trials] == list(range(200))
    assert all(t == trial_record(t.number, steps=300) for t in trials)
    assert all(isinstance(count, int) for count in counts), list(counts)
    assert list(counts) == sorted(counts)
    print(f"\n4 writers, 200 trial records of 300 steps: {elapsed:.2f} s; {len(counts)} reads")


def save_from_child(store):
    store.save_trial("s1", trial_record(1))


def test_a_forked_worker_opens_its_own_connections(storage_url):
    upgrade(storage_url)
    store = open_store(storage_url)
    store.save_study(study_record())
    store.save_trial("s1", trial_record(0))

    child = multiprocessing.get_context("fork").Process(target=save_from_child, args=(store,))
    child.start()
    child.join(60)
    store.save_trial("s1", trial_record(2))

    assert child.exitcode == 0
    assert [t.number for t in stored_trials(storage_url)] == [0, 1, 2]
    store.close()


def test_optunas_trials_and_tuners_records_share_one_database(storage_url):
    upgrade(storage_url)
    store = open_store(storage_url)
    storage = optuna_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name="joined")
    store.save_study(study_record("joined"))

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        store.save_trial("joined", trial_record(trial.number, params=trial.params))
        return lr

    study.optimize(objective, n_trials=3)

    records = stored_trials(storage_url, "joined")
    assert [(r.number, r.params) for r in records] == [(t.number, t.params) for t in study.trials]
    with storage.engine.connect() as connection:
        # Optuna's study by its name, its trials by their numbers: the link tuner keeps.
        joined = connection.execute(
            text(
                "SELECT count(*) FROM trials"
                " JOIN studies ON studies.study_id = trials.study_id"
                " JOIN tuner_studies ON tuner_studies.name = studies.study_name"
                " JOIN tuner_trials ON tuner_trials.study_id = tuner_studies.id"
                " AND tuner_trials.number = trials.number"
            )
        ).scalar()
    assert joined == 3


def test_an_empty_postgres_database_gains_tuner_tables_on_first_use(postgres_url):
    store = open_store(postgres_url)
    store.save_study(study_record())

    assert stored_studies(postgres_url) == {"s1": study_record()}
    assert db.schema_state(postgres_url).status == "current"
    store.close()


@pytest.fixture
def postgres_database(postgres_url):
    """The URL of a new, empty database of its own, so that the advisory locks in it (which
    are per database, not per schema) are this test's alone."""
    server = os.environ["TUNER_TEST_POSTGRES_URL"]
    name = f"tuner_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def migration_waiters(connection):
    """How many connections wait for tuner's migration lock in this connection's database."""
    return connection.execute(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND (classid::bigint << 32 | objid::bigint) = :key"
        ),
        {"key": PG_MIGRATION_LOCK},
    ).scalar()


def test_two_workers_starting_together_on_an_empty_postgres_database_both_succeed(
    postgres_database,
):
    command = [TUNER, "search", "--storage", postgres_database, "--task", "synthetic"]
    command += ["--trials", "2", "--study", "together", "--optimizers", "sgd", "--quiet"]
    holder = make_engine(postgres_database)
    with holder.begin() as connection:
        # Held until both workers, having found no tables, wait to create them.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        workers = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while migration_waiters(connection) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        waiting = migration_waiters(connection)
    outcomes = [worker.communicate(timeout=120) for worker in workers]
    holder.dispose()

    assert waiting == 2
    assert [worker.returncode for worker in workers] == [0, 0], outcomes
    assert db.schema_state(postgres_database).status == "current"
    assert "together" in stored_studies(postgres_database)
    assert len(stored_trials(postgres_database, "together")) >= 2


def test_a_new_sqlite_file_is_created_and_upgraded_on_first_use(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'new.db'}")
    store.save_study(study_record())

    assert stored_studies(f"sqlite:///{tmp_path / 'new.db'}") == {"s1": study_record()}
    assert db.schema_state(f"sqlite:///{tmp_path / 'new.db'}").status == "current"


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql+psycopg://tuner:s3cret@db.example:5432/runs", "s3cret"),
        ("postgresql+psycopg://tuner:p%40ss%2Fw0rd@db.example/runs", "p%40ss%2Fw0rd"),
        ("postgresql://tuner:s3cret@db.example:notaport/runs", "s3cret"),
    ],
)
def test_a_printed_url_never_shows_its_password(url, password):
    masked = mask_url(url)

    assert password not in masked
    assert "tuner:***@db.example" in masked


def test_a_driver_message_that_echoes_the_password_is_scrubbed():
    url = make_url("postgresql+psycopg://postgres:s3cret@127.0.0.1/test")
    echoed = OperationalError("connect", {}, Exception("bad dsn 'password=s3cret host=x'\nmore"))

    message = str(db.storage_failure(echoed, url))

    assert "s3cret" not in message
    assert (
        message == "postgresql+psycopg://postgres:***@127.0.0.1/test: bad dsn 'password=*** host=x'"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:s3cret@localhost/tuner", "unsupported storage URL scheme 'mysql'"),
        ("tuner.db", "not a storage URL: 'tuner.db'; "),
        ("sqlite:/tuner.db", "for the file tuner.db here, sqlite:///tuner.db; for /tuner.db, "),
        ("sqlite:tuner.db", "sqlite:///tuner.db"),
        ("sqlite://", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
        ("postgresql+psycopg2://u:s3cret@h/db", "through psycopg 3, not postgresql+psycopg2"),
        ("sqlite:///{tmp}/missing/folder/tuner.db", "no folder {tmp}/missing/folder to hold"),
        ("sqlite:///{tmp}", "is a folder, not a SQLite database file"),
    ],
)
def test_a_bad_storage_url_is_bad_input_and_writes_nothing(tmp_path, url, message):
    url, message = url.format(tmp=tmp_path), message.format(tmp=tmp_path)

    for attempt in (open_store, optuna_storage, make_engine):
        with pytest.raises(BadInput, match=re.escape(message)) as error:
            attempt(url)
        assert "s3cret" not in str(error.value)

    assert list(tmp_path.iterdir()) == []


def test_a_short_sqlite_url_is_never_suggested_inside_another():
    with pytest.raises(BadInput) as error:
        db.parse_url("sqlite:/tuner.db")

    assert "sqlite:///sqlite:" not in str(error.value)


def test_a_postgres_url_is_a_postgresql_one(postgres_url):
    url = postgres_url.replace("postgresql+psycopg://", "postgres://", 1)
    assert url.startswith("postgres://")

    open_store(url).close()
    optuna.create_study(storage=optuna_storage(url), study_name="via-postgres")

    assert db.parse_url(url).drivername == "postgresql+psycopg"
    assert optuna.get_all_study_names(optuna_storage(postgres_url)) == ["via-postgres"]


def test_a_file_that_is_not_a_database_is_bad_input_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n")

    with pytest.raises(BadInput, match=f"{path} is not a SQLite database"):
        open_store(f"sqlite:///{path}")

    assert path.read_text() == "these are my notes, not a database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_an_unreachable_server_is_one_line_without_the_password():
    with pytest.raises(TunerError) as error:
        open_store("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test")

    message = str(error.value)
    assert message.startswith("postgresql+psycopg://postgres:***@127.0.0.1:1/test: ")
    assert "s3cret" not in message and "\n" not in message
    # It never answered: nothing was lost, and nothing is said to be.
    assert message.endswith(
        "; the database does not answer, and what it stored is kept: once it answers, "
        "run the same command again"
    )


def test_a_writer_waits_for_the_lock_another_connection_holds(sqlite_url):
    store = open_store(sqlite_url)
    store.save_study(study_record())
    holder = sqlite3.connect(make_url(sqlite_url).database, check_same_thread=False)
    holder.isolation_level = None
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, holder.execute, args=("COMMIT",)).start()

    began = time.monotonic()
    store.save_trial("s1", trial_record())

    assert time.monotonic() - began >= 0.4
    assert stored_trials(sqlite_url) == [trial_record()]
