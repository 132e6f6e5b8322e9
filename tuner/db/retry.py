"""A bounded retry for a database operation whose PostgreSQL connection was lost.

A pooled connection that the server ended (``pg_terminate_backend``, a failover, a restart)
fails the operation that was using it; the pool's pre-ping replaces such connections only at
checkout. The operation, one short transaction, is tried again on a new connection for a few
seconds, long enough for a server that restarts, and then its error is raised. SQLite's errors
are never retried here: its busy timeout already waits for locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tuner.db.urls import connection_lost

T = TypeVar("T")
# The waits between tries: 7.6 s in all.
WAITS_S = (0.1, 0.5, 1.0, 2.0, 4.0)


def retrying(operation: Callable[[], T]) -> T:
    """``operation()``, tried again while it fails for a lost connection, up to
    :data:`WAITS_S`; then its last error."""
    for wait in WAITS_S:
        try:
            return operation()
        except Exception as error:
            if not connection_lost(error):
                raise
        time.sleep(wait)
    return operation()
