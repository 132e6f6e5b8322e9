"""The one engine factory: every engine, tuner's and Optuna's, gets its settings here.

The settings are what let one reader and several writer processes share a SQLite file (WAL,
a busy timeout, writes that take the lock before they read) and many workers share a
PostgreSQL server (small pools, pings, timeouts), and what keeps forked workers off their
parent's connections.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from tuner.db.urls import parse_url, sqlite_path, storage_failure
from tuner.errors import BadInput, TunerError

# Long enough to outwait every other writer's one-transaction trial record, short enough that
# a wedged process is reported rather than waited on for ever.
SQLITE_BUSY_TIMEOUT_S = 60.0
# The transaction of a connection with this execution option begins DEFERRED on SQLite.
READ_ONLY = "tuner_read_only"
# A -wal file begins with this header; only frames after it hold commits.
WAL_HEADER_BYTES = 32

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_connections_in_child() -> None:
    # A forked child must open its own connections: a socket or SQLite handle shared with the
    # parent interleaves both processes' traffic. close=False leaves the parent's ones alone.
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_in_child)


def forget_in_forked_children(engine: Engine) -> None:
    """Have a process forked from this one open its own connections rather than use
    ``engine``'s; for engines made elsewhere, such as Optuna's (:func:`make_engine` does it)."""
    _ENGINES.add(engine)


def _connect_sqlite(path: str, *, to_wal: bool = True) -> sqlite3.Connection:
    """A SQLite connection that waits for the write lock rather than fail "database is locked".

    ``isolation_level="IMMEDIATE"`` makes the driver begin every transaction that writes with
    BEGIN IMMEDIATE, at its first write: the write lock is taken, or waited for, before the
    transaction has read anything, so two writers can never deadlock on upgrading their locks.
    Optuna's engine relies on that alone; tuner's engine also begins its transactions itself.
    The file is switched to WAL when ``to_wal``; a reader leaves it in whatever mode it is, since
    the switch writes the file's header.
    """
    # timeout is SQLite's busy_timeout: how long a statement waits for a lock before failing.
    # A pooled connection may serve another thread later, such as Optuna's heartbeat.
    connection = sqlite3.connect(
        path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level="IMMEDIATE", check_same_thread=False
    )
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        # In WAL mode NORMAL survives any crash of the process; only a power cut can lose the
        # last few commits, and it cannot corrupt the file.
        connection.execute("PRAGMA synchronous = NORMAL")
        if to_wal:
            _switch_to_wal(connection)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """WAL lets readers read while a writer writes; it is stored in the file, once for all.

    Processes that open a new file together race to switch it, and SQLite refuses a loser at
    once, without its busy timeout, since waiting could deadlock. Tried again a moment later,
    the switch finds the file in WAL mode already.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _connect_sqlite_read_only(path: str) -> sqlite3.Connection:
    """A connection that cannot write, to a file in a place this process cannot write.

    ``mode=ro`` reads with SQLite's locks, alongside any writer, but a WAL file needs its
    ``-shm`` file, which SQLite cannot create in a read-only folder. Without one, no process has
    the file open in WAL mode, and ``immutable=1`` reads it without locks or ``-shm``. It trusts
    that nothing writes the file meanwhile: true of a read-only mount; elsewhere, a writer that
    starts during the read could show it a torn page.
    """
    uri = Path(path).as_uri()
    connection = sqlite3.connect(
        f"{uri}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
    )
    try:
        # SQLite opens the file at the first statement, not at connect.
        connection.execute("PRAGMA schema_version")
        return connection
    except sqlite3.OperationalError as error:
        connection.close()
        if error.sqlite_errorcode not in (
            sqlite3.SQLITE_CANTOPEN,
            sqlite3.SQLITE_READONLY_DIRECTORY,
        ):
            raise
    wal = Path(f"{path}-wal")
    # immutable=1 reads the file alone and skips the -wal: commits still in it would be missing
    # without a word. A -wal of no more than its header holds none.
    if wal.exists() and wal.stat().st_size > WAL_HEADER_BYTES:
        raise BadInput(
            f"{wal} holds commits that are not yet in {path}, and SQLite cannot read them "
            f"without {path}-shm, which it cannot make in this read-only folder: copy {path} "
            "and its -wal file together into a folder you can write, and read the copy"
        )
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


def _writable(path: Path) -> bool:
    # SQLite writes its journal, or its -wal and -shm files, beside the database.
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _read_only(path: Path) -> BadInput:
    if not path.exists():
        return BadInput(f"cannot create the database {path}: its folder is read-only")
    which = "the file" if os.access(path.parent, os.W_OK) else "its folder"
    return BadInput(
        f"cannot write the database {path}: {which} is read-only "
        "(the commands that only read it, such as tuner best, still can)"
    )


def engine_kwargs(url: str, *, read_only: bool = False) -> dict[str, Any]:
    """The ``create_engine`` arguments every tuner engine and Optuna's storage share.

    All of them survive pickling, so that an ``RDBStorage`` sent to another process rebuilds
    its engine with the same settings. A SQLite file that this process cannot write is opened
    read-only when ``read_only``, and refused in one line (BadInput) when not; one it can write
    is switched to WAL only when not ``read_only``, so that reading changes no byte of it.
    """
    parsed = parse_url(url)
    # NaN is not JSON, and PostgreSQL refuses it: say so on SQLite too rather than differ.
    strict = {"json_serializer": functools.partial(json.dumps, allow_nan=False)}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if _writable(path):
            connect = functools.partial(_connect_sqlite, to_wal=not read_only)
        elif read_only:
            connect = _connect_sqlite_read_only
        else:
            raise _read_only(path)
        return {**strict, "creator": functools.partial(connect, str(path))}
    return {
        **strict,
        # Every worker process holds two pools, tuner's and Optuna's, that keep one connection
        # each (more while Optuna's heartbeat thread overlaps a write, or the claim lock's
        # session is held): N workers peak at 2.5-3N (benchmarks/coordination.py), against
        # PostgreSQL's default max_connections of 100. Beyond ~35 workers, raise it; PgBouncer's
        # transaction pooling would break the claim lock, a session advisory lock.
        "pool_size": 1,
        "max_overflow": 4,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 10, "application_name": "tuner"},
    }


def _begin_sqlite(connection: Connection) -> None:
    # Writes begin IMMEDIATE so that they wait for the lock before reading; reads begin
    # DEFERRED so that, under WAL, they never wait at all.
    mode = "DEFERRED" if connection.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """The engine for ``url``: the one factory, with the settings of :func:`engine_kwargs`.

    On SQLite its transactions begin IMMEDIATE, so that their reads and writes form one
    snapshot; pass ``execution_options={READ_ONLY: True}`` for one that only reads. A
    ``read_only`` engine's transactions all begin DEFERRED, and it can read a SQLite file
    in a read-only folder.
    """
    parsed = parse_url(url)
    options = {"execution_options": {READ_ONLY: True}} if read_only else {}
    try:
        engine = create_engine(parsed, **engine_kwargs(url, read_only=read_only), **options)
    except ImportError:
        raise TunerError(
            "PostgreSQL storage needs psycopg 3: pip install 'tuner[postgres]'"
        ) from None
    forget_in_forked_children(engine)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "begin", _begin_sqlite)
    return engine


@contextmanager
def engine_for(url: str, *, create: bool, read_only: bool = False) -> Iterator[Engine | None]:
    """An engine on ``url`` for one command, closed afterwards; None when it is a SQLite file
    that does not exist and ``create`` is false, so that looking creates nothing."""
    parsed = parse_url(url)
    if not create and parsed.get_backend_name() == "sqlite" and not sqlite_path(parsed).exists():
        yield None
        return
    engine = make_engine(url, read_only=read_only)
    try:
        yield engine
    except SQLAlchemyError as error:
        raise storage_failure(error, engine.url) from None
    finally:
        engine.dispose()
