"""The lock under which a worker decides that its study needs one more trial, and starts it.

Workers that count the study's trials and then start one, each on its own, can all count the
same number and all start: the study overshoots its target by a trial a worker. Held from the
count until Optuna has written the new trial as running, this lock lets the next worker count
that trial. It is a mutex, not a scheduler: each worker still asks Optuna for its own trials.

On PostgreSQL it is an advisory lock, which every machine that shares the database sees; on
SQLite, whose workers share one machine's disk, an ``flock`` on a file beside the database.
Either is let go by the operating system or the server when its process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from tuner.db.retry import connection_lost, retrying
from tuner.db.urls import sqlite_path

# How often a worker that waits for the lock on SQLite looks again, and for a reason to stop
# waiting.
POLL_S = 0.05
# How long a worker waits in PostgreSQL's queue for the lock before it looks for a reason to stop
# waiting, and queues again.
QUEUE_MS = 500
# The SQLSTATE of a lock wait that lock_timeout ended.
LOCK_NOT_AVAILABLE = "55P03"


class ClaimLock:
    """The claim lock of study ``study`` on the database of ``engine``."""

    def __init__(self, engine: Engine, study: str) -> None:
        self._engine = engine
        self._study = study
        self._connection: Connection | None = None
        self._file: int | None = None
        self._key = int.from_bytes(
            hashlib.blake2b(f"tuner:{study}".encode(), digest_size=8).digest(), signed=True
        )

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def acquire(self, give_up: Callable[[], bool]) -> bool:
        """Take the lock, waiting while another worker holds it; False, without it, once
        ``give_up()`` says so (the search was stopped while it waited)."""
        while not self.held:
            if give_up():
                return False
            self._wait()
        return True

    def release(self) -> None:
        """Let the lock go; nothing when it is not held."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            except DBAPIError as error:
                # The server let the lock go when it ended the session that held it.
                if not connection_lost(error):
                    raise
            finally:
                connection.close()
        if self._file is not None:
            file, self._file = self._file, None
            os.close(file)

    def _wait(self) -> None:
        """Take the lock, or wait a moment for it."""
        if self._engine.dialect.name == "postgresql":
            retrying(self._queue_for_advisory_lock)
            return
        file = os.open(f"{sqlite_path(self._engine.url)}-claims", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(file)
            time.sleep(POLL_S)
            return
        self._file = file

    def _queue_for_advisory_lock(self) -> None:
        # Queued in the server, which hands the lock to the first in its queue the moment it
        # is let go: waiters neither poll the database nor leave the lock idle between polls.
        connection = self._engine.connect()
        try:
            # SET LOCAL ends with the transaction; the session's lock outlives it.
            with connection.begin():
                connection.execute(text(f"SET LOCAL lock_timeout = {QUEUE_MS}"))
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        except DBAPIError as error:
            connection.close()
            if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return
            raise
        except BaseException:
            connection.close()
            raise
        self._connection = connection.execution_options(isolation_level="AUTOCOMMIT")
