"""Storage URLs: which ones tuner accepts, and how one is shown without its password.

A URL is checked here before anything connects to it, so that a typo is refused in one line
instead of creating a stray SQLite file or waiting on a server, and every message that names a
storage (tuner's own, or a driver's that echoes the URL back) goes through the masking here.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from tuner.errors import BadInput, TunerError

_USAGE = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_UNPARSED_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask_url(url: str) -> str:
    """The URL with its password, if any, shown as ``***``: the only way tuner prints one."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _UNPARSED_PASSWORD.sub(r"\1***@", url)


def parse_url(url: str) -> URL:
    """The URL, if tuner can store into it; BadInput, before anything is touched, if not."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise BadInput(f"not a storage URL: '{mask_url(url)}'; {_USAGE}{_file_hint(url)}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise BadInput(f"unsupported SQLite driver in {mask_url(url)}; {_USAGE}")
        if not parsed.database or parsed.database == ":memory:":
            raise BadInput(
                f"{mask_url(url)} is an in-memory database, lost when tuner exits; "
                "give a file: sqlite:///PATH"
            )
        if parsed.query or parsed.host or parsed.username:
            raise BadInput(f"{mask_url(url)}: tuner sets SQLite's options itself; {_USAGE}")
        path = sqlite_path(parsed)
        if not path.parent.is_dir():
            raise BadInput(f"no folder {path.parent} to hold the SQLite database {path.name}")
        if path.is_dir():
            raise BadInput(f"{path} is a folder, not a SQLite database file")
        return parsed
    # postgres:// is what Heroku, Render and others hand out, and what libpq takes.
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            return parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise BadInput(
                f"tuner talks to PostgreSQL through psycopg 3, not {parsed.drivername}: "
                "use postgresql+psycopg://USER@HOST/DB"
            )
        return parsed
    raise BadInput(f"unsupported storage URL scheme '{parsed.drivername}'; {_USAGE}")


def _file_hint(url: str) -> str:
    """The SQLite URL of the file that ``url`` seems to name, as a hint: a bare path, or a
    sqlite: URL short of its slashes."""
    if "://" in url:
        return ""
    scheme, colon, rest = url.partition(":")
    if not colon or scheme != "sqlite":
        return f"; for a file there, sqlite:///{url}"
    path = rest.lstrip("/")
    here = f"; for the file {path} here, sqlite:///{path}"
    return here + (f"; for /{path}, sqlite:////{path}" if rest.startswith("/") else "")


def sqlite_path(url: URL) -> Path:
    """The file of a SQLite URL."""
    # Absolute, so that a worker which changes directory still writes to the same file.
    return Path(url.database or "").expanduser().resolve()


def _scrub(message: str, url: URL) -> str:
    """The message without the URL's password, which some drivers echo back in their errors."""
    if url.password:
        password = str(url.password)
        for form in {password, quote(password, safe=""), quote_plus(password)}:
            message = message.replace(form, "***")
    return message


def storage_failure(error: SQLAlchemyError, url: URL) -> TunerError:
    """One line that says what went wrong with the database at ``url``, password masked."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    detail = _scrub(lines[0] if lines else type(cause).__name__, url)
    where = url.render_as_string(hide_password=True)
    if isinstance(cause, sqlite3.DatabaseError) and "not a database" in detail:
        return BadInput(f"{sqlite_path(url)} is not a SQLite database")
    # SQLite's SQLITE_FULL, and PostgreSQL's disk_full class (SQLSTATE 53100).
    if "disk is full" in detail or getattr(cause, "sqlstate", None) == "53100":
        held = sqlite_path(url) if url.get_backend_name() == "sqlite" else where
        return TunerError(
            f"disk full: no space left for the database {held}; the trials that finished "
            "are kept: make room, then run the same command to continue"
        )
    if connection_lost(error):
        # Said alike whether it never answered or stopped answering mid-search, as one
        # failed connection cannot tell which: what it stored is safe either way.
        return TunerError(
            f"{where}: {detail}; the database does not answer, and what it stored is kept: "
            "once it answers, run the same command again"
        )
    return TunerError(f"{where}: {detail}")


def database_error(error: BaseException) -> SQLAlchemyError | None:
    """The database's error behind ``error``, however deep Optuna wrapped it, or None."""
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, SQLAlchemyError):
        seen = seen.__cause__ or seen.__context__
    return seen


def connection_lost(error: BaseException) -> bool:
    """Whether a PostgreSQL connection that was ended, or could not be made, is behind
    ``error``, however deeply wrapped: SQLSTATE class 08 or 57P, or a client-side failure to
    connect. The whole chain is looked at, since Optuna meets such an error and then another
    while it tries to go on."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DBAPIError) and hasattr(seen.orig, "sqlstate"):
            sqlstate = seen.orig.sqlstate
            if sqlstate is None:
                if seen.connection_invalidated or isinstance(seen, OperationalError):
                    return True
            elif sqlstate.startswith(("08", "57P")):
                return True
        seen = seen.__cause__ or seen.__context__
    return False
